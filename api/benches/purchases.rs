//! Purchases over HTTP (`POST /api/purchases`, paid from the wallet), with Postgres, NATS,
//! Redis, eshop (every background worker in this process, as `serve --role all` runs them) and
//! the load generator on this machine.
//!
//!     apt-get install -y wrk
//!     cargo bench -p eshop-api --bench purchases
//!
//! Two modes (`BENCH_MODE=open|closed|all`, default all):
//! - closed: wrk, 64 connections, each sending its next purchase when the last was answered
//!   (a burst: how fast the append path goes);
//! - open: purchases arrive at a fixed rate whatever the answers (`BENCH_RATES=500,1000`,
//!   default 1500 a second, for `BENCH_SECONDS`, default 60), and every second prints the
//!   purchases answered, p50/p99 (from when each was due, so a stall counts), each consumer's
//!   lag (events and seconds), the mail backlog, and CPU of eshop and Postgres from /proc.
//!   After the load it measures how long everything takes to catch up.
//!
//! `BENCH_CATALOG=random|hot|all` (default all): 10,000 products, or 10 hot ones. 1,000 buyers.
//! Products and buyers are seeded as events (straight into the store); every purchase then goes
//! through the API, the command bus and the order process manager.

// Statistics, not money: floating point is fine here.
#![allow(clippy::float_arithmetic)]

#[path = "common/config.rs"]
mod bench_config;
// The tests' seeds: buyers registered and funded as events.
#[allow(dead_code)]
#[path = "../tests/api/ledger.rs"]
mod ledger;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eshop_api::config::Config;
use eshop_api::server::start;
use eshop_infra::testing::fresh_database;
use sqlx::PgPool;
use uuid::Uuid;

#[path = "sustain/probe.rs"]
mod probe;

/// The allocator the `eshop` binary uses, so the in-process server measures as it ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn config(database_url: &str, namespace: &str) -> Config {
    let mut config = bench_config::bench_config(database_url, namespace);
    // For comparison: `BENCH_DB_POOL=N` sets the database pool's size.
    if let Some(size) = std::env::var("BENCH_DB_POOL")
        .ok()
        .and_then(|size| size.parse().ok())
    {
        config.db_pool_size = size;
    }
    // For comparison: `BENCH_NO_WORKERS=1` runs no relay, projections or order worker.
    config.workers = std::env::var("BENCH_NO_WORKERS").is_err();
    // For comparison with builds that had no search index: `BENCH_NO_SEARCH_INDEX=1` keeps none
    // (every purchase changes its products' stock, which the index follows).
    config.search.search_index = std::env::var("BENCH_NO_SEARCH_INDEX").is_err();
    config
}

/// Each buyer's wallet: enough never to run out during a run.
const BUYER_BALANCE_CENTS: i64 = 1_000_000_000_000;

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

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(duration: Duration) -> String {
    format!("{:.0}", duration.as_secs_f64() * 1000.0)
}

/// One purchase as the load generator saw it.
struct Answer {
    ok: bool,
    /// From when it was due (not when it was sent: a late send counts against the server).
    latency: Duration,
}

/// What the sampler shares with the end of a run.
struct Everything {
    jetstream: async_nats::jetstream::Context,
    stream: String,
    pool: PgPool,
    database: String,
}

/// One second's view of every consumer and the mail.
struct Backlog {
    lags: Vec<probe::Lag>,
    mail_pending: i64,
    mail_seconds: f64,
}

impl Backlog {
    async fn now(everything: &Everything) -> Self {
        let mut lags = Vec::with_capacity(probe::CONSUMERS.len());
        for (_, consumer) in probe::CONSUMERS {
            lags.push(probe::lag(&everything.jetstream, &everything.stream, consumer).await);
        }
        let (mail_pending, mail_seconds) = probe::mail_pending(&everything.pool).await;
        Self {
            lags,
            mail_pending,
            mail_seconds,
        }
    }

    fn projections(&self) -> &[probe::Lag] {
        &self.lags[..4]
    }

    /// The mail is behind by the older of: events the mailer has not taken, mails not sent.
    fn mail_behind_seconds(&self) -> f64 {
        self.lags[5].seconds.max(self.mail_seconds)
    }

    /// Every read model and the mail (the order process holds each placing for its handover
    /// delay on purpose: its lag is shown, not waited for).
    fn caught_up(&self) -> bool {
        self.projections().iter().all(|lag| lag.events == 0)
            && self.lags[5].events == 0
            && self.mail_pending == 0
    }
}

/// The summary of one open-model run.
struct OpenRun {
    label: String,
    rate: u64,
    answered_per_second: f64,
    errors: u64,
    p50: Duration,
    p99: Duration,
    /// p99 over the seconds of the run of the worst projection's lag.
    projection_lag_p99: f64,
    mail_backlog_max: f64,
    catch_up: Option<f64>,
    eshop_cpu: f64,
    postgres_cpu: f64,
    rss_max: f64,
    load: String,
}

/// Purchases arriving at `rate` a second for `seconds`, each by a random buyer of a random
/// product of `products`; prints a line a second and returns the summary.
async fn open_run(
    everything: &Everything,
    base: &str,
    tokens: &[String],
    products: &[String],
    rate: u64,
    seconds: u64,
    label: &str,
) -> OpenRun {
    // The generator runs on a runtime of its own whose threads are named, so /proc can tell
    // its CPU from the server's.
    let generator = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("loadgen")
        .enable_all()
        .build()
        .expect("a runtime");
    let (answers, mut answered) = tokio::sync::mpsc::unbounded_channel::<Answer>();
    let in_flight = Arc::new(AtomicU64::new(0));
    let skipped = Arc::new(AtomicU64::new(0));
    let total = rate * seconds;
    let load = {
        let (base, tokens, products) = (base.to_string(), tokens.to_vec(), products.to_vec());
        let (in_flight, skipped) = (in_flight.clone(), skipped.clone());
        generator.spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(512)
                .build()
                .expect("a client");
            let url = format!("{base}/api/purchases");
            let started = tokio::time::Instant::now();
            for n in 0..total {
                let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
                tokio::time::sleep_until(due).await;
                // Past this many unanswered, the server is gone: count the rest as errors.
                if in_flight.load(Ordering::Relaxed) > 20_000 {
                    skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                in_flight.fetch_add(1, Ordering::Relaxed);
                let body = format!(
                    r#"{{"product_id":"{}","quantity":1,"payment_method":"balance"}}"#,
                    products[fastrand::usize(..products.len())]
                );
                let request = client
                    .post(&url)
                    .bearer_auth(&tokens[fastrand::usize(..tokens.len())])
                    .header("content-type", "application/json")
                    .body(body);
                let (answers, in_flight) = (answers.clone(), in_flight.clone());
                tokio::spawn(async move {
                    let ok = matches!(request.send().await, Ok(response) if response.status().is_success());
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    let _ = answers.send(Answer {
                        ok,
                        latency: due.elapsed(),
                    });
                });
            }
        })
    };

    println!(
        "\n### open model, {label}: {rate} purchases/s offered for {seconds} s (load {})\n",
        probe::load_average()
    );
    println!("| s | answered | errors | p50 ms | p99 ms | products | users | orders | payments | order process | mailer | mails pending | eshop CPU % | pg CPU % (ours/all) | RSS MB |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let started = Instant::now();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.tick().await;
    let mut cpu = probe::cpu_sample(&everything.database);
    let mut cpu_at = Instant::now();
    let mut all_latencies = Vec::new();
    let (mut ok_total, mut errors) = (0u64, 0u64);
    let mut projection_lags = Vec::new();
    let mut mail_backlog_max: f64 = 0.0;
    let (mut eshop_cpu, mut postgres_cpu, mut cpu_seconds) = (0.0, 0.0, 0u32);
    let mut rss_max: f64 = 0.0;
    let mut stopped_at: Option<Instant> = None;
    let mut catch_up = None;
    let drain_limit = Duration::from_secs(env_or("BENCH_DRAIN_SECONDS", 60));
    let lag_cell = |lag: &probe::Lag| format!("{} / {:.1}", lag.events, lag.seconds);
    loop {
        every.tick().await;
        let mut latencies = Vec::new();
        let mut failed = 0;
        while let Ok(answer) = answered.try_recv() {
            if answer.ok {
                latencies.push(answer.latency);
            } else {
                failed += 1;
            }
        }
        latencies.sort();
        let backlog = Backlog::now(everything).await;
        let now_cpu = probe::cpu_sample(&everything.database);
        let (eshop, ours, all) = probe::cpu_percent(&cpu, &now_cpu, cpu_at.elapsed().as_secs_f64());
        (cpu, cpu_at) = (now_cpu, Instant::now());
        let rss = probe::rss_mb();
        rss_max = rss_max.max(rss);
        let elapsed = started.elapsed().as_secs();
        println!(
            "| {elapsed} | {} | {failed} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {:.1} | {eshop:.0} | {ours:.0} / {all:.0} | {rss:.0} |",
            latencies.len(),
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            lag_cell(&backlog.lags[0]),
            lag_cell(&backlog.lags[1]),
            lag_cell(&backlog.lags[2]),
            lag_cell(&backlog.lags[3]),
            lag_cell(&backlog.lags[4]),
            lag_cell(&backlog.lags[5]),
            backlog.mail_pending,
            backlog.mail_seconds,
        );
        ok_total += latencies.len() as u64;
        errors += failed;
        all_latencies.extend(latencies);
        match stopped_at {
            None => {
                projection_lags.push(
                    backlog
                        .projections()
                        .iter()
                        .map(|lag| lag.seconds)
                        .fold(0.0, f64::max),
                );
                mail_backlog_max = mail_backlog_max.max(backlog.mail_behind_seconds());
                eshop_cpu += eshop;
                postgres_cpu += ours;
                cpu_seconds += 1;
                if load.is_finished() {
                    stopped_at = Some(started + Duration::from_secs(seconds));
                }
            }
            Some(stopped) => {
                if in_flight.load(Ordering::Relaxed) == 0 && backlog.caught_up() {
                    catch_up = Some(stopped.elapsed().as_secs_f64());
                    break;
                }
                if stopped.elapsed() > drain_limit {
                    break;
                }
            }
        }
    }
    generator.shutdown_background();
    // What was answered after the sampler's last look.
    while let Ok(answer) = answered.try_recv() {
        if answer.ok {
            ok_total += 1;
            all_latencies.push(answer.latency);
        } else {
            errors += 1;
        }
    }
    all_latencies.sort();
    projection_lags.sort_by(f64::total_cmp);
    let lag_p99 = projection_lags
        .get(
            ((projection_lags.len() as f64 - 1.0) * 0.99)
                .round()
                .max(0.0) as usize,
        )
        .copied()
        .unwrap_or(0.0);
    OpenRun {
        label: label.to_string(),
        rate,
        answered_per_second: ok_total as f64 / seconds as f64,
        errors: errors + skipped.load(Ordering::Relaxed),
        p50: percentile(&all_latencies, 0.5),
        p99: percentile(&all_latencies, 0.99),
        projection_lag_p99: lag_p99,
        mail_backlog_max,
        catch_up,
        eshop_cpu: eshop_cpu / f64::from(cpu_seconds.max(1)),
        postgres_cpu: postgres_cpu / f64::from(cpu_seconds.max(1)),
        rss_max,
        load: probe::load_average(),
    }
}

/// Waits (up to a minute) until every consumer and the mail are caught up, between runs.
async fn settle(everything: &Everything) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !Backlog::now(everything).await.caught_up() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::main]
async fn main() {
    let mode = std::env::var("BENCH_MODE").unwrap_or_else(|_| "all".into());
    let catalogs = std::env::var("BENCH_CATALOG").unwrap_or_else(|_| "all".into());
    let seconds: u64 = env_or("BENCH_SECONDS", 60);
    let rates: Vec<u64> = std::env::var("BENCH_RATES")
        .unwrap_or_else(|_| "1500".into())
        .split(',')
        .filter_map(|rate| rate.trim().parse().ok())
        .collect();
    let (database_url, pool) = fresh_database().await;
    let database = database_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    let namespace = format!("p{}", &Uuid::new_v4().simple().to_string()[..10]);
    let catalog = seed_products(&pool, 10_000).await;
    let hot: Vec<String> = catalog.iter().take(10).cloned().collect();
    let buyers = ledger::seed_buyers(&pool, 1_000, BUYER_BALANCE_CENTS).await;
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
    let everything = Everything {
        jetstream: running.state.jetstream.clone(),
        stream: running.state.subjects.stream_name(),
        pool: pool.clone(),
        database,
    };
    let mut scenarios: Vec<(&str, &[String])> = Vec::new();
    if catalogs == "all" || catalogs == "random" {
        scenarios.push(("over 10,000 products", &catalog));
    }
    if catalogs == "all" || catalogs == "hot" {
        scenarios.push(("on 10 hot products", &hot));
    }
    // The seeded catalog and wallets reach the read models first.
    settle(&everything).await;

    let mut closed = Vec::new();
    if mode == "all" || mode == "closed" {
        let _ = wrk(&base, &tokens, &catalog, 3);
        for (label, products) in &scenarios {
            settle(&everything).await;
            let load = probe::load_average();
            let run = summary(&wrk(&base, &tokens, products, 10));
            closed.push((label.to_string(), run, load));
        }
    }
    let mut open = Vec::new();
    if mode == "all" || mode == "open" {
        for rate in &rates {
            for (label, products) in &scenarios {
                settle(&everything).await;
                open.push(
                    open_run(&everything, &base, &tokens, products, *rate, seconds, label).await,
                );
            }
        }
    }

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

    if !closed.is_empty() {
        println!("\n| purchases over HTTP, 64 connections (wrk), 10 s | purchases/s | p50 | p99 | non-2xx | load |");
        println!("| --- | --- | --- | --- | --- | --- |");
        for (label, run, load) in &closed {
            println!(
                "| {label} | {} | {} | {} | {} | {load} |",
                run.0, run.1, run.2, run.3
            );
        }
    }
    if !open.is_empty() {
        println!("\n| open model, {seconds} s | offered/s | answered/s | errors | p50 ms | p99 ms | worst projection lag p99 (s) | mail backlog max (s) | caught up after (s) | eshop CPU % | pg CPU % | RSS max MB | load after |");
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for run in &open {
            println!(
                "| {} | {} | {:.0} | {} | {} | {} | {:.1} | {:.1} | {} | {:.0} | {:.0} | {:.0} | {} |",
                run.label,
                run.rate,
                run.answered_per_second,
                run.errors,
                ms(run.p50),
                ms(run.p99),
                run.projection_lag_p99,
                run.mail_backlog_max,
                run.catch_up
                    .map_or_else(|| "not within the limit".to_string(), |s| format!("{s:.1}")),
                run.eshop_cpu,
                run.postgres_cpu,
                run.rss_max,
                run.load,
            );
        }
    }
    println!("\norders confirmed in all runs (warm-up included): {confirmed}; failed: {failed}");
    let jetstream = running.state.jetstream.clone();
    let stream = running.state.subjects.stream_name();
    let tasks = running.state.subjects.tasks_stream_name();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = running.shutdown().await;
    let _ = jetstream.delete_stream(stream).await;
    let _ = jetstream.delete_stream(tasks).await;
}
