//! Purchases over HTTP (`POST /api/purchases`, paid from the wallet), with Postgres, NATS,
//! Redis, eshop and the load generator (wrk) on this machine.
//!
//!     apt-get install -y wrk
//!     cargo bench -p eshop-api --bench purchases
//!
//! Products and buyers are seeded as events (straight into the store); every purchase then goes
//! through the API, the command bus and the order process manager.

// Statistics, not money: floating point is fine here.
#![allow(clippy::float_arithmetic)]

use std::time::Duration;

use eshop_api::config::{Config, HttpSettings, ThrottleSettings};
use eshop_api::server::start;
use eshop_infra::testing::fresh_database;
use sqlx::PgPool;
use uuid::Uuid;

/// The allocator the `eshop` binary uses, so the in-process server measures as it ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn config(database_url: &str, namespace: &str) -> Config {
    Config {
        database_url: database_url.to_string(),
        // For comparison: `BENCH_DB_POOL=N` sets the database pool's size.
        db_listing_pool_size: 8,
        db_pool_size: std::env::var("BENCH_DB_POOL")
            .ok()
            .and_then(|size| size.parse().ok())
            .unwrap_or(32),
        nats_url: eshop_infra::testing::nats_url(),
        nats_prefix: namespace.to_string(),
        redis_url: "redis://127.0.0.1:6379".into(),
        redis_prefix: format!("{namespace}:"),
        cache_ttl_seconds: 300,
        // For comparison: `BENCH_NO_WORKERS=1` runs no relay, projections or order worker.
        workers: std::env::var("BENCH_NO_WORKERS").is_err(),
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
        events_max_age: None,
    }
}

async fn seed_products(pool: &PgPool, count: i64) -> Vec<String> {
    sqlx::query_scalar(
        r#"INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
           SELECT 'product', gen_random_uuid()::text, 1, 'ProductAdded', '1',
                  jsonb_build_object('type', 'ProductAdded', 'data', jsonb_build_object(
                      'title', 'Bench ' || n, 'author', 'A', 'published_date', '2000-01-01',
                      'description', '', 'price_cents', 100, 'stock', 100000000, 'category', 'bench')),
                  '{}'::jsonb
             FROM generate_series(1, $1) AS n
           RETURNING aggregate_id"#,
    )
    .bind(count)
    .fetch_all(pool)
    .await
    .expect("seed products")
}

async fn seed_buyers(pool: &PgPool, count: i64) -> Vec<Uuid> {
    let ids: Vec<String> = sqlx::query_scalar(
        r#"INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
           SELECT 'user', gen_random_uuid()::text, 1, 'UserRegistered', '1',
                  jsonb_build_object('type', 'UserRegistered', 'data', jsonb_build_object(
                      'email', 'buyer' || n || '@example.com', 'username', 'buyer' || n,
                      'password_hash', 'x', 'first_name', null, 'last_name', null)),
                  '{}'::jsonb
             FROM generate_series(1, $1) AS n
           RETURNING aggregate_id"#,
    )
    .bind(count)
    .fetch_all(pool)
    .await
    .expect("seed buyers");
    sqlx::query(
        r#"INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
           SELECT 'user', id, 2, 'WalletDeposited', '1',
                  '{"type":"WalletDeposited","data":{"amount_cents":1000000000000,"balance_cents":1000000000000}}'::jsonb,
                  '{}'::jsonb
             FROM unnest($1::text[]) AS id"#,
    )
    .bind(&ids)
    .execute(pool)
    .await
    .expect("seed balances");
    ids.iter().map(|id| id.parse().expect("uuid")).collect()
}

/// One wrk run: each request a purchase of one unit of a random product by a random buyer.
fn wrk(base: &str, tokens: &[String], products: &[String], seconds: u64) -> String {
    let quote = |items: &[String]| {
        items
            .iter()
            .map(|item| format!("{item:?}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let script =
        std::env::temp_dir().join(format!("eshop-purchases-{}.lua", Uuid::new_v4().simple()));
    std::fs::write(
        &script,
        format!(
            r#"local tokens = {{{}}}
local products = {{{}}}
request = function()
  local body = '{{"product_id":"' .. products[math.random(#products)] .. '","quantity":1,"payment_method":"balance"}}'
  local headers = {{}}
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]
  return wrk.format("POST", "/api/purchases", headers, body)
end
"#,
            quote(tokens),
            quote(products)
        ),
    )
    .expect("script");
    let output = std::process::Command::new("wrk")
        .args(["-t1", "-c64", &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(&script)
        .arg(base)
        .output()
        .expect("wrk is installed (apt-get install -y wrk)");
    let _ = std::fs::remove_file(&script);
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn summary(text: &str) -> (String, String, String, String) {
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|line| line.starts_with(prefix))
            .and_then(|line| line.split_whitespace().nth(1))
            .unwrap_or("-")
            .to_string()
    };
    let errors = text
        .lines()
        .find(|line| line.contains("Non-2xx"))
        .map_or("0".to_string(), |line| {
            line.split(':').nth(1).unwrap_or("?").trim().to_string()
        });
    (field("Requests/sec:"), field("50%"), field("99%"), errors)
}

#[tokio::main]
async fn main() {
    let (database_url, pool) = fresh_database().await;
    let namespace = format!("p{}", &Uuid::new_v4().simple().to_string()[..10]);
    let catalog = seed_products(&pool, 10_000).await;
    let hot: Vec<String> = catalog.iter().take(10).cloned().collect();
    let buyers = seed_buyers(&pool, 500).await;
    // For comparison: `BENCH_NO_NOTIFY=1` leaves the relay to its polling.
    if std::env::var("BENCH_NO_NOTIFY").is_ok() {
        sqlx::query("ALTER TABLE events DISABLE TRIGGER events_appended")
            .execute(&pool)
            .await
            .expect("disable the trigger");
    }
    let running = start(&config(&database_url, &namespace))
        .await
        .expect("eshop starts");
    let now = chrono::Utc::now().timestamp();
    let mut tokens = Vec::with_capacity(buyers.len());
    for buyer in &buyers {
        let session = running
            .state
            .sessions
            .start(*buyer)
            .await
            .expect("a session");
        tokens.push(
            running
                .state
                .tokens
                .issue(*buyer, session.session_id, Vec::new(), now),
        );
    }
    let base = format!("http://{}", running.addr);

    let _ = wrk(&base, &tokens, &catalog, 3);
    let spread = summary(&wrk(&base, &tokens, &catalog, 10));
    let hot_run = summary(&wrk(&base, &tokens, &hot, 10));
    let confirmed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'OrderConfirmed'")
            .fetch_one(&pool)
            .await
            .expect("count");
    let failed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'OrderFailed'")
            .fetch_one(&pool)
            .await
            .expect("count");

    println!("| purchases over HTTP, 64 connections (wrk), 10 s | target | purchases/s | p50 | p99 | non-2xx |");
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| over 10,000 products | ≥ 1,000/s, p99 ≤ 100 ms | {} | {} | {} | {} |",
        spread.0, spread.1, spread.2, spread.3
    );
    println!(
        "| on 10 hot products | ≥ 600/s, p99 ≤ 100 ms | {} | {} | {} | {} |",
        hot_run.0, hot_run.1, hot_run.2, hot_run.3
    );
    println!("\norders confirmed in all runs (warm-up included): {confirmed}; failed: {failed}");
    let jetstream = running.state.jetstream.clone();
    let stream = running.state.subjects.stream_name();
    let tasks = running.state.subjects.tasks_stream_name();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = running.shutdown().await;
    let _ = jetstream.delete_stream(stream).await;
    let _ = jetstream.delete_stream(tasks).await;
}
