//! Login sessions and their refresh tokens (operational state, not events: a session says who
//! may act, not what happened to the shop).
//!
//! A session is a family of refresh tokens. Each token is used once: using it marks it spent
//! and issues the next one. Presenting a spent token means a copy is in someone else's hands,
//! so the whole family is revoked, and the access tokens that name the session stop working.
//! Only a SHA-256 digest of each token is stored.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use eshop_commands::digest::sha256_hex;

/// A refresh token as handed to the client: 244 random bits (two v4 UUIDs).
fn new_refresh_token() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

fn token_digest(token: &str) -> String {
    sha256_hex(&[b"refresh-token:", token.as_bytes()])
}

pub use eshop_commands::sessions::{Issued, RefreshError};

#[derive(Clone)]
pub struct PgSessions {
    pool: PgPool,
    lifetime: Duration,
}

impl PgSessions {
    /// `lifetime`: how long a session lasts without a new login (refreshes do not extend it).
    pub fn new(pool: PgPool, lifetime: Duration) -> Self {
        Self { pool, lifetime }
    }

    fn lifetime_seconds(&self) -> f64 {
        self.lifetime.as_secs_f64()
    }

    /// A new session with its first refresh token.
    pub async fn start(&self, user_id: Uuid) -> Result<Issued, sqlx::Error> {
        let session_id = Uuid::now_v7();
        let refresh_token = new_refresh_token();
        sqlx::query(
            "WITH session AS (
                 INSERT INTO sessions (id, user_id, expires_at)
                 VALUES ($1, $2, now() + make_interval(secs => $3))
                 RETURNING id, expires_at
             )
             INSERT INTO refresh_tokens (token_digest, session_id, expires_at)
             SELECT $4, id, expires_at FROM session",
        )
        .bind(session_id)
        .bind(user_id)
        .bind(self.lifetime_seconds())
        .bind(token_digest(&refresh_token))
        .execute(&self.pool)
        .await?;
        Ok(Issued {
            session_id,
            user_id,
            refresh_token,
        })
    }

    /// Spends `token` and issues its successor in the same session. Two requests racing with
    /// one token: the row lock lets one spend it; the other then finds it spent, which is
    /// reuse, and the family is revoked.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn refresh(&self, token: &str) -> Result<Issued, RefreshError> {
        self.spend(token)
            .await
            .unwrap_or_else(|error| Err(RefreshError::Unavailable(Box::new(error))))
    }

    /// `refresh`, with the database's errors apart from the refusals.
    async fn spend(&self, token: &str) -> Result<Result<Issued, RefreshError>, sqlx::Error> {
        let digest = token_digest(token);
        let mut tx = self.pool.begin().await?;
        let spent: Option<(Uuid, Uuid, bool)> = sqlx::query_as(
            "UPDATE refresh_tokens AS token SET spent_at = now()
               FROM sessions AS session
              WHERE token.token_digest = $1 AND token.spent_at IS NULL
                AND token.expires_at > now() AND session.id = token.session_id
             RETURNING session.id, session.user_id, session.revoked_at IS NULL",
        )
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((session_id, user_id, live)) = spent else {
            tx.rollback().await?;
            return Ok(Err(self.refused(&digest).await?));
        };
        if !live {
            tx.commit().await?;
            return Ok(Err(RefreshError::Revoked));
        }
        let refresh_token = new_refresh_token();
        sqlx::query(
            "INSERT INTO refresh_tokens (token_digest, session_id, expires_at)
             SELECT $1, id, expires_at FROM sessions WHERE id = $2",
        )
        .bind(token_digest(&refresh_token))
        .bind(session_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(Issued {
            session_id,
            user_id,
            refresh_token,
        }))
    }

    /// Why a token could not be spent; a spent one revokes its family.
    async fn refused(&self, digest: &str) -> Result<RefreshError, sqlx::Error> {
        let reused: Option<Uuid> = sqlx::query_scalar(
            "SELECT session_id FROM refresh_tokens WHERE token_digest = $1 AND spent_at IS NOT NULL",
        )
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        match reused {
            Some(session_id) => {
                self.revoke(session_id, "refresh token reused").await?;
                tracing::warn!(%session_id, "a spent refresh token was presented; the session is revoked");
                Ok(RefreshError::Reused)
            }
            None => Ok(RefreshError::Invalid),
        }
    }

    pub async fn revoke(&self, session_id: Uuid, reason: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
              WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(session_id)
        .bind(reason)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Ends every session of the user (a password change, an erasure, a deactivation).
    pub async fn revoke_all(&self, user_id: Uuid, reason: &str) -> Result<u64, sqlx::Error> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
              WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(reason)
        .execute(&self.pool)
        .await
        .map(|done| done.rows_affected())
    }

    /// Deletes sessions (and their refresh tokens) that expired or were revoked more than
    /// `kept` ago: nothing can use them any more, and the spent-token trail of a revoked
    /// session has done its job by then.
    pub async fn purge_ended(&self, kept: Duration) -> Result<u64, sqlx::Error> {
        sqlx::query(
            "DELETE FROM sessions
              WHERE coalesce(least(revoked_at, expires_at), expires_at)
                    < now() - make_interval(secs => $1)",
        )
        .bind(kept.as_secs_f64())
        .execute(&self.pool)
        .await
        .map(|done| done.rows_affected())
    }

    /// Whether access tokens naming this session are still honoured.
    pub async fn is_live(&self, session_id: Uuid) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sessions
                             WHERE id = $1 AND revoked_at IS NULL AND expires_at > now())",
        )
        .bind(session_id)
        .fetch_one(&self.pool)
        .await
    }
}
