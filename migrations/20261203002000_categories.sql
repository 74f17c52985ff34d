-- The category tree's read model: one document per category (see infra read_models/categories),
-- with the columns the tree and the sibling lookups read.
CREATE TABLE categories (
    id      uuid PRIMARY KEY,
    version bigint NOT NULL,
    record  jsonb NOT NULL,
    parent  uuid,
    slug    text NOT NULL,
    deleted boolean NOT NULL
);
CREATE INDEX categories_parent ON categories (parent, slug) WHERE NOT deleted;

-- Products filed in the tree: `category_id` from the events that carry one; `category_slug`, the
-- slug the free-text category maps to, files the others (events stored before the tree) under
-- the top-level category of that slug, so no stored event is rewritten.
ALTER TABLE products ADD COLUMN category_id uuid, ADD COLUMN category_slug text;
-- Rows projected before this migration: the same mapping as the projection's (lower-case
-- letters and digits, runs of anything else one hyphen, none at either end).
UPDATE products
   SET category_slug = nullif(trim(BOTH '-' FROM left(trim(BOTH '-' FROM
       regexp_replace(lower(category), '[^a-z0-9]+', '-', 'g')), 100)), '')
 WHERE category_slug IS NULL;
CREATE INDEX products_category_id ON products (category_id) WHERE NOT removed;
CREATE INDEX products_category_slug ON products (category_slug) WHERE NOT removed AND category_id IS NULL;
