//! The user directory (`eshop_commands::directory::UserDirectory`) over the users read model.

use sqlx::PgPool;
use uuid::Uuid;

use eshop_commands::directory::UserDirectory;
use eshop_commands::BoxError;

#[derive(Clone)]
pub struct PgUserDirectory {
    pool: PgPool,
}

impl PgUserDirectory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl UserDirectory for PgUserDirectory {
    #[tracing::instrument(level = "debug", skip(self))]
    async fn active_admins(&self) -> Result<Vec<Uuid>, BoxError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM users WHERE is_active AND 'admin' = ANY (roles) ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn active_users_after(&self, after: Uuid, limit: u32) -> Result<Vec<Uuid>, BoxError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM users WHERE is_active AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }
}
