-- The relay's checkpoint: the last event published and acknowledged, in (xid, position) order.
CREATE TABLE relay_checkpoint (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    xid        xid8   NOT NULL,
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO relay_checkpoint (xid, position) VALUES ('0', 0);

-- How far each projection got and whether it is healthy. Written in the same transaction as
-- the projection's read-table writes.
CREATE TABLE projection_status (
    name            text PRIMARY KEY,
    stream_sequence bigint NOT NULL DEFAULT 0,
    last_recorded_at timestamptz,
    status          text NOT NULL DEFAULT 'running',
    last_error      text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE products (
    id             uuid PRIMARY KEY,
    title          text   NOT NULL,
    author         text   NOT NULL,
    published_date date   NOT NULL,
    description    text   NOT NULL,
    price_cents    bigint NOT NULL,
    stock          bigint NOT NULL,
    category       text   NOT NULL,
    removed        boolean NOT NULL DEFAULT false,
    version        bigint NOT NULL,
    search         tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A') ||
        setweight(to_tsvector('english', author), 'B') ||
        setweight(to_tsvector('english', description), 'C')
    ) STORED
);

-- Listing only shows products that are not removed: every index skips the removed ones.
-- The catalog is read far more than written: GIN indexes take each write at once
-- (fastupdate off) rather than keeping a pending list every search has to scan.
CREATE INDEX products_search ON products USING gin (search)
    WITH (fastupdate = off) WHERE NOT removed;
CREATE INDEX products_title_trgm ON products USING gin (title gin_trgm_ops)
    WITH (fastupdate = off) WHERE NOT removed;
CREATE INDEX products_by_title ON products (title, id) WHERE NOT removed;
-- The author filter matches the whole name, ignoring case.
CREATE INDEX products_by_author ON products (lower(author), published_date, id) WHERE NOT removed;
CREATE INDEX products_by_published_date ON products (published_date, id) WHERE NOT removed;
CREATE INDEX products_by_price ON products (price_cents, id) WHERE NOT removed;
CREATE INDEX products_by_category ON products (category, price_cents, id) WHERE NOT removed;

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text   NOT NULL,
    username      text   NOT NULL,
    first_name    text,
    last_name     text,
    roles         text[] NOT NULL DEFAULT '{}',
    is_active     boolean NOT NULL,
    balance_cents bigint NOT NULL,
    version       bigint NOT NULL
);

-- Wake the relay when events commit.
CREATE FUNCTION events_notify_relay() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eshop_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_appended
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify_relay();
