-- A session is one login: a family of refresh tokens, each used once. Presenting a spent token
-- revokes the family. Access tokens name their session, which must not be revoked.
CREATE TABLE sessions (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text
);
CREATE INDEX sessions_of_user ON sessions (user_id) WHERE revoked_at IS NULL;

-- Only a digest of each refresh token is kept.
CREATE TABLE refresh_tokens (
    token_digest text PRIMARY KEY,
    session_id   uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at    timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    spent_at     timestamptz
);
CREATE INDEX refresh_tokens_of_session ON refresh_tokens (session_id);
