-- Issue 18: one-time tokens mailed to set a password (an account an admin created) or reset a
-- forgotten one. Only a SHA-256 digest is kept; a token works once, before it expires.
CREATE TABLE password_tokens (
    token_digest text PRIMARY KEY,
    user_id      uuid NOT NULL,
    purpose      text NOT NULL CHECK (purpose IN ('reset', 'set')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    spent_at     timestamptz
);
CREATE INDEX password_tokens_of_user ON password_tokens (user_id) WHERE spent_at IS NULL;
