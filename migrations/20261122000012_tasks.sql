-- Background tasks: what a client polls. The work itself travels on a JetStream work-queue
-- stream; this table is the status.
CREATE TABLE tasks (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL,
    status      text NOT NULL CHECK (status IN ('PENDING', 'PROCESSING', 'DONE', 'FAILED')),
    progress    smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    input       jsonb NOT NULL,
    result      jsonb,
    error       jsonb,
    -- Who asked (NULL: an anonymous request, or the scheduler); their roles when they asked.
    owner_id    uuid,
    owner_roles text[] NOT NULL DEFAULT '{}',
    -- The session it was asked in: a background run acts in it, and ends with it.
    owner_session_id uuid,
    attempts    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_by_owner ON tasks (owner_id, created_at DESC, id DESC);
CREATE INDEX tasks_by_time ON tasks (created_at DESC, id DESC);

-- Product rating aggregates as the `recompute_ratings` task last computed them from the
-- reviews read model (for reports and exports; the catalog computes its figures as it reads).
CREATE TABLE product_ratings (
    product_id     uuid PRIMARY KEY,
    rating_count   bigint NOT NULL,
    rating_average numeric(4, 2),
    computed_at    timestamptz NOT NULL DEFAULT now()
);
