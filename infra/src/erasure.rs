//! What erasing a user removes besides their key: everything derived from their personal data
//! that is not an event.

use sqlx::PgPool;
use uuid::Uuid;

use eshop_domain::user::{User, EMAIL_CLAIM};

/// Erases what is derived from users' personal data.
#[derive(Clone)]
pub struct Erasure {
    pool: PgPool,
}

impl Erasure {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// See `erase`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn erase_user_data(&self, user_id: Uuid) -> Result<(), sqlx::Error> {
        erase(&self.pool, user_id).await
    }
}

/// Deletes the user's personal-data key (the sealed fields of their events become unreadable
/// for good), their e-mail claim (a digest of the address), the remembered answers to their
/// requests (which may quote their e-mail), and their address, names and subjects in the
/// mailer's sent-log (a mail still waiting is skipped), and the bodies and answers of the
/// background tasks they (or an admin, about them) queued. One transaction; a repeat changes
/// nothing.
async fn erase(pool: &PgPool, user_id: Uuid) -> Result<(), sqlx::Error> {
    let subject = user_id.to_string();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO personal_data_keys (subject, key, erased_at) VALUES ($1, NULL, now())
         ON CONFLICT (subject) DO UPDATE SET key = NULL, erased_at = now()
         WHERE personal_data_keys.key IS NOT NULL",
    )
    .bind(&subject)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM unique_claims WHERE aggregate_type = $1 AND aggregate_id = $2 AND kind = $3",
    )
    .bind(<User as cqrs_es::Aggregate>::TYPE)
    .bind(&subject)
    .bind(EMAIL_CLAIM)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM idempotency_records WHERE scope = $1 OR body->>'id' = $1")
        .bind(&subject)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE email_log SET recipient = NULL, subject = NULL, context = '{}'::jsonb,
                status = CASE WHEN status = 'pending' THEN 'skipped' ELSE status END,
                last_error = CASE WHEN status = 'pending' THEN 'the user was erased' ELSE last_error END,
                updated_at = now()
          WHERE user_id = $1",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    // Requests run in the background keep their body and answer in `tasks`: a registration
    // (queued without a token; its answer names the new user), a profile change, an admin's
    // change to this user. Their bodies and answers go; what was asked (method, path) and how
    // it ended (status, problem) stay.
    sqlx::query(
        r#"UPDATE tasks
              SET input = CASE WHEN jsonb_typeof(input) = 'object' AND input ? 'body'
                               THEN jsonb_set(input, '{body}', '"[erased]"') ELSE '"[erased]"'::jsonb END,
                  result = CASE WHEN result IS NULL THEN NULL
                                WHEN jsonb_typeof(result) = 'object' AND result ? 'body'
                                THEN jsonb_set(result, '{body}', '"[erased]"') ELSE '"[erased]"'::jsonb END,
                  updated_at = now()
            WHERE kind = 'command'
              AND (owner_id = $1
                   OR result -> 'body' ->> 'id' = $2
                   OR strpos(input ->> 'path', $2) > 0)"#,
    )
    .bind(user_id)
    .bind(&subject)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
