//! Fan-out benchmarks: relay throughput, commit → read model latency, cached and uncached
//! reads. Everything (Postgres, NATS, Redis, eshop and this load generator) shares the machine.
//!
//!     cargo bench -p eshop-api --bench fanout
//!
//! Prints a Markdown table. Uses its own database, stream prefix and Redis prefix.

// Statistics, not money: floating point is fine here.
#![allow(clippy::float_arithmetic)]

#[path = "common/config.rs"]
mod bench_config;
#[path = "common/reads.rs"]
mod reads;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use eshop_api::config::Config;
use eshop_api::server::{start, Running};
use eshop_infra::relay::{Relay, RelaySettings};
use eshop_infra::shutdown::shutdown_pair;
use eshop_infra::testing::{fresh_database, fresh_stream, stream_len};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use reads::{
    admin_token, ms, percentile, print_table, read_bench, Row, ADMIN_EMAIL, ADMIN_PASSWORD,
};

/// The allocator the `eshop` binary uses, so the in-process server measures as it ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn config(database_url: &str, namespace: &str, redis_url: &str, workers: bool) -> Config {
    let mut config = bench_config::bench_config(database_url, namespace);
    config.redis_url = redis_url.to_string();
    config.workers = workers;
    config.admin_email = Some(ADMIN_EMAIL.into());
    config.admin_password = Some(ADMIN_PASSWORD.into());
    // Measures the Postgres search path (the index has its own bench: `--bench search`).
    config.search = eshop_api::config::SearchConfig::disabled();
    config
}

/// Relay throughput: 100k events already in the store, one relay, until all are acknowledged.
async fn relay_throughput() -> Row {
    let (_, pool) = fresh_database().await;
    let (jetstream, subjects) = fresh_stream().await;
    let total: i64 = 100_000;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'bench', 'agg-' || (n % 1000), n / 1000 + 1, 'Benched', '1',
                jsonb_build_object('type', 'Benched', 'data', jsonb_build_object('n', n)),
                jsonb_build_object('event_id', gen_random_uuid(), 'correlation_id', gen_random_uuid(), 'causation_id', gen_random_uuid())
           FROM generate_series(0, $1 - 1) AS n",
    )
    .bind(total)
    .execute(&pool)
    .await
    .expect("seed events");
    let (stop, shutdown) = shutdown_pair();
    let started = Instant::now();
    let relay = tokio::spawn(
        Relay::new(
            pool.clone(),
            jetstream.clone(),
            subjects.clone(),
            RelaySettings::default(),
        )
        .run(shutdown),
    );
    while stream_len(&jetstream, &subjects).await < total as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    stop.trigger();
    let _ = relay.await;
    let _ = jetstream.delete_stream(subjects.stream_name()).await;
    Row {
        what: format!("relay: {total} stored events to JetStream (acked)"),
        target: "≥ 20,000 events/s".into(),
        throughput: format!("{:.0} events/s", total as f64 / elapsed.as_secs_f64()),
        p50: "-".into(),
        p99: "-".into(),
    }
}

async fn add_products(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    count: usize,
) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let body: Value = client
            .post(format!("{base}/api/products"))
            .bearer_auth(token)
            .json(
                &json!({"title": format!("Bench book {n}"), "author": "Bench Author",
                          "published_date": "2001-01-01", "price_cents": 1000 + n, "stock": 10,
                          "category": "bench"}),
            )
            .send()
            .await
            .expect("add")
            .json()
            .await
            .expect("json");
        ids.push(body["id"].as_str().expect("id").to_string());
    }
    ids
}

/// Commit → visible: restocks at a steady rate over HTTP; for every tenth, the time from the
/// command's answer to the read model row reaching its version, and how that splits at the
/// moment the event is on the stream (the relay's share, then the projection builder's).
async fn commit_to_visible(
    running: &Running,
    client: &reqwest::Client,
    base: &str,
    namespace: &str,
) -> Vec<Row> {
    let token = admin_token(client, base).await;
    let ids = add_products(client, base, &token, 200).await;
    let (stop_watching, on_stream) = watch_stream(namespace).await;
    let (sampled, answers) = tokio::sync::mpsc::unbounded_channel();
    let sampler = tokio::spawn(watch_versions(running.state.pool.clone(), answers));
    let rate = 500;
    let seconds = 10;
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut tasks = Vec::new();
    for n in 0..(rate * seconds) {
        ticker.tick().await;
        let id = ids[fastrand::usize(..ids.len())].clone();
        let client = client.clone();
        let base = base.to_string();
        let token = token.clone();
        let sampled = sampled.clone();
        tasks.push(tokio::spawn(async move {
            let answer: Value = client
                .post(format!("{base}/api/products/{id}/restock"))
                .bearer_auth(&token)
                .json(&json!({"quantity": 1}))
                .send()
                .await
                .expect("restock")
                .json()
                .await
                .expect("json");
            if n % 10 == 0 {
                let version = answer["version"].as_i64().expect("version");
                let _ = sampled.send((id.parse().expect("uuid"), version, Instant::now()));
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    drop(sampled);
    let samples = sampler.await.expect("sampler");
    let _ = stop_watching.send(());
    let published = on_stream.await.expect("stream watcher");
    let mut whole = Vec::new();
    let mut relayed = Vec::new();
    let mut projected = Vec::new();
    for sample in &samples {
        whole.push(sample.visible.duration_since(sample.answered));
        if let Some(at) = published.get(&(sample.id, sample.version)) {
            relayed.push(at.saturating_duration_since(sample.answered));
            projected.push(sample.visible.saturating_duration_since(*at));
        }
    }
    let throughput = format!("{rate} commands/s ({} sampled)", whole.len());
    let row = |what: &str, target: &str, mut latencies: Vec<Duration>| {
        latencies.sort();
        Row {
            what: what.into(),
            target: target.into(),
            throughput: throughput.clone(),
            p50: ms(percentile(&latencies, 0.50)),
            p99: ms(percentile(&latencies, 0.99)),
        }
    };
    vec![
        row(
            &format!("commit → products read model, {rate} restocks/s over HTTP for {seconds} s"),
            "p99 ≤ 50 ms",
            whole,
        ),
        row("… of which answer → on the stream (relay)", "", relayed),
        row(
            "… of which on the stream → read model (builder)",
            "",
            projected,
        ),
    ]
}

/// When each product event reached the stream, by `(aggregate id, version)`: a plain
/// subscription to the stream's subjects sees each message as JetStream stores it (its
/// `Eshop-Aggregate-Id` and `Eshop-Sequence` headers say which). Send on
/// the returned channel to stop it and have the map.
async fn watch_stream(namespace: &str) -> (tokio::sync::oneshot::Sender<()>, Published) {
    use futures::StreamExt;
    let subjects = eshop_infra::nats::EventSubjects::new(namespace);
    let client = async_nats::connect(eshop_infra::testing::nats_url())
        .await
        .expect("NATS answers");
    let mut messages = client
        .subscribe(subjects.of_type("product"))
        .await
        .expect("subscribed");
    client.flush().await.expect("flushed");
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _client = client;
        let mut published = HashMap::new();
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                _ = &mut stopped => None,
            };
            let Some(message) = message else {
                return published;
            };
            let at = Instant::now();
            // The relay's headers name the event, so no body is parsed on this path.
            let header = |name: &str| {
                message
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get(name))
                    .map(|value| value.as_str().to_owned())
            };
            let id = header("Eshop-Aggregate-Id").and_then(|id| id.parse().ok());
            let sequence = header("Eshop-Sequence").and_then(|sequence| sequence.parse().ok());
            if let (Some(id), Some(sequence)) = (id, sequence) {
                published.insert((id, sequence), at);
            }
        }
    });
    (stop, task)
}

type Published = tokio::task::JoinHandle<HashMap<(Uuid, i64), Instant>>;

/// One sampled restock: its answer, and when its row was seen at that version.
struct Sample {
    id: Uuid,
    version: i64,
    answered: Instant,
    visible: Instant,
}

/// Times each answered `(id, version, answered at)` until its row holds that version. One
/// query reads every row still awaited, back to back while any is (no sleep between: a sleep
/// rounds up to tokio's millisecond tick, too coarse for a latency of a few ms), so a sample
/// is late by one round trip at most.
async fn watch_versions(
    pool: PgPool,
    mut answers: tokio::sync::mpsc::UnboundedReceiver<(Uuid, i64, Instant)>,
) -> Vec<Sample> {
    let mut awaited: Vec<(Uuid, i64, Instant)> = Vec::new();
    let mut samples = Vec::new();
    loop {
        if awaited.is_empty() {
            match answers.recv().await {
                Some(answer) => awaited.push(answer),
                None => return samples,
            }
        }
        while let Ok(answer) = answers.try_recv() {
            awaited.push(answer);
        }
        let ids: Vec<Uuid> = awaited.iter().map(|(id, _, _)| *id).collect();
        let held: HashMap<Uuid, i64> =
            sqlx::query_as("SELECT id, version FROM products WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&pool)
                .await
                .expect("read")
                .into_iter()
                .collect();
        let visible = Instant::now();
        awaited.retain(|&(id, version, answered)| {
            let reached = held.get(&id).is_some_and(|held| *held >= version);
            if reached {
                samples.push(Sample {
                    id,
                    version,
                    answered,
                    visible,
                });
            }
            !reached
        });
    }
}

/// 100k products straight into the read model (the projection's table), varied enough for
/// filters and search to be selective.
async fn seed_catalog(pool: &PgPool) {
    sqlx::query(
        "INSERT INTO products (id, title, author, published_date, description, price_cents, stock, category, version)
         SELECT gen_random_uuid(),
                (ARRAY['Silent','Crimson','Hidden','Last','Northern','Broken','Golden','Winter'])[1 + n % 8]
                  || ' ' || (ARRAY['River','Garden','Empire','Voyage','Harbor','Machine','Orchard','Signal'])[1 + (n / 8) % 8]
                  || ' ' || n,
                'Author ' || (n % 5000),
                DATE '1900-01-01' + (n % 40000),
                'A story of ' || (ARRAY['dragons','spies','sailors','robots','gardeners','kings','detectives','pilots'])[1 + (n / 64) % 8]
                  || ' and ' || (ARRAY['storms','secrets','maps','engines','letters','islands','clocks','ghosts'])[1 + (n / 512) % 8],
                100 + (n * 37) % 9900,
                n % 7,
                (ARRAY['fiction','history','science','poetry','travel','children','crime','fantasy'])[1 + n % 8],
                1
           FROM generate_series(1, 100000) AS n",
    )
    .execute(pool)
    .await
    .expect("seed products");
    sqlx::query("ANALYZE products")
        .execute(pool)
        .await
        .expect("analyze");
}

#[tokio::main]
async fn main() {
    // `cargo bench --bench fanout -- relay` runs only the relay phase, `-- commit` only the
    // commit → read model one (for before/after runs of the projection path).
    let only_relay = std::env::args().any(|arg| arg == "relay");
    let only_commit = std::env::args().any(|arg| arg == "commit");
    let mut rows = Vec::new();
    if !only_commit {
        rows.push(relay_throughput().await);
    }
    if only_relay {
        print_table(rows);
        return;
    }

    let (database_url, pool) = fresh_database().await;
    let namespace = format!("b{}", &Uuid::new_v4().simple().to_string()[..10]);
    let running = start(&config(
        &database_url,
        &namespace,
        "redis://127.0.0.1:6379",
        true,
    ))
    .await
    .expect("eshop starts");
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    rows.extend(commit_to_visible(&running, &client, &base, &namespace).await);
    if only_commit {
        print_table(rows);
        return;
    }

    // Cached reads: hot product details and one list page.
    let ids: Vec<String> = sqlx::query_scalar("SELECT id::text FROM products LIMIT 50")
        .fetch_all(&pool)
        .await
        .expect("ids");
    let details = ids.iter().map(|id| format!("/api/products/{id}")).collect();
    rows.push(
        read_bench(
            "cached GET /api/products/{id} (50 hot ids)",
            "≥ 35,000 req/s, p99 ≤ 5 ms",
            &client,
            &base,
            32,
            details,
        )
        .await,
    );
    let list = vec!["/api/products?category=bench&ordering=-price_cents&limit=20".to_string()];
    rows.push(
        read_bench(
            "cached GET /api/products list page",
            "≥ 35,000 req/s, p99 ≤ 5 ms",
            &client,
            &base,
            32,
            list,
        )
        .await,
    );

    // Uncached: 100k products, a second instance whose Redis does not answer.
    seed_catalog(&pool).await;
    let uncached = start(&config(
        &database_url,
        &namespace,
        "redis://127.0.0.1:1",
        false,
    ))
    .await
    .expect("uncached instance starts");
    let uncached_base = format!("http://{}", uncached.addr);
    let filtered = (0..600)
        .map(|n| match n % 3 {
            0 => format!("/api/products?author=Author%20{}&ordering=-published_date", fastrand::u32(0..5000)),
            1 => format!(
                "/api/products?category=history&min_price_cents={}&max_price_cents={}&ordering=price_cents",
                fastrand::u32(100..5000),
                fastrand::u32(5000..10000)
            ),
            _ => format!("/api/products?title=garden%20{}&in_stock=true", fastrand::u32(1..1000)),
        })
        .collect();
    // Each of these words is in one product of eight: a broad search ranks about 1,500 rows.
    let words = [
        "dragons", "spies", "sailors", "robots", "storms", "secrets", "harbor", "winter",
    ];
    let selective: Vec<String> = (0..600)
        .map(|_| {
            format!(
                "/api/products?search={}%20{}",
                words[fastrand::usize(..words.len())],
                fastrand::u32(1..100_000)
            )
        })
        .collect();
    let searches = (0..600)
        .map(|_| {
            format!(
                "/api/products?search={}%20{}",
                words[fastrand::usize(..words.len())],
                words[fastrand::usize(..words.len())]
            )
        })
        .collect();
    rows.push(
        read_bench(
            "uncached filtered list over 100k products",
            "≥ 3,000 req/s, p99 ≤ 30 ms",
            &client,
            &uncached_base,
            16,
            filtered,
        )
        .await,
    );
    rows.push(
        read_bench(
            "uncached full-text search over 100k products",
            "≥ 3,000 req/s, p99 ≤ 30 ms",
            &client,
            &uncached_base,
            16,
            searches,
        )
        .await,
    );

    rows.push(
        read_bench(
            "uncached full-text search, a word and a number (≈1 match)",
            "≥ 3,000 req/s, p99 ≤ 30 ms",
            &client,
            &uncached_base,
            16,
            selective,
        )
        .await,
    );

    print_table(rows);
    let jetstream = running.state.jetstream.clone();
    let stream = running.state.subjects.stream_name();
    let tasks = running.state.subjects.tasks_stream_name();
    let _ = uncached.shutdown().await;
    let _ = running.shutdown().await;
    let _ = jetstream.delete_stream(stream).await;
    let _ = jetstream.delete_stream(tasks).await;
}
