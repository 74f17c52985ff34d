-- Scheduled jobs: the built-in ones (seeded here, so admins can see, pause or re-time them
-- like their own) and admin-defined ones. Cron expressions are read in ESHOP_TZ.
CREATE TABLE schedules (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    job_kind    text NOT NULL,
    params      jsonb NOT NULL DEFAULT '{}',
    -- Exactly one of: a cron expression (seconds first), a fixed interval, one time.
    cron        text,
    every_seconds bigint CHECK (every_seconds > 0),
    run_at      timestamptz,
    CHECK (num_nonnulls(cron, every_seconds, run_at) = 1),
    enabled     boolean NOT NULL DEFAULT true,
    builtin     boolean NOT NULL DEFAULT false,
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    version     bigint NOT NULL DEFAULT 1
);

-- One row per schedule and tick: the replica whose insert wins runs the tick, so a tick runs
-- once however many replicas fire it. The rows are the run history too.
CREATE TABLE schedule_runs (
    id           uuid PRIMARY KEY,
    schedule_id  uuid NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    tick         timestamptz NOT NULL,
    -- running; succeeded; failed; interrupted (its replica stopped heartbeating mid-run).
    status       text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    owner        text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    error        text,
    result       jsonb,
    UNIQUE (schedule_id, tick)
);
CREATE INDEX schedule_runs_history ON schedule_runs (schedule_id, tick DESC);
CREATE INDEX schedule_runs_running ON schedule_runs (heartbeat_at) WHERE status = 'running';

INSERT INTO schedules (id, name, job_kind, cron, builtin) VALUES
    ('00000000-0000-7000-8000-000000000001', 'daily sales summary', 'sales_summary', '0 0 22 * * *', true),
    ('00000000-0000-7000-8000-000000000002', 'book fair announcement', 'book_fair_announcement', '0 0 10 1 2 *', true),
    ('00000000-0000-7000-8000-000000000003', 'monthly catalog import', 'catalog_import', '0 0 23 L * *', true),
    ('00000000-0000-7000-8000-000000000004', 'housekeeping', 'housekeeping', '0 */3 * * * *', true);
