//! Connecting to Postgres: create the database when it is missing, then migrate.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("DATABASE_URL is not a valid Postgres URL")]
    InvalidUrl(#[source] sqlx::Error),
    #[error("cannot reach Postgres")]
    Connect(#[source] sqlx::Error),
    #[error("cannot create the database {0}")]
    Create(String, #[source] sqlx::Error),
    #[error("migrations failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// Opens a pool on the configured database, creating the database first if it does not exist.
pub async fn connect(settings: &DatabaseSettings) -> Result<PgPool, DatabaseError> {
    let options = connect_options(settings)?;
    create_database_if_missing(&options).await?;
    open_pool(settings, options).await
}

/// A pool for the catalog's list queries, on a database `connect` opened: its statements keep
/// one generic plan. By default Postgres plans a prepared statement again for each execution
/// when its first plans were cheaper than the generic one, which a list query's pattern and
/// range filters always make them look; planning then cost about as much as running (a
/// `title` filter: 3,075 against 4,366 statements/s in pgbench, the other list shapes within
/// 15 % either way).
pub async fn connect_for_listing(settings: &DatabaseSettings) -> Result<PgPool, DatabaseError> {
    let options = connect_options(settings)?.options([("plan_cache_mode", "force_generic_plan")]);
    open_pool(settings, options).await
}

fn connect_options(settings: &DatabaseSettings) -> Result<PgConnectOptions, DatabaseError> {
    Ok(PgConnectOptions::from_str(&settings.url)
        .map_err(DatabaseError::InvalidUrl)?
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500)))
}

async fn open_pool(
    settings: &DatabaseSettings,
    options: PgConnectOptions,
) -> Result<PgPool, DatabaseError> {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // By default sqlx pings every connection it hands out: a round trip before each
        // statement. A dead connection fails its statement instead, which the caller sees as
        // the database being unavailable (503, or a retry in the workers); idle connections
        // are recycled before a server or proxy would drop them.
        .test_before_acquire(false)
        .idle_timeout(Duration::from_secs(60))
        .connect_with(options)
        .await
        .map_err(DatabaseError::Connect)
}

async fn create_database_if_missing(options: &PgConnectOptions) -> Result<(), DatabaseError> {
    let name = options.get_database().unwrap_or("postgres").to_string();
    let mut maintenance = PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .map_err(DatabaseError::Connect)?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut maintenance)
            .await
            .map_err(DatabaseError::Connect)?;
    if !exists {
        let create = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        if let Err(error) = sqlx::query(&create).execute(&mut maintenance).await {
            // Another process may have created it between our check and our CREATE.
            let raced = error
                .as_database_error()
                .and_then(|e| e.code())
                .is_some_and(|code| code == "42P04");
            if !raced {
                return Err(DatabaseError::Create(name, error));
            }
        } else {
            tracing::info!(database = %name, "created the database");
        }
    }
    maintenance.close().await.map_err(DatabaseError::Connect)
}

pub async fn migrate(pool: &PgPool) -> Result<(), DatabaseError> {
    sqlx::migrate!("../migrations")
        .run(pool)
        .await
        .map_err(DatabaseError::Migrate)
}
