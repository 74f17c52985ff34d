//! The `users` table: written by the users projection, read by the account queries.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use eshop_domain::values::Role;
use eshop_projections::user::{apply, UserRecord};
use eshop_projections::RelayedEvent;

use super::{aggregate_ids, evolve, ApplyError, ReadModel};

const COLUMNS: &str =
    "id, email, username, first_name, last_name, roles, is_active, balance_cents, erased, version";

type Row = (
    Uuid,
    String,
    String,
    Option<String>,
    Option<String>,
    Vec<String>,
    bool,
    i64,
    bool,
    i64,
);

fn into_record(row: Row) -> UserRecord {
    let (
        id,
        email,
        username,
        first_name,
        last_name,
        roles,
        is_active,
        balance_cents,
        erased,
        version,
    ) = row;
    UserRecord {
        id,
        email,
        username,
        first_name,
        last_name,
        roles: roles
            .iter()
            .filter_map(|role| Role::parse(role).ok())
            .collect(),
        is_active,
        balance_cents,
        erased,
        version: u64::try_from(version).unwrap_or_default(),
    }
}

#[derive(Default)]
pub struct UsersProjection;

impl ReadModel for UsersProjection {
    const NAME: &'static str = "users";
    const AGGREGATE_TYPE: &'static str = "user";

    async fn apply(
        &self,
        connection: &mut PgConnection,
        events: &[RelayedEvent],
    ) -> Result<Vec<Uuid>, ApplyError> {
        let ids = aggregate_ids(events)?;
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM users WHERE id = ANY($1) FOR UPDATE"
        ))
        .bind(&ids)
        .fetch_all(&mut *connection)
        .await?;
        let mut records: HashMap<Uuid, UserRecord> = rows
            .into_iter()
            .map(into_record)
            .map(|record| (record.id, record))
            .collect();
        let changed = evolve(&mut records, events, apply)?;
        for record in changed.iter().filter_map(|id| records.get(id)) {
            let roles: Vec<&str> = record.roles.iter().map(|role| role.as_str()).collect();
            sqlx::query(
                "INSERT INTO users (id, email, username, first_name, last_name, roles, is_active, balance_cents, erased, version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (id) DO UPDATE SET
                     email = EXCLUDED.email, username = EXCLUDED.username,
                     first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
                     roles = EXCLUDED.roles, is_active = EXCLUDED.is_active,
                     balance_cents = EXCLUDED.balance_cents, erased = EXCLUDED.erased,
                     version = EXCLUDED.version
                 WHERE users.version < EXCLUDED.version",
            )
            .bind(record.id)
            .bind(&record.email)
            .bind(&record.username)
            .bind(&record.first_name)
            .bind(&record.last_name)
            .bind(&roles)
            .bind(record.is_active)
            .bind(record.balance_cents)
            .bind(record.erased)
            .bind(i64::try_from(record.version).unwrap_or(i64::MAX))
            .execute(&mut *connection)
            .await?;
        }
        Ok(changed)
    }

    async fn after_commit(&self, _changed: &[Uuid]) {}
}

/// Queries over the `users` table.
#[derive(Clone)]
pub struct PgUsers {
    pool: PgPool,
}

impl PgUsers {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<UserRecord>, sqlx::Error> {
        let row: Option<Row> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(into_record))
    }

    /// Accounts by id (ids are time-ordered for most accounts), after `after`.
    pub async fn list(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<UserRecord>, sqlx::Error> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after.unwrap_or(Uuid::nil()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(into_record).collect())
    }

    /// Waits until the row reaches `version` (read-your-writes), polling; `None` on timeout.
    pub async fn wait_for_version(
        &self,
        id: Uuid,
        version: u64,
        timeout: std::time::Duration,
    ) -> Result<Option<UserRecord>, sqlx::Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let record = self.get(id).await?;
            if record.as_ref().is_some_and(|r| r.version >= version) {
                return Ok(record);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
