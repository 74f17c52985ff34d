//! One lazily made Redis connection that never makes a caller wait long: while Redis is
//! unreachable, callers get `None` at once (a reconnect is tried at most once a second) and
//! choose their own fallback.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

pub struct RedisLink {
    /// `None` when eshop runs without Redis (an empty URL): every caller takes its fallback.
    client: Option<redis::Client>,
    /// The connection (it reconnects by itself once made) and when we last tried to make one.
    connection: RwLock<(Option<ConnectionManager>, Option<Instant>)>,
}

impl RedisLink {
    /// An empty `url` runs without Redis.
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        let client = if url.is_empty() {
            None
        } else {
            Some(redis::Client::open(url)?)
        };
        Ok(Self {
            client,
            connection: RwLock::new((None, None)),
        })
    }

    /// A connection, or `None` while Redis is unreachable.
    pub async fn connection(&self) -> Option<ConnectionManager> {
        let client = self.client.as_ref()?;
        {
            let slot = self.connection.read().unwrap_or_else(|p| p.into_inner());
            if let Some(connection) = &slot.0 {
                return Some(connection.clone());
            }
        }
        {
            let mut slot = self.connection.write().unwrap_or_else(|p| p.into_inner());
            if slot.0.is_some()
                || slot
                    .1
                    .is_some_and(|tried| tried.elapsed() < RECONNECT_EVERY)
            {
                return slot.0.clone();
            }
            slot.1 = Some(Instant::now());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1);
        match tokio::time::timeout(
            CONNECT_TIMEOUT * 2,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        {
            Ok(Ok(connection)) => {
                let mut slot = self.connection.write().unwrap_or_else(|p| p.into_inner());
                slot.0 = Some(connection.clone());
                Some(connection)
            }
            Ok(Err(error)) => {
                tracing::debug!(error = %error, "Redis is unreachable");
                None
            }
            Err(_) => None,
        }
    }
}
