-- Issue 18: admins list everyone's orders, filtered by status, customer and time; an order paid
-- again moves on from its last change, not from when it was placed.
ALTER TABLE orders ADD COLUMN updated_at timestamptz;
-- Every order, newest first (an admin's list with or without a time range).
CREATE INDEX orders_by_time ON orders (created_at DESC, id DESC);
-- One status, newest first (`?status=`, with or without a time range).
CREATE INDEX orders_by_status ON orders (status, created_at DESC, id DESC);
-- The sweep: orders that have not finished and have not moved for a while.
DROP INDEX orders_unfinished;
CREATE INDEX orders_unfinished ON orders ((coalesce(updated_at, created_at)))
    WHERE status NOT IN ('confirmed', 'cancelled', 'failed');

-- Users show when they joined and last changed (filled by the users projection from the
-- events' recorded times; a rebuild fills them for every user).
ALTER TABLE users ADD COLUMN created_at timestamptz, ADD COLUMN updated_at timestamptz;

-- Products too.
ALTER TABLE products ADD COLUMN created_at timestamptz, ADD COLUMN updated_at timestamptz;
