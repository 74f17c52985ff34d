-- The mailer's sent-log: one row per (event, template). The row is claimed before the mail
-- is sent, so a redelivered event finds it and sends nothing; it is derived data (invariant 1)
-- but, unlike a read model, never reset by a rebuild, so a rebuild never mails anyone.
CREATE TABLE email_log (
    -- The event (or, for scheduled mails, the run and recipient) the mail is about.
    source_id    uuid   NOT NULL,
    template     text   NOT NULL,
    -- The event's global position and type (or the job kind), for people reading the log.
    position     bigint,
    source       text   NOT NULL,
    user_id      uuid,
    recipient    text,
    subject      text,
    -- pending: claimed, not sent yet (or waiting for a retry); sent; failed (permanently);
    -- skipped (no address: the user is erased or unknown).
    status       text   NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- The context the template needs, so a retry renders the same mail without the event.
    context      jsonb  NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    PRIMARY KEY (source_id, template)
);
CREATE INDEX email_log_by_status ON email_log (status, created_at DESC);
CREATE INDEX email_log_due ON email_log (next_attempt_at) WHERE status = 'pending';
