-- The movies catalog (issue 16). `record` is the movies projection's document (every rating and
-- tag); the columns beside it are what lists filter and sort by, so a page is one statement
-- over this table alone. docs/performance.md says which query uses which index.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE movies (
    id             uuid PRIMARY KEY,
    version        bigint NOT NULL,
    record         jsonb  NOT NULL,
    movielens_id   bigint,
    title          text   NOT NULL,
    year           integer,
    genres         text[] NOT NULL,
    -- Lower-cased genres and tags: the genre and tag filters match case-insensitively.
    genre_keys     text[] NOT NULL,
    tag_keys       text[] NOT NULL,
    imdb_id        text,
    tmdb_id        bigint,
    ratings_count  bigint NOT NULL,
    rating_average float8,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- title filter (ILIKE '%x%')
CREATE INDEX movies_title_trgm ON movies USING gin (title gin_trgm_ops);
-- genre / exclude_genre (&&, @>) and tag (@>)
CREATE INDEX movies_genre_keys ON movies USING gin (genre_keys);
CREATE INDEX movies_tag_keys ON movies USING gin (tag_keys);
-- orderings (keyset: the sort value, then id)
CREATE INDEX movies_by_title ON movies (title COLLATE "C", id);
CREATE INDEX movies_by_year ON movies ((coalesce(year, 0)), id);
CREATE INDEX movies_by_rating_average ON movies ((coalesce(rating_average, 0)), id);
CREATE INDEX movies_by_ratings_count ON movies (ratings_count, id);
-- links: looking a movie up by its IMDb id
CREATE INDEX movies_by_imdb_id ON movies (imdb_id) WHERE imdb_id IS NOT NULL;
CREATE UNIQUE INDEX movies_by_movielens_id ON movies (movielens_id) WHERE movielens_id IS NOT NULL;

-- One row per (movie, rater): the movie's ratings page, and a rater's ratings.
CREATE TABLE movie_ratings (
    movie_id  uuid     NOT NULL,
    rater     text     NOT NULL,
    rating    numeric(2, 1) NOT NULL,
    rated_at  timestamptz NOT NULL,
    PRIMARY KEY (movie_id, rater)
);
CREATE INDEX movie_ratings_by_rater ON movie_ratings (rater, movie_id);
CREATE INDEX movie_ratings_by_value ON movie_ratings (rating);

-- One row per (movie, rater, tag).
CREATE TABLE movie_tags (
    movie_id  uuid NOT NULL,
    rater     text NOT NULL,
    tag       text NOT NULL,
    tagged_at timestamptz NOT NULL,
    PRIMARY KEY (movie_id, rater, tag)
);
CREATE INDEX movie_tags_by_tag ON movie_tags (lower(tag));
