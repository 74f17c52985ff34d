//! The configuration every bench starts from: the local services, its own database, stream
//! and key prefix, no rate limits, every worker on. A bench changes only what it measures, so a
//! new setting is added here once (and in `tests/api/helpers.rs`), not in every bench.
//!
//! Included by each bench with `#[path = "common/config.rs"] mod bench_config;`.

use eshop_api::config::{Config, HttpSettings, ThrottleSettings};

pub fn bench_config(database_url: &str, namespace: &str) -> Config {
    Config {
        database_url: database_url.to_string(),
        db_listing_pool_size: 8,
        db_pool_size: 32,
        nats_url: eshop_infra::testing::nats_url(),
        nats_prefix: namespace.to_string(),
        redis_url: "redis://127.0.0.1:6379".into(),
        redis_prefix: format!("{namespace}:"),
        cache_ttl_seconds: 300,
        own_writes_ttl_seconds: 120,
        workers: true,
        gateway_latency_ms: 0,
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        environment: "test".into(),
        session_ttl_seconds: 3600,
        cors_origins: Vec::new(),
        client_ip_header: None,
        throttle: ThrottleSettings::off(),
        http: HttpSettings::default(),
        search: eshop_api::config::SearchConfig::temporary(),
        jwt_secret: "bench-secret-long-enough-for-production-use".into(),
        access_token_ttl_seconds: 3600,
        admin_email: None,
        admin_password: None,
        command_attempts: 10,
        log_json: false,
        smtp_url: None,
        mail_from: "eshop <no-reply@eshop.test>".into(),
        mail_dir: std::env::temp_dir().join(format!("eshop-mail-{namespace}")),
        mail_horizon_hours: 24,
        mail_retry_max_seconds: 300,
        tz: "UTC".into(),
        import_feed: None,
        task_concurrency: 4,
        task_ack_wait_seconds: 60,
        task_step_delay_ms: 0,
        schedule_poll_ms: 1000,
        background: Default::default(),
        operations: Default::default(),
        web: Default::default(),
        movies: Default::default(),
        calendar: Default::default(),
        accounts: Default::default(),
        events_max_age: None,
    }
}
