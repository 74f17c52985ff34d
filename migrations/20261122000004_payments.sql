-- The payments read model (built by the payments projection from payment events).
CREATE TABLE payments (
    id          uuid PRIMARY KEY,
    customer_id uuid   NOT NULL,
    record      jsonb  NOT NULL,
    created_at  timestamptz NOT NULL,
    version     bigint NOT NULL
);
CREATE INDEX payments_by_customer ON payments (customer_id, created_at DESC, id DESC);
CREATE INDEX payments_by_time ON payments (created_at DESC, id DESC);
