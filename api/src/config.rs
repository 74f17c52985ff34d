//! Configuration: environment variables (or the matching flags), with defaults that work on a
//! developer machine where Postgres trusts local connections.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use eshop_infra::feeds::{FeedReader, FeedSettings, FeedSetupError};

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

    /// Connections for the catalog's list and search queries, apart from the main pool. Few
    /// suffice: more run more of these CPU-bound queries at once than Postgres has cores, and
    /// the slowest then wait on the scheduler instead of in line.
    #[arg(long, env = "ESHOP_DB_LISTING_POOL_SIZE", default_value_t = 8)]
    pub db_listing_pool_size: u32,

    /// NATS server with JetStream, for the event stream.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// Namespaces the JetStream stream and subjects (empty: `ESHOP_EVENTS`, `eshop.events.>`).
    #[arg(long, env = "ESHOP_NATS_PREFIX", default_value = "")]
    pub nats_prefix: String,

    /// Redis, for the read cache and rate limits (empty: run without Redis; reads then come
    /// from Postgres and rate limits let requests through).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Prefix of every Redis key eshop writes.
    #[arg(long, env = "ESHOP_REDIS_PREFIX", default_value = "eshop:")]
    pub redis_prefix: String,

    /// How long a cache entry may live (invalidation does not depend on it).
    #[arg(long, env = "ESHOP_CACHE_TTL_SECONDS", default_value_t = 300)]
    pub cache_ttl_seconds: u64,

    /// How long a user's writes are remembered after their last one, so that their list reads
    /// reflect them (read your own writes); 0 remembers nothing.
    #[arg(long, env = "ESHOP_OWN_WRITES_TTL_SECONDS", default_value_t = 120)]
    pub own_writes_ttl_seconds: u64,

    /// Run the background workers in this process (with `--role all`).
    #[arg(long, env = "ESHOP_WORKERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub workers: bool,

    /// Latency of each charge in the simulated payment gateway, in milliseconds.
    #[arg(long, env = "ESHOP_GATEWAY_LATENCY_MS", default_value_t = 0)]
    pub gateway_latency_ms: u64,

    /// Address the HTTP API listens on (port 0 picks a free port).
    #[arg(long, env = "ESHOP_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// `development` allows the built-in token key; anything else requires ESHOP_JWT_SECRET.
    #[arg(long, env = "ESHOP_ENV", default_value = "production")]
    pub environment: String,

    /// HS256 key for access tokens (required unless ESHOP_ENV=development).
    #[arg(long, env = "ESHOP_JWT_SECRET", default_value = DEVELOPMENT_JWT_SECRET, hide_env_values = true, hide_default_value = true)]
    pub jwt_secret: String,

    /// Lifetime of an access token, in seconds (refresh tokens renew it).
    #[arg(long, env = "ESHOP_ACCESS_TOKEN_TTL_SECONDS", default_value_t = 900)]
    pub access_token_ttl_seconds: u64,

    /// Lifetime of a login session (its refresh tokens), in seconds.
    #[arg(long, env = "ESHOP_SESSION_TTL_SECONDS", default_value_t = 30 * 24 * 3600)]
    pub session_ttl_seconds: u64,

    /// Origins allowed to call the API from a browser, comma-separated (empty: none).
    #[arg(
        long,
        env = "ESHOP_CORS_ORIGINS",
        default_value = "",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// A header naming the client's address, set by the proxy in front (e.g. `x-real-ip`);
    /// unset: the peer address of the connection.
    #[arg(long, env = "ESHOP_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,

    #[command(flatten)]
    pub throttle: ThrottleSettings,

    #[command(flatten)]
    pub http: HttpSettings,

    #[command(flatten)]
    pub search: SearchConfig,

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

    /// SMTP server for outgoing mail (`smtp://host:port`, `smtp://…?tls=required` for
    /// STARTTLS, `smtps://host:port` for TLS; `user:password@` to log in). Unset: mails are
    /// written as .eml files to ESHOP_MAIL_DIR.
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// The sender of every mail.
    #[arg(
        long,
        env = "ESHOP_MAIL_FROM",
        default_value = "eshop <no-reply@eshop.local>"
    )]
    pub mail_from: String,

    /// Where mails go as .eml files when SMTP_URL is unset.
    #[arg(long, env = "ESHOP_MAIL_DIR", default_value = "./var/mail")]
    pub mail_dir: PathBuf,

    /// Events recorded longer ago than this send no mail (so re-relayed history mails no one).
    #[arg(long, env = "ESHOP_MAIL_HORIZON_HOURS", default_value_t = 24)]
    pub mail_horizon_hours: u64,

    /// The longest pause between two attempts at a mail the SMTP server did not take.
    #[arg(long, env = "ESHOP_MAIL_RETRY_MAX_SECONDS", default_value_t = 300)]
    pub mail_retry_max_seconds: u64,

    /// The shop's time zone (an IANA name): cron schedules and sales days are read in it.
    #[arg(long, env = "ESHOP_TZ", default_value = "UTC")]
    pub tz: String,

    /// A JSON file of products for the monthly catalog import (unset: the import does nothing).
    #[arg(long, env = "ESHOP_IMPORT_FEED")]
    pub import_feed: Option<PathBuf>,

    /// Background tasks this process runs at once (0: none; other replicas run them).
    #[arg(long, env = "ESHOP_TASK_CONCURRENCY", default_value_t = 4)]
    pub task_concurrency: usize,

    /// How long a task may go without a sign of life before another worker takes it over.
    #[arg(long, env = "ESHOP_TASK_ACK_WAIT_SECONDS", default_value_t = 60)]
    pub task_ack_wait_seconds: u64,

    /// A pause between the steps of heavy tasks (reports, recomputes), to spare a busy database.
    #[arg(long, env = "ESHOP_TASK_STEP_DELAY_MS", default_value_t = 0)]
    pub task_step_delay_ms: u64,

    /// How often each replica checks the schedules for changes, in milliseconds.
    #[arg(long, env = "ESHOP_SCHEDULE_POLL_MS", default_value_t = 1000)]
    pub schedule_poll_ms: u64,

    /// How long the live event stream keeps a message (`90d`, `12h`, `30m`, `3600s` or
    /// seconds). Unset: forever. The event store keeps everything; `eshop relay replay`
    /// republishes what the stream dropped.
    #[arg(long, env = "ESHOP_EVENTS_MAX_AGE", value_parser = parse_age)]
    pub events_max_age: Option<Duration>,
    /// What this process runs (`--role`) and how its background workers are tuned.
    #[command(flatten)]
    pub background: BackgroundSettings,
    /// What `/ready` and the operators' views go by.
    #[command(flatten)]
    pub operations: OperationsSettings,

    #[command(flatten)]
    pub web: WebSettings,

    #[command(flatten)]
    pub movies: MovieSettings,

    /// The economic calendar's feed.
    #[command(flatten)]
    pub calendar: CalendarSettings,

    /// Accounts: the links mailed to set or reset a password (issue 18).
    #[command(flatten)]
    pub accounts: AccountSettings,
}

/// The economic calendar's settings.
#[derive(Debug, Clone, Default, Args)]
pub struct CalendarSettings {
    /// The feed the built-in "calendar import" schedule imports (a JSON array or CSV with a
    /// header row): a file path or an http(s) URL. Unset: the run logs that there is no feed.
    #[arg(long, env = "ESHOP_CALENDAR_FEED")]
    pub calendar_feed: Option<String>,

    /// How the feed is fetched when it is a URL.
    #[command(flatten)]
    pub fetch: FeedFetchSettings,
}

/// Fetching a feed over http(s): shared by the scheduled import and `eshop import calendar`.
#[derive(Debug, Clone, Args)]
pub struct FeedFetchSettings {
    /// A PEM file of CA certificates trusted for https feeds besides the system's roots (a feed
    /// server behind a private CA). Unset: the system's roots alone.
    #[arg(long, env = "ESHOP_FEED_CA_FILE")]
    pub feed_ca_file: Option<PathBuf>,

    /// How long fetching a feed may take, from connecting to the last byte, in seconds.
    #[arg(long, env = "ESHOP_FEED_TIMEOUT_SECONDS", default_value_t = 60)]
    pub feed_timeout_seconds: u64,
}

impl Default for FeedFetchSettings {
    fn default() -> Self {
        Self {
            feed_ca_file: None,
            feed_timeout_seconds: 60,
        }
    }
}

impl FeedFetchSettings {
    /// The reader every fetch of this process shares; a CA file that cannot be used is an error.
    pub fn reader(&self) -> Result<FeedReader, FeedSetupError> {
        FeedReader::new(&FeedSettings {
            timeout: Duration::from_secs(self.feed_timeout_seconds.max(1)),
            ca_file: self.feed_ca_file.clone(),
        })
    }
}

/// The movies catalog and per-request profiling.
#[derive(Debug, Clone, Args, Default)]
pub struct MovieSettings {
    /// `true`: each request's log line lists its SQL statements and their durations
    /// (`Server-Timing` carries their count and total either way).
    #[arg(long, env = "ESHOP_PROFILE_SQL", default_value_t = false, action = clap::ArgAction::Set)]
    pub profile_sql: bool,
}

/// Accounts created by admins and forgotten passwords: the one-time links mailed.
#[derive(Debug, Clone, Args)]
pub struct AccountSettings {
    /// The address clients reach eshop (or its front end) at, to build the links mailed:
    /// `<ESHOP_PUBLIC_URL>/reset-password?token=…`.
    #[arg(
        long,
        env = "ESHOP_PUBLIC_URL",
        default_value = "http://localhost:8080"
    )]
    pub public_url: String,

    /// How long a password-reset token works, in minutes.
    #[arg(long, env = "ESHOP_PASSWORD_RESET_TTL_MINUTES", default_value_t = 30)]
    pub password_reset_ttl_minutes: u64,

    /// How long the set-password link of an account an admin created works, in hours.
    #[arg(long, env = "ESHOP_SET_PASSWORD_TTL_HOURS", default_value_t = 72)]
    pub set_password_ttl_hours: u64,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            public_url: "http://localhost:8080".into(),
            password_reset_ttl_minutes: 30,
            set_password_ttl_hours: 72,
        }
    }
}

/// What a process runs: the HTTP API, the background workers, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Role {
    /// The HTTP API only (no relay, projections, mailer, order or task worker, scheduler).
    Api,
    /// The background workers only; HTTP answers `/health` and `/metrics` alone.
    Workers,
    /// Both.
    #[default]
    All,
}

/// The background workers' settings (see `workers`).
#[derive(Debug, Clone, Args)]
pub struct BackgroundSettings {
    /// `api`, `workers` or `all`: run the HTTP API, the background workers, or both.
    #[arg(long, env = "ESHOP_ROLE", value_enum, default_value_t = Role::All)]
    pub role: Role,

    /// Events the relay reads and publishes per round.
    #[arg(long, env = "ESHOP_RELAY_BATCH_SIZE", default_value_t = 4000)]
    pub relay_batch_size: i64,

    /// The relay's fallback poll when nothing happens, in milliseconds (appends wake it).
    #[arg(long, env = "ESHOP_RELAY_IDLE_POLL_MS", default_value_t = 500)]
    pub relay_idle_poll_ms: u64,

    /// After a wake-up, how often the relay looks again while events may be held back by a
    /// transaction in flight, in milliseconds...
    #[arg(long, env = "ESHOP_RELAY_EAGER_POLL_MS", default_value_t = 5)]
    pub relay_eager_poll_ms: u64,

    /// ...and for how long after the last sign of activity, in milliseconds.
    #[arg(long, env = "ESHOP_RELAY_EAGER_FOR_MS", default_value_t = 250)]
    pub relay_eager_for_ms: u64,

    /// Events a projection builder applies in one transaction, at most.
    #[arg(long, env = "ESHOP_PROJECTION_BATCH", default_value_t = 500)]
    pub projection_batch: usize,

    /// How long JetStream waits for a projection builder's acknowledgement before it delivers
    /// again, in seconds.
    #[arg(long, env = "ESHOP_PROJECTION_ACK_WAIT_SECONDS", default_value_t = 30)]
    pub projection_ack_wait_seconds: u64,

    /// How often the order sweep looks for stalled orders, in seconds.
    #[arg(long, env = "ESHOP_ORDER_SWEEP_SECONDS", default_value_t = 30)]
    pub order_sweep_seconds: u64,

    /// Orders unfinished for this long are advanced again by the sweep, in seconds.
    #[arg(long, env = "ESHOP_ORDER_STALLED_AFTER_SECONDS", default_value_t = 30)]
    pub order_stalled_after_seconds: u64,

    /// Orders still waiting for stock or payment after this long are failed, in seconds.
    #[arg(long, env = "ESHOP_ORDER_GIVE_UP_AFTER_SECONDS", default_value_t = 900)]
    pub order_give_up_after_seconds: u64,
}

impl Default for BackgroundSettings {
    fn default() -> Self {
        Self {
            role: Role::All,
            relay_batch_size: 4000,
            relay_idle_poll_ms: 500,
            relay_eager_poll_ms: 5,
            relay_eager_for_ms: 250,
            projection_batch: 500,
            projection_ack_wait_seconds: 30,
            order_sweep_seconds: 30,
            order_stalled_after_seconds: 30,
            order_give_up_after_seconds: 900,
        }
    }
}

/// What one connection and one request may take of the server.
#[derive(Debug, Clone, Args)]
pub struct HttpSettings {
    /// How long a client may take to send a request's headers (also an idle keep-alive
    /// connection's next request), in milliseconds; then the connection is closed.
    #[arg(long, env = "ESHOP_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,

    /// Connections served at once; further clients wait in the listen backlog until one ends.
    #[arg(long, env = "ESHOP_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// How long a request may take from its headers to its answer, body upload included,
    /// in milliseconds; then 408 `request_timeout`.
    #[arg(long, env = "ESHOP_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,
}

/// The storefront and console pages.
#[derive(Debug, Clone, Args)]
pub struct WebSettings {
    /// How long a page for anonymous visitors is served from memory at most (0: never); a
    /// product event drops it sooner.
    #[arg(long, env = "ESHOP_PAGE_CACHE_MS", default_value_t = 1000)]
    pub page_cache_ms: u64,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            page_cache_ms: 1000,
        }
    }
}

impl WebSettings {
    pub fn page_cache_ttl(&self) -> Duration {
        Duration::from_millis(self.page_cache_ms)
    }
}

/// Readiness for load balancers and orchestrators.
#[derive(Debug, Clone, Args)]
pub struct OperationsSettings {
    /// `GET /ready` answers 503 while a projection lags more than this many seconds behind the
    /// stream, so a load balancer sends reads elsewhere.
    #[arg(long, env = "ESHOP_READY_MAX_LAG_SECONDS", default_value_t = 30)]
    pub ready_max_lag_seconds: u64,

    /// Start private Postgres and NATS servers (from the installed binaries, data under
    /// `ESHOP_DATA_DIR`) and run without Redis: nothing to set up by hand.
    #[arg(long, env = "ESHOP_EMBEDDED", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub embedded: bool,

    /// Load a demo catalog and two shoppers with money at start, and print how to sign in.
    #[arg(long, env = "ESHOP_DEMO", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub demo: bool,

    /// Where `--embedded` keeps its servers' data (`pg/`, `nats/`).
    #[arg(long, env = "ESHOP_DATA_DIR", default_value = "var")]
    pub data_dir: std::path::PathBuf,
}

impl Default for OperationsSettings {
    fn default() -> Self {
        Self {
            ready_max_lag_seconds: 30,
            embedded: false,
            demo: false,
            data_dir: "var".into(),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            max_connections: 1024,
            request_timeout_ms: 30_000,
        }
    }
}

/// The embedded search index (one per process that serves the API).
#[derive(Debug, Clone, Args)]
pub struct SearchConfig {
    /// Keep a search index in this process (false: searches of the catalog list are answered
    /// by Postgres, and `/api/search` answers 503).
    #[arg(long, env = "ESHOP_SEARCH_INDEX", default_value_t = true, action = clap::ArgAction::Set)]
    pub search_index: bool,

    /// The directory of this process's search index; unset: `./var/search/<ESHOP_NATS_PREFIX>`
    /// (`./var/search/eshop` without a prefix). One process per directory.
    #[arg(long, env = "ESHOP_SEARCH_DIR")]
    pub search_dir: Option<PathBuf>,

    /// How often the index commits what it applied (makes it searchable), in milliseconds.
    #[arg(long, env = "ESHOP_SEARCH_COMMIT_MS", default_value_t = 200)]
    pub search_commit_ms: u64,

    /// Events the index applies at once.
    #[arg(long, env = "ESHOP_SEARCH_BATCH", default_value_t = 1000)]
    pub search_batch: usize,

    /// Suggestions (`/api/search/suggest`) kept in memory until the index's next commit
    /// (0: each one is searched).
    #[arg(long, env = "ESHOP_SEARCH_SUGGESTIONS_KEPT", default_value_t = 10_000)]
    pub search_suggestions_kept: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            search_index: true,
            search_dir: None,
            search_commit_ms: 200,
            search_batch: 1000,
            search_suggestions_kept: 10_000,
        }
    }
}

impl SearchConfig {
    /// The index in `dir` (tests and benches: a directory of their own).
    pub fn in_dir(dir: PathBuf) -> Self {
        Self {
            search_dir: Some(dir),
            ..Self::default()
        }
    }

    /// No index: the catalog's searches go to Postgres.
    pub fn disabled() -> Self {
        Self {
            search_index: false,
            ..Self::default()
        }
    }

    /// A fresh directory of its own under the system's temporary directory (tests, benches,
    /// several processes on one machine).
    pub fn temporary() -> Self {
        Self::in_dir(
            std::env::temp_dir().join(format!("eshop-search-{}", uuid::Uuid::new_v4().simple())),
        )
    }

    /// The index directory for the stream prefix `prefix`.
    pub fn dir(&self, prefix: &str) -> PathBuf {
        self.search_dir.clone().unwrap_or_else(|| {
            let name: String = prefix
                .chars()
                .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '_' || *ch == '-')
                .collect();
            let name = if name.is_empty() {
                "eshop".to_string()
            } else {
                name
            };
            PathBuf::from("var").join("search").join(name)
        })
    }
}

/// Rates per route class; every replica counts in the same Redis.
#[derive(Debug, Clone, Args)]
pub struct ThrottleSettings {
    /// `false` turns every rate limit off (tests, benchmarks).
    #[arg(long = "throttle", env = "ESHOP_THROTTLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,

    /// Commands (POST, PUT, PATCH, DELETE) per minute by an anonymous client address.
    #[arg(
        long,
        env = "ESHOP_THROTTLE_ANONYMOUS_COMMANDS_PER_MINUTE",
        default_value_t = 10
    )]
    pub anonymous_commands_per_minute: u32,

    /// Commands per minute by a signed-in user.
    #[arg(
        long,
        env = "ESHOP_THROTTLE_USER_COMMANDS_PER_MINUTE",
        default_value_t = 60
    )]
    pub user_commands_per_minute: u32,

    /// Reads (GET) per minute by a user or client address.
    #[arg(long, env = "ESHOP_THROTTLE_READS_PER_MINUTE", default_value_t = 1200)]
    pub reads_per_minute: u32,

    /// Purchases and orders a user may place at once (token bucket capacity)...
    #[arg(long, env = "ESHOP_THROTTLE_ORDER_BURST", default_value_t = 10)]
    pub order_burst: u32,

    /// ...and the seconds after which one more is allowed.
    #[arg(long, env = "ESHOP_THROTTLE_ORDER_REFILL_SECONDS", default_value_t = 6)]
    pub order_refill_seconds: u64,

    /// Login attempts per account (e-mail) per 15 minutes.
    #[arg(long, env = "ESHOP_LOGIN_ATTEMPTS_PER_ACCOUNT", default_value_t = 10)]
    pub login_attempts_per_account: u32,

    /// Login attempts per client address per 15 minutes.
    #[arg(long, env = "ESHOP_LOGIN_ATTEMPTS_PER_ADDRESS", default_value_t = 50)]
    pub login_attempts_per_address: u32,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            anonymous_commands_per_minute: 10,
            user_commands_per_minute: 60,
            reads_per_minute: 1200,
            order_burst: 10,
            order_refill_seconds: 6,
            login_attempts_per_account: 10,
            login_attempts_per_address: 50,
        }
    }
}

impl ThrottleSettings {
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }
}

/// `90d`, `12h`, `30m`, `45s` or a plain number of seconds; more than zero.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not an age like 90d, 12h, 30m or 3600s"))?;
    let seconds = match unit.trim() {
        "s" => Some(number),
        "m" => number.checked_mul(60),
        "h" => number.checked_mul(3600),
        "d" => number.checked_mul(86_400),
        _ => None,
    }
    .filter(|seconds| *seconds > 0)
    .ok_or_else(|| format!("{text:?} is not an age like 90d, 12h, 30m or 3600s"))?;
    Ok(Duration::from_secs(seconds))
}

impl Config {
    /// Whether this process serves the whole HTTP API.
    pub fn runs_api(&self) -> bool {
        self.background.role != Role::Workers
    }

    /// Whether this process runs the background workers (`ESHOP_WORKERS=false` turns them off
    /// in the `all` role too).
    pub fn runs_workers(&self) -> bool {
        match self.background.role {
            Role::Api => false,
            Role::Workers => true,
            Role::All => self.workers,
        }
    }

    pub fn is_development(&self) -> bool {
        self.environment.eq_ignore_ascii_case("development")
    }

    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_seconds)
    }

    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_seconds)
    }

    pub fn uses_development_secret(&self) -> bool {
        self.jwt_secret == DEVELOPMENT_JWT_SECRET
    }

    /// The shop's time zone; an unknown name is an error at start.
    pub fn time_zone(&self) -> Result<chrono_tz::Tz, String> {
        self.tz
            .parse()
            .map_err(|_| format!("ESHOP_TZ: unknown time zone {:?}", self.tz))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_age_reads_in_days_hours_minutes_or_seconds() {
        assert_eq!(parse_age("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_age("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_age("3600"), Ok(Duration::from_secs(3600)));
        for bad in ["", "0", "0d", "d", "12w", "-1h", "1.5h"] {
            assert!(parse_age(bad).is_err(), "{bad:?}");
        }
    }
}
