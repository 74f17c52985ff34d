-- The economic calendar's read model: one document per entry (see infra read_models/calendar),
-- with the columns list pages filter and sort by.
CREATE TABLE calendar_events (
    id         uuid PRIMARY KEY,
    version    bigint NOT NULL,
    record     jsonb NOT NULL,
    date       date NOT NULL,
    time       time NOT NULL,
    name       text NOT NULL,
    country    text NOT NULL,
    importance text NOT NULL,
    deleted    boolean NOT NULL
);
CREATE INDEX calendar_events_order ON calendar_events (date, time, name, id) WHERE NOT deleted;
CREATE INDEX calendar_events_country ON calendar_events (country, date) WHERE NOT deleted;

-- The built-in monthly import of ESHOP_CALENDAR_FEED: 23:00 (ESHOP_TZ) on the last day of
-- each month. Admins re-time or pause it like the other built-ins.
INSERT INTO schedules (id, name, job_kind, cron, builtin) VALUES
    ('00000000-0000-7000-8000-000000000005', 'calendar import', 'calendar_import', '0 0 23 L * *', true)
ON CONFLICT (id) DO NOTHING;
