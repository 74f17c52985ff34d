//! One-time password tokens: mailed to set the password of an account an admin created, or
//! to reset a forgotten one. Operational state like sessions, not events: only a SHA-256
//! digest of each token is stored, it works once, and not after it expires.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use eshop_commands::digest::sha256_hex;

/// Why a token is asked for (and so how long it lasts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Reset,
    Set,
}

impl Purpose {
    fn name(self) -> &'static str {
        match self {
            Self::Reset => "reset",
            Self::Set => "set",
        }
    }
}

/// A token to mail. Not `Debug`-printed with its value: it is a credential.
pub struct NewToken {
    pub token: String,
    pub expires_in: Duration,
}

fn digest(token: &str) -> String {
    sha256_hex(&[b"password-token:", token.trim().as_bytes()])
}

#[derive(Clone)]
pub struct PgPasswordTokens {
    pool: PgPool,
}

impl PgPasswordTokens {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// A new token for `user_id`, valid for `lifetime`.
    pub async fn issue(
        &self,
        user_id: Uuid,
        purpose: Purpose,
        lifetime: Duration,
    ) -> Result<NewToken, sqlx::Error> {
        let token = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        sqlx::query(
            "INSERT INTO password_tokens (token_digest, user_id, purpose, expires_at)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        )
        .bind(digest(&token))
        .bind(user_id)
        .bind(purpose.name())
        .bind(lifetime.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(NewToken {
            token,
            expires_in: lifetime,
        })
    }

    /// Whose token this is, if it is unspent and unexpired (it stays so).
    pub async fn holder(&self, token: &str) -> Result<Option<Uuid>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT user_id FROM password_tokens
              WHERE token_digest = $1 AND spent_at IS NULL AND expires_at > now()",
        )
        .bind(digest(token))
        .fetch_optional(&self.pool)
        .await
    }

    /// Spends the token, and every other unspent token of its user: the user it was for, or
    /// `None` when it was unknown, spent (by a racing request too) or expired.
    pub async fn spend(&self, token: &str) -> Result<Option<Uuid>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let user_id: Option<Uuid> = sqlx::query_scalar(
            "UPDATE password_tokens SET spent_at = now()
              WHERE token_digest = $1 AND spent_at IS NULL AND expires_at > now()
              RETURNING user_id",
        )
        .bind(digest(token))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(user_id) = user_id {
            sqlx::query(
                "UPDATE password_tokens SET spent_at = now() WHERE user_id = $1 AND spent_at IS NULL",
            )
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(user_id)
    }
}
