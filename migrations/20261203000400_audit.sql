-- Auditors' reads (issue 14). Each index below is paid by every append; docs/performance.md
-- has what each costs.

-- The whole story of one request or order process, and the feed filtered by correlation.
CREATE INDEX events_by_correlation ON events ((metadata ->> 'correlation_id'), position);
-- The feed filtered by who acted (a user id or `system`).
CREATE INDEX events_by_actor ON events ((metadata ->> 'actor'), position);
-- The feed filtered by event type.
CREATE INDEX events_by_type ON events (event_type, position);
-- The feed filtered by recorded time. Rows are appended in about the order of their time, so
-- a BRIN index (one summary per 128 pages) answers time ranges at almost no cost per append.
CREATE INDEX events_recorded_at_brin ON events USING brin (recorded_at);
-- (aggregate_type, aggregate_id) is the primary key's prefix; aggregate_type alone reads the
-- feed in position order and filters.

-- The hash chain (invariant 9): one link per event, in the relay's commit-safe order
-- (xid, position). link = SHA-256(previous link || canonical bytes of the stored event); see
-- infra/src/audit/chain.rs. chain_index counts from 1 without gaps.
CREATE TABLE event_links (
    chain_index bigint PRIMARY KEY CHECK (chain_index > 0),
    xid         xid8   NOT NULL,
    position    bigint NOT NULL,
    link        bytea  NOT NULL CHECK (length(link) = 32)
);

-- Seals: the chain's link every 1,000 events or 10 s, also published on NATS
-- (`eshop.seals`), so that a party keeping them detects a chain recomputed in the database.
CREATE TABLE event_seals (
    chain_index    bigint PRIMARY KEY,
    up_to_position bigint NOT NULL,
    link           bytea  NOT NULL CHECK (length(link) = 32),
    sealed_at      timestamptz NOT NULL DEFAULT now(),
    -- Set once NATS acknowledged the seal; the sealer publishes what is still unset.
    published_at   timestamptz
);
CREATE INDEX event_seals_unpublished ON event_seals (chain_index) WHERE published_at IS NULL;

-- Links are never changed or removed by the application; seals only get their publication time.
CREATE TRIGGER event_links_append_only
    BEFORE UPDATE OR DELETE ON event_links
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();
CREATE TRIGGER event_links_never_truncated
    BEFORE TRUNCATE ON event_links
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();
CREATE TRIGGER event_seals_never_deleted
    BEFORE DELETE ON event_seals
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();
