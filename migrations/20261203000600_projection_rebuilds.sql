-- The last rebuild of each read model (`eshop projections rebuild`,
-- `POST /api/admin/projections/{name}/rebuild`): its phase and progress, for
-- `GET /api/admin/projections`. A row whose rebuild lock nobody holds any more and that did
-- not finish reads as interrupted.
CREATE TABLE projection_rebuilds (
    name         text PRIMARY KEY,
    phase        text NOT NULL,
    events_done  bigint NOT NULL DEFAULT 0,
    events_total bigint NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    error        text
);
