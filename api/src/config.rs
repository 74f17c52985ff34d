//! Configuration: environment variables (or the matching flags), with defaults that work on a
//! developer machine where Postgres trusts local connections.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

/// The development signing key. Tokens signed with it can be forged by anyone who reads this
/// file, so the server warns loudly when it is in use.
pub const DEVELOPMENT_JWT_SECRET: &str = "eshop-development-secret-do-not-use-in-production";

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Postgres connection URL; the database is created when missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/eshop"
    )]
    pub database_url: String,

    /// Connections in the Postgres pool.
    #[arg(long, env = "ESHOP_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: u32,

    /// NATS server with JetStream, for the event stream.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// Namespaces the JetStream stream and subjects (empty: `ESHOP_EVENTS`, `eshop.events.>`).
    #[arg(long, env = "ESHOP_NATS_PREFIX", default_value = "")]
    pub nats_prefix: String,

    /// Redis, for the read cache.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Prefix of every Redis key eshop writes.
    #[arg(long, env = "ESHOP_REDIS_PREFIX", default_value = "eshop:")]
    pub redis_prefix: String,

    /// How long a cache entry may live (invalidation does not depend on it).
    #[arg(long, env = "ESHOP_CACHE_TTL_SECONDS", default_value_t = 300)]
    pub cache_ttl_seconds: u64,

    /// Run the relay and the projection builders in this process.
    #[arg(long, env = "ESHOP_WORKERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub workers: bool,

    /// Latency of each charge in the simulated payment gateway, in milliseconds.
    #[arg(long, env = "ESHOP_GATEWAY_LATENCY_MS", default_value_t = 0)]
    pub gateway_latency_ms: u64,

    /// Address the HTTP API listens on (port 0 picks a free port).
    #[arg(long, env = "ESHOP_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// HS256 key for access tokens.
    #[arg(long, env = "ESHOP_JWT_SECRET", default_value = DEVELOPMENT_JWT_SECRET, hide_env_values = true, hide_default_value = true)]
    pub jwt_secret: String,

    /// Lifetime of an access token, in seconds.
    #[arg(long, env = "ESHOP_ACCESS_TOKEN_TTL_SECONDS", default_value_t = 3600)]
    pub access_token_ttl_seconds: u64,

    /// With ESHOP_ADMIN_PASSWORD: an admin account with this e-mail exists after start.
    #[arg(long, env = "ESHOP_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    #[arg(long, env = "ESHOP_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Attempts (the first included) at a command whose aggregate changed under it.
    #[arg(long, env = "ESHOP_COMMAND_ATTEMPTS", default_value_t = 10)]
    pub command_attempts: u32,

    /// Log as JSON lines instead of text.
    #[arg(long, env = "ESHOP_LOG_JSON", default_value_t = false)]
    pub log_json: bool,
}

impl Config {
    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_seconds)
    }

    pub fn uses_development_secret(&self) -> bool {
        self.jwt_secret == DEVELOPMENT_JWT_SECRET
    }

    /// The admin account to ensure at start, when both halves are configured.
    pub fn admin_account(&self) -> Option<(&str, &str)> {
        match (&self.admin_email, &self.admin_password) {
            (Some(email), Some(password)) if !email.is_empty() && !password.is_empty() => {
                Some((email, password))
            }
            _ => None,
        }
    }
}
