//! Search benchmarks: the embedded index (tantivy) and the Postgres full-text path over the
//! same 100,000 products, with the fan-out bench's word distribution (each word in one product
//! of eight), in one run. Everything (Postgres, NATS, eshop, this load generator and whatever
//! else runs on the machine) shares its cores.
//!
//!     cargo bench -p eshop-api --bench search
//!
//! Prints a Markdown table. Uses its own database, stream prefix and index directory.

// Statistics, not money: floating point is fine here.
#![allow(clippy::float_arithmetic)]

#[path = "common/config.rs"]
mod bench_config;
#[path = "common/reads.rs"]
mod reads;

use std::time::{Duration, Instant};

use eshop_api::config::{Config, SearchConfig};
use eshop_api::server::{start, Running};
use eshop_infra::testing::{catalog, fresh_database};
use serde_json::{json, Value};
use uuid::Uuid;

use reads::{
    admin_token, ms, percentile, print_table, read_bench, Row, ADMIN_EMAIL, ADMIN_PASSWORD,
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PRODUCTS: usize = 100_000;

fn config(database_url: &str, namespace: &str, workers: bool, search: SearchConfig) -> Config {
    let mut config = bench_config::bench_config(database_url, namespace);
    // No cache: every search is answered by the index or by Postgres.
    config.redis_url = String::new();
    config.workers = workers;
    config.admin_email = Some(ADMIN_EMAIL.into());
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config.search = search;
    config
}

/// The products as the relay would have published them (one `ProductAdded` each), straight
/// onto the stream: both the index and the Postgres read model are built from it.
async fn publish_catalog(running: &Running) {
    let jetstream = &running.state.jetstream;
    let subjects = &running.state.subjects;
    let mut acks = Vec::with_capacity(1000);
    for n in 1..=PRODUCTS {
        let id = Uuid::now_v7();
        let body = json!({
            "position": n, "aggregate_type": "product", "aggregate_id": id.to_string(),
            "sequence": 1, "event_type": "ProductAdded", "event_version": "1",
            "recorded_at": chrono::Utc::now(), "metadata": {},
            "payload": serde_json::to_value(catalog::added(n)).expect("payload"),
        });
        let subject = subjects.subject("product", &id.to_string());
        acks.push(
            jetstream
                .publish(subject, serde_json::to_vec(&body).expect("body").into())
                .await
                .expect("published"),
        );
        if acks.len() == 1000 {
            for ack in acks.drain(..) {
                ack.await.expect("stored");
            }
        }
    }
    for ack in acks {
        ack.await.expect("stored");
    }
}

fn rss_mb() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or("?".into(), |kb| format!("{:.0} MB", kb / 1024.0))
}

async fn stream_last(running: &Running) -> u64 {
    let mut stream = running
        .state
        .jetstream
        .get_stream(running.state.subjects.stream_name())
        .await
        .expect("stream");
    stream.info().await.expect("info").state.last_sequence
}

/// Product → searchable: adds products over HTTP (through the event store, the relay and the
/// stream) and times each until a search finds it.
async fn change_to_searchable(client: &reqwest::Client, base: &str) -> Row {
    let token = admin_token(client, base).await;
    let mut latencies = Vec::new();
    for n in 0..40 {
        let word = format!(
            "zq{}x{n}",
            Uuid::new_v4().simple().to_string().get(..8).unwrap_or("a")
        );
        let started = Instant::now();
        let added = client
            .post(format!("{base}/api/products"))
            .bearer_auth(&token)
            .json(&json!({"title": format!("Fresh {word}"), "author": "Bench", "published_date": "2001-01-01",
                          "price_cents": 100, "stock": 1, "category": "bench"}))
            .send()
            .await
            .expect("add");
        assert_eq!(added.status(), 201);
        loop {
            let page: Value = client
                .get(format!("{base}/api/search?q={word}%20"))
                .send()
                .await
                .expect("search")
                .json()
                .await
                .expect("json");
            if page["total"] == 1 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "never searchable"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(fastrand::u64(20..120))).await;
    }
    latencies.sort();
    Row {
        what: "product added → searchable (command, relay, stream, commit), 40 samples".into(),
        target: "p99 ≤ 1 s".into(),
        throughput: "-".into(),
        p50: ms(percentile(&latencies, 0.50)),
        p99: ms(percentile(&latencies, 0.99)),
    }
}

#[tokio::main]
async fn main() {
    let (database_url, pool) = fresh_database().await;
    let namespace = format!("b{}", &Uuid::new_v4().simple().to_string()[..10]);
    let dir = std::env::temp_dir().join(format!("eshop-search-bench-{namespace}"));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let mut rows = Vec::new();

    // 1. The stream: 100k products, as the relay publishes them.
    let publisher = start(&config(
        &database_url,
        &namespace,
        false,
        SearchConfig::disabled(),
    ))
    .await
    .expect("eshop starts");
    let published = Instant::now();
    publish_catalog(&publisher).await;
    eprintln!(
        "published {PRODUCTS} products in {:.1} s",
        published.elapsed().as_secs_f64()
    );
    let target = stream_last(&publisher).await;
    let _ = publisher.shutdown().await;

    // 2. The index, built from the stream by a process that does nothing else.
    let started = Instant::now();
    let indexing = start(&config(
        &database_url,
        &namespace,
        false,
        SearchConfig::in_dir(dir.clone()),
    ))
    .await
    .expect("eshop starts");
    let search = indexing.state.search.clone().expect("an index");
    let mut commits = search.catalog().index.commits();
    while *commits.borrow_and_update() < target {
        commits.changed().await.expect("commits");
    }
    let took = started.elapsed().as_secs_f64();
    rows.push(Row {
        what: format!("index build from the stream ({PRODUCTS} products, from an empty directory)"),
        target: "≥ 20,000 products/s".into(),
        throughput: format!("{:.0} products/s", PRODUCTS as f64 / took),
        p50: format!("{took:.1} s in all"),
        p99: "-".into(),
    });
    let _ = indexing.shutdown().await;

    // 3. The Postgres read model from the same stream (the products builder), and the
    //    instance that serves both paths: the index one, and one without an index.
    let running = start(&config(
        &database_url,
        &namespace,
        true,
        SearchConfig::in_dir(dir.clone()),
    ))
    .await
    .expect("eshop starts");
    loop {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
            .fetch_one(&pool)
            .await
            .expect("count");
        if count as usize >= PRODUCTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    sqlx::query("ANALYZE products")
        .execute(&pool)
        .await
        .expect("analyze");
    let postgres = start(&config(
        &database_url,
        &namespace,
        false,
        SearchConfig::disabled(),
    ))
    .await
    .expect("eshop starts");
    let base = format!("http://{}", running.addr);
    let postgres_base = format!("http://{}", postgres.addr);
    let rss_loaded = rss_mb();

    let pick = || catalog::SEARCH_WORDS[fastrand::usize(..catalog::SEARCH_WORDS.len())];
    let broad: Vec<String> = (0..600)
        .map(|_| format!("/api/products?search={}%20{}", pick(), pick()))
        .collect();
    let selective: Vec<String> = (0..600)
        .map(|_| {
            format!(
                "/api/products?search={}%20{}",
                pick(),
                fastrand::u32(1..100_000)
            )
        })
        .collect();
    let faceted: Vec<String> = (0..600)
        .map(|_| {
            format!(
                "/api/search?q={}%20{}&facets=category,price",
                pick(),
                pick()
            )
        })
        .collect();
    let suggest: Vec<String> = (0..600)
        .map(|_| {
            let prefix = catalog::SUGGEST_PREFIXES
                [fastrand::usize(..catalog::SUGGEST_PREFIXES.len())]
            .replace(' ', "%20");
            format!("/api/search/suggest?q={prefix}")
        })
        .collect();
    let broad_target = "≥ 5,000 req/s, p99 ≤ 20 ms";
    rows.push(
        read_bench(
            "index: broad two-word search (≈1,500 matches ranked)",
            broad_target,
            &client,
            &base,
            16,
            broad.clone(),
        )
        .await,
    );
    rows.push(
        read_bench(
            "Postgres: the same broad searches",
            broad_target,
            &client,
            &postgres_base,
            16,
            broad,
        )
        .await,
    );
    rows.push(
        read_bench(
            "index: selective search (a word and a number)",
            "≥ 10,000 req/s",
            &client,
            &base,
            16,
            selective.clone(),
        )
        .await,
    );
    rows.push(
        read_bench(
            "Postgres: the same selective searches",
            "≥ 10,000 req/s",
            &client,
            &postgres_base,
            16,
            selective,
        )
        .await,
    );
    rows.push(
        read_bench(
            "index: GET /api/search, two words, category and price facets",
            "-",
            &client,
            &base,
            16,
            faceted,
        )
        .await,
    );
    let suggest_target = "≥ 10,000 req/s, p99 ≤ 5 ms";
    rows.push(
        read_bench(
            "index: GET /api/search/suggest, 12 prefixes (answers kept until the next commit)",
            suggest_target,
            &client,
            &base,
            16,
            suggest.clone(),
        )
        .await,
    );
    rows.push(change_to_searchable(&client, &base).await);
    // The same eshop again, keeping no suggestion: every one is searched.
    let _ = running.shutdown().await;
    let running = start(&config(
        &database_url,
        &namespace,
        true,
        SearchConfig {
            search_suggestions_kept: 0,
            ..SearchConfig::in_dir(dir.clone())
        },
    ))
    .await
    .expect("eshop starts");
    let base = format!("http://{}", running.addr);
    rows.push(
        read_bench(
            "index: the same suggestions, each one searched (ESHOP_SEARCH_SUGGESTIONS_KEPT=0)",
            suggest_target,
            &client,
            &base,
            16,
            suggest,
        )
        .await,
    );
    rows.push(Row {
        what:
            "RSS of the bench process (eshop ×2 in-process, 100k-product index loaded, load client)"
                .into(),
        target: "≤ 250 MB (eshop alone)".into(),
        throughput: "-".into(),
        p50: format!("{rss_loaded} loaded"),
        p99: format!("{} after the load", rss_mb()),
    });
    print_table(rows);

    let jetstream = running.state.jetstream.clone();
    let subjects = running.state.subjects.clone();
    let _ = postgres.shutdown().await;
    let _ = running.shutdown().await;
    let _ = jetstream.delete_stream(subjects.stream_name()).await;
    let _ = jetstream.delete_stream(subjects.tasks_stream_name()).await;
    let _ = jetstream.delete_stream(subjects.seals_stream_name()).await;
    let _ = std::fs::remove_dir_all(&dir);
}
