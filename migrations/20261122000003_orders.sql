-- The orders read model (built by the orders projection from order events).
CREATE TABLE orders (
    id          uuid PRIMARY KEY,
    customer_id uuid   NOT NULL,
    status      text   NOT NULL,
    -- The whole record as JSON (lines, payment summary, timeline); the columns above are for
    -- filtering and ordering.
    record      jsonb  NOT NULL,
    created_at  timestamptz NOT NULL,
    version     bigint NOT NULL
);
CREATE INDEX orders_by_customer ON orders (customer_id, created_at DESC, id DESC);
-- The sweep looks for orders that did not finish.
CREATE INDEX orders_unfinished ON orders (created_at)
    WHERE status NOT IN ('confirmed', 'cancelled', 'failed');
