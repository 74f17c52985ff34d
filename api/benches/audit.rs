//! Auditors' figures (issue 14): the state of an aggregate with 10,000 events as of a moment,
//! the NDJSON export over HTTP (events/s and the process's resident memory while it runs), the
//! sealer's chain, and its verification. eshop runs in-process without workers; the sealer is
//! run on its own so that it can be timed.
//!
//!     cargo bench -p eshop-api --bench audit
//!     AUDIT_BENCH_EVENTS=200000 cargo bench -p eshop-api --bench audit   # a smaller history
//!
//! Prints a Markdown table. Uses its own database and stream prefix.

// Statistics, not money: floating point is fine here.
#![allow(clippy::float_arithmetic)]

#[path = "common/config.rs"]
mod bench_config;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eshop_api::config::Config;
use eshop_api::server::start;
use eshop_infra::audit::sealer::{chain_head, Sealer, SealerSettings};
use eshop_infra::audit::verify::verify;
use eshop_infra::shutdown::shutdown_pair;
use eshop_infra::testing::{fresh_database, fresh_stream};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// The allocator the `eshop` binary uses, so the in-process server measures as it ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ADMIN_EMAIL: &str = "bench-admin@example.com";
const ADMIN_PASSWORD: &str = "bench-password-1";
const STATE_EVENTS: i64 = 10_000;
const STATE_RUNS: usize = 50;

fn config(database_url: &str, namespace: &str) -> Config {
    let mut config = bench_config::bench_config(database_url, namespace);
    config.db_listing_pool_size = 2;
    config.db_pool_size = 8;
    if let Ok(url) = std::env::var("ESHOP_TEST_REDIS_URL") {
        config.redis_url = url;
    }
    config.workers = false;
    config.admin_email = Some(ADMIN_EMAIL.into());
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config.task_concurrency = 0;
    config
}

/// A product with `events` events: added, then restocked one unit at a time, each a second
/// apart in recorded time.
async fn seed_product(pool: &PgPool, events: i64) -> String {
    let id = Uuid::now_v7().to_string();
    sqlx::query(
        r#"INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at)
           SELECT 'product', $1, 1, 'ProductAdded', '1',
                  '{"type":"ProductAdded","data":{"title":"T","author":"A","published_date":"2000-01-01","description":"","price_cents":100,"stock":10,"category":"c"}}'::jsonb,
                  '{}'::jsonb, now() - make_interval(secs => $2)
           UNION ALL
           SELECT 'product', $1, n, 'ProductRestocked', '1',
                  jsonb_build_object('type', 'ProductRestocked', 'data', jsonb_build_object('quantity', 1, 'stock', 10 + n - 1)),
                  '{}'::jsonb, now() - make_interval(secs => $2 - n)
             FROM generate_series(2, $2) AS n"#,
    )
    .bind(&id)
    .bind(events)
    .execute(pool)
    .await
    .expect("seed the product");
    id
}

/// `total` events over 10,000 products, with metadata as the shop writes it, in transactions
/// of 100,000.
async fn seed_history(pool: &PgPool, total: i64) {
    let chunk = 100_000;
    let mut start = 0;
    while start < total {
        let end = (start + chunk).min(total);
        sqlx::query(
            r#"INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
               SELECT 'product', 'p-' || (n % 10000), n / 10000 + 1, 'ProductRestocked', '1',
                      jsonb_build_object('type', 'ProductRestocked', 'data', jsonb_build_object('quantity', 1, 'stock', n)),
                      jsonb_build_object('event_id', gen_random_uuid(), 'command_id', gen_random_uuid(),
                                         'correlation_id', gen_random_uuid(), 'causation_id', gen_random_uuid(),
                                         'actor', 'system', 'request_id', 'bench')
                 FROM generate_series($1::bigint, $2::bigint - 1) AS n"#,
        )
        .bind(start)
        .bind(end)
        .execute(pool)
        .await
        .expect("seed the history");
        start = end;
    }
    sqlx::query("VACUUM ANALYZE events")
        .execute(pool)
        .await
        .expect("analyze");
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn per_second(count: i64, elapsed: Duration) -> String {
    let rate = count as f64 / elapsed.as_secs_f64();
    let digits = format!("{rate:.0}");
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{grouped} events/s")
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let total: i64 = std::env::var("AUDIT_BENCH_EVENTS")
        .ok()
        .and_then(|raw| raw.parse().ok())
        .unwrap_or(1_000_000);
    let (database_url, pool) = fresh_database().await;
    let namespace = format!("b{}", &Uuid::new_v4().simple().to_string()[..12]);
    let running = start(&config(&database_url, &namespace))
        .await
        .expect("eshop starts");
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["access_token"].as_str().expect("token").to_string();
    let mut rows: Vec<[String; 3]> = Vec::new();
    // Each figure as soon as it is measured, the table at the end.
    let mut report = |row: [String; 3]| {
        eprintln!("{} | {} | {}", row[0], row[1], row[2]);
        rows.push(row);
    };

    // 1. State as of a moment, an aggregate with 10,000 events.
    let product = seed_product(&pool, STATE_EVENTS).await;
    sqlx::query("VACUUM ANALYZE events")
        .execute(&pool)
        .await
        .expect("analyze");
    // The moment of the last event but one.
    let as_of: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT recorded_at FROM events WHERE aggregate_id = $1 AND sequence = $2",
    )
    .bind(&product)
    .bind(STATE_EVENTS - 1)
    .fetch_one(&pool)
    .await
    .expect("a moment");
    let as_of = as_of.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let url = format!("{base}/api/audit/streams/product/{product}/state?as_of={as_of}");
    let mut timings = Vec::with_capacity(STATE_RUNS);
    for run in 0..=STATE_RUNS {
        let started = Instant::now();
        let response = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("state");
        assert_eq!(response.status(), 200, "state as of");
        let state: Value = response.json().await.expect("json");
        let elapsed = started.elapsed();
        assert_eq!(
            state["version"],
            STATE_EVENTS - 1,
            "as of the last event but one"
        );
        if run > 0 {
            timings.push(elapsed);
        }
    }
    timings.sort();
    report([
        format!("GET …/state?as_of=, product with {STATE_EVENTS} events ({STATE_RUNS} runs)"),
        "≤ 50 ms".into(),
        format!(
            "median {}, slowest {}",
            ms(timings[timings.len() / 2]),
            ms(timings[timings.len() - 1])
        ),
    ]);

    // 2. The export over HTTP, with the process's resident memory sampled as it runs.
    let seeding = Instant::now();
    seed_history(&pool, total).await;
    // The admin account's events, the product's and the history.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .expect("count");
    eprintln!("seeded {total} events in {:.1?}", seeding.elapsed());
    let before = resident_bytes();
    let peak = Arc::new(AtomicU64::new(before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(resident_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let started = Instant::now();
    let response = client
        .get(format!("{base}/api/audit/export"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("export");
    assert_eq!(response.status(), 200, "export");
    let mut lines = 0_i64;
    let mut response = response;
    while let Some(chunk) = response.chunk().await.expect("a chunk") {
        lines += chunk.iter().filter(|byte| **byte == b'\n').count() as i64;
    }
    let elapsed = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    assert_eq!(lines, stored, "every event exported");
    report([
        format!("GET /api/audit/export, {stored} events (NDJSON over HTTP)"),
        "≥ 100,000 events/s".into(),
        format!("{} ({:.1?})", per_second(lines, elapsed), elapsed),
    ]);
    report([
        "process RSS while exporting (server and client in one process)".into(),
        "≤ 100 MB".into(),
        format!(
            "peak {} (before: {})",
            mib(peak.load(Ordering::Relaxed)),
            mib(before)
        ),
    ]);

    // 3. The sealer links the whole history (for scale; the issue sets no target).
    let (jetstream, subjects) = fresh_stream().await;
    let (stop, shutdown) = shutdown_pair();
    let started = Instant::now();
    let sealer = tokio::spawn(
        Sealer::new(
            pool.clone(),
            jetstream.clone(),
            subjects.clone(),
            SealerSettings::default(),
        )
        .run(shutdown),
    );
    loop {
        let head = {
            let mut connection = pool.acquire().await.expect("connection");
            chain_head(&mut connection).await.expect("head")
        };
        if head.chain_index >= stored {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    stop.trigger();
    let _ = sealer.await;
    report([
        format!("sealer: {stored} events linked (SHA-256 chain, links stored)"),
        "-".into(),
        format!("{} ({:.1?})", per_second(stored, elapsed), elapsed),
    ]);

    // 4. Verification of the chain.
    let started = Instant::now();
    let verification = verify(&pool).await.expect("verify");
    let elapsed = started.elapsed();
    assert!(verification.ok, "the chain verifies");
    assert_eq!(verification.verified_events, stored);
    report([
        format!("verify: {stored} events recomputed and compared"),
        "≥ 200,000 events/s".into(),
        format!("{} ({:.1?})", per_second(stored, elapsed), elapsed),
    ]);

    println!("| benchmark | target | measured |");
    println!("| --- | --- | --- |");
    for [what, target, measured] in rows {
        println!("| {what} | {target} | {measured} |");
    }
    let _ = jetstream.delete_stream(subjects.seals_stream_name()).await;
    let _ = jetstream.delete_stream(subjects.stream_name()).await;
    let _ = running.shutdown().await;
}
