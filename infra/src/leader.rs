//! One active instance of a worker across replicas: whoever holds a Postgres advisory lock.
//!
//! The lock lives on a connection taken out of the pool for as long as the worker leads. When
//! the process dies the connection closes, Postgres releases the lock, and a waiting replica
//! takes over within one retry interval.

use std::future::Future;
use std::time::Duration;

use eshop_commands::BoxError;
use sqlx::{PgConnection, PgPool};

use crate::shutdown::Shutdown;

/// How often a follower tries to become the leader.
pub const TAKEOVER_INTERVAL: Duration = Duration::from_secs(1);

/// A stable lock key for a worker name (advisory locks are per database).
pub fn lock_key(name: &str) -> i64 {
    // FNV-1a: stable across builds, unlike the std hasher.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

async fn try_lock(pool: &PgPool, key: i64) -> Result<Option<PgConnection>, sqlx::Error> {
    let mut connection = pool.acquire().await?.detach();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut connection)
        .await?;
    Ok(locked.then_some(connection))
}

/// Runs `lead` whenever this process holds the lock `name`, until shutdown. `lead` gets the
/// lock's connection (losing it means losing the lead) and returns when it stops leading; an
/// error is logged and the lead is given up for a moment.
pub async fn run_as_leader<F, Fut>(pool: PgPool, name: &str, mut shutdown: Shutdown, mut lead: F)
where
    F: FnMut(PgConnection, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    let key = lock_key(name);
    while !shutdown.is_triggered() {
        match try_lock(&pool, key).await {
            Ok(Some(connection)) => {
                tracing::info!(worker = name, "leading");
                if let Err(error) = lead(connection, shutdown.clone()).await {
                    tracing::warn!(worker = name, error = %error, "stepped down after an error");
                } else {
                    tracing::info!(worker = name, "stepped down");
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(worker = name, error = %error, "cannot try the leader lock")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(TAKEOVER_INTERVAL) => {}
            () = shutdown.wait() => {}
        }
    }
}
