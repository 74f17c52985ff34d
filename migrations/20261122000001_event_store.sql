-- The event store: postgres-es's columns, plus what the relay and auditors need.
CREATE TABLE events (
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    sequence       bigint NOT NULL CHECK (sequence > 0),
    event_type     text   NOT NULL,
    event_version  text   NOT NULL,
    payload        jsonb  NOT NULL,
    metadata       jsonb  NOT NULL,
    -- Global order of insertion. Taken at insert, not at commit: readers that tail the table
    -- must also use xid (DESIGN.md, invariant 3).
    position       bigint GENERATED ALWAYS AS IDENTITY,
    -- The appending transaction, to read only events older than every transaction in flight.
    xid            xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence),
    UNIQUE (position)
);

-- The relay reads and checkpoints in (xid, position) order.
CREATE INDEX events_commit_order ON events (xid, position);
-- Auditors ask for state as of a time.
CREATE INDEX events_recorded_at ON events (recorded_at);
-- Listing the aggregates of a type: one row per stream, in creation order.
CREATE INDEX events_stream_starts ON events (aggregate_type, position) WHERE sequence = 1;
-- Finding the events a command appended.
CREATE INDEX events_command_id ON events ((metadata ->> 'command_id'));

-- Invariant 1: the application never updates or deletes an event.
CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();

CREATE TRIGGER events_never_truncated
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- Values unique across aggregates (e-mail, username), written in the appending transaction.
-- Values are stored as digests, so the table holds no personal data.
CREATE TABLE unique_claims (
    kind           text NOT NULL,
    value_digest   text NOT NULL,
    aggregate_type text NOT NULL,
    aggregate_id   text NOT NULL,
    claimed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value_digest)
);
CREATE UNIQUE INDEX unique_claims_holder ON unique_claims (aggregate_type, aggregate_id, kind);

-- Commands that appended events, written in the appending transaction: a command whose id was
-- derived from an Idempotency-Key takes effect once. Derivable from events.metadata.
CREATE TABLE applied_commands (
    command_id     uuid PRIMARY KEY,
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    version        bigint NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now()
);

-- The first answer to a request sent with an Idempotency-Key.
CREATE TABLE idempotency_records (
    scope       text     NOT NULL,
    key         text     NOT NULL,
    fingerprint text     NOT NULL,
    status      smallint NOT NULL,
    body        jsonb    NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_records_created_at ON idempotency_records (created_at);
