//! The `users` table: written by the users projection, read by the account queries.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use eshop_domain::values::Role;
use eshop_projections::user::UserRecord;
use eshop_projections::ReadModel;

use super::progress::VersionWaits;
use super::{version_column, Table};

const COLUMNS: &str =
    "id, email, username, first_name, last_name, roles, is_active, balance_cents, erased, version, created_at, updated_at";

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
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
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
        created_at,
        updated_at,
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
        created_at,
        updated_at,
        version: u64::try_from(version).unwrap_or_default(),
    }
}

impl Table for UserRecord {
    const TABLES: &'static [&'static str] = &["users"];

    async fn load(
        connection: &mut PgConnection,
        ids: &[Uuid],
        for_update: bool,
    ) -> Result<Vec<Self>, sqlx::Error> {
        let lock = if for_update { " FOR UPDATE" } else { "" };
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM users WHERE id = ANY($1){lock}"
        ))
        .bind(ids)
        .fetch_all(connection)
        .await?;
        Ok(rows.into_iter().map(into_record).collect())
    }

    /// One statement for the whole batch (a purchase changes a wallet: a batch touches hundreds
    /// of users). Roles travel as one comma-joined text per row: Postgres has no arrays of
    /// arrays of different lengths, and no role name holds a comma.
    async fn upsert(connection: &mut PgConnection, records: &[&Self]) -> Result<(), sqlx::Error> {
        if records.is_empty() {
            return Ok(());
        }
        let roles: Vec<String> = records
            .iter()
            .map(|record| {
                record
                    .roles
                    .iter()
                    .map(|role| role.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        sqlx::query(
            "INSERT INTO users (id, email, username, first_name, last_name, roles, is_active, balance_cents, erased, version, created_at, updated_at)
             SELECT id, email, username, first_name, last_name,
                    coalesce(string_to_array(nullif(roles, ''), ','), '{}'), is_active, balance_cents, erased, version,
                    created_at, updated_at
               FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::bigint[], $9::bool[], $10::bigint[], $11::timestamptz[], $12::timestamptz[])
                    AS changed(id, email, username, first_name, last_name, roles, is_active, balance_cents, erased, version, created_at, updated_at)
             ON CONFLICT (id) DO UPDATE SET
                 email = EXCLUDED.email, username = EXCLUDED.username,
                 first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
                 roles = EXCLUDED.roles, is_active = EXCLUDED.is_active,
                 balance_cents = EXCLUDED.balance_cents, erased = EXCLUDED.erased,
                 version = EXCLUDED.version,
                 created_at = coalesce(users.created_at, EXCLUDED.created_at),
                 updated_at = EXCLUDED.updated_at
             WHERE users.version < EXCLUDED.version",
        )
        .bind(records.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.email.clone()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.username.clone()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.first_name.clone()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.last_name.clone()).collect::<Vec<_>>())
        .bind(roles)
        .bind(records.iter().map(|r| r.is_active).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.balance_cents).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.erased).collect::<Vec<_>>())
        .bind(records.iter().map(|r| version_column(r.version)).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .execute(connection)
        .await?;
        Ok(())
    }
}

/// Queries over the `users` table.
#[derive(Clone)]
pub struct PgUsers {
    pool: PgPool,
    waits: VersionWaits,
}

impl PgUsers {
    pub fn new(pool: PgPool) -> Self {
        Self {
            waits: VersionWaits::new(pool.clone()),
            pool,
        }
    }

    /// Waits for versions on the process's shared listener.
    pub fn waiting_on(self, waits: VersionWaits) -> Self {
        Self { waits, ..self }
    }

    /// The accounts of `ids` that exist, in one query.
    pub async fn get_many(&self, ids: &[Uuid]) -> Result<Vec<UserRecord>, sqlx::Error> {
        let mut connection = self.pool.acquire().await?;
        UserRecord::load(&mut connection, ids, false).await
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

    /// The account once it reflects `version` (read-your-writes), or `None` after `timeout`;
    /// woken by the projection's announcements, not polling.
    pub async fn wait_for_version(
        &self,
        id: Uuid,
        version: u64,
        timeout: std::time::Duration,
    ) -> Result<Option<UserRecord>, sqlx::Error> {
        self.waits
            .read_when(
                UserRecord::NAME,
                id,
                version,
                timeout,
                || self.get(id),
                |record| record.version,
            )
            .await
    }

    /// Whether every record of `wanted` (`(id, version)`) reflects its version, waiting up to
    /// `timeout` (read your own writes in a list).
    pub async fn wait_for_versions(
        &self,
        wanted: &[(Uuid, u64)],
        timeout: std::time::Duration,
    ) -> Result<bool, sqlx::Error> {
        self.waits
            .all_reached(
                UserRecord::NAME,
                <UserRecord as Table>::TABLES[0],
                wanted,
                timeout,
            )
            .await
    }
}
