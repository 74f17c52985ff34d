-- Carts, wishlists and reviews, each kept as one JSON document per aggregate. `key` is what the
-- documents are looked up by: the user for carts and wishlists, the product for reviews.
CREATE TABLE carts (
    id uuid PRIMARY KEY, key uuid NOT NULL, record jsonb NOT NULL, version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE wishlists (
    id uuid PRIMARY KEY, key uuid NOT NULL, record jsonb NOT NULL, version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE reviews (
    id uuid PRIMARY KEY, key uuid NOT NULL, record jsonb NOT NULL, version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- For the products' rating average and count.
    rating smallint GENERATED ALWAYS AS ((record ->> 'rating')::smallint) STORED
);
CREATE INDEX reviews_by_product ON reviews (key, updated_at DESC, id DESC);
