//! For tests: a fresh, migrated database per test, so tests run in parallel and reruns start
//! clean. Its name starts with `eshop_test_`; CI drops old ones before it runs.

use sqlx::PgPool;
use uuid::Uuid;

use crate::database::{connect, migrate, DatabaseSettings};

/// The server tests use: `ESHOP_TEST_DATABASE_URL` (a URL without a database name), or the
/// local default.
pub fn server_url() -> String {
    std::env::var("ESHOP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

/// Creates and migrates a new database; returns its URL and a pool on it.
pub async fn fresh_database() -> (String, PgPool) {
    let name = format!("eshop_test_{}", Uuid::new_v4().simple());
    let url = format!("{}/{name}", server_url().trim_end_matches('/'));
    let pool = connect(&DatabaseSettings {
        url: url.clone(),
        max_connections: 20,
    })
    .await
    .unwrap_or_else(|error| panic!("cannot create the test database {name}: {error}"));
    migrate(&pool)
        .await
        .unwrap_or_else(|error| panic!("cannot migrate {name}: {error}"));
    (url, pool)
}
