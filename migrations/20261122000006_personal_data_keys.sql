-- One key per person (today: per user id) for the personal fields of their events.
-- Erasure sets `key` to NULL and keeps the row, so the key is never created again and the
-- sealed fields stay unreadable through any replay or rebuild.
CREATE TABLE personal_data_keys (
    subject    text PRIMARY KEY,
    key        bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    erased_at  timestamptz,
    CHECK ((key IS NULL) = (erased_at IS NOT NULL))
);

-- An erased user stays in the read model (orders point at it) with no personal data.
ALTER TABLE users ADD COLUMN erased boolean NOT NULL DEFAULT false;
