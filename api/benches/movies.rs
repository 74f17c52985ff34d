//! The movies catalog: the MovieLens import rate into the event store, how long the read
//! models take to catch up, and list pages uncached and cached, printed as a table.
//!
//!     cargo bench -p eshop-api --bench movies
//!
//! Imports the real extract (`shared/data/movielens-small-2016`, or `ESHOP_MOVIELENS_DIR`)
//! through the command bus of an in-process eshop over a fresh database, then imports it again
//! (nothing to append), then asks for list pages over HTTP.

// Statistics, not money: floating point is fine here.
#![allow(clippy::float_arithmetic)]

#[path = "common/config.rs"]
mod bench_config;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use eshop_api::config::Config;
use eshop_api::server::start;
use eshop_infra::testing::fresh_database;

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
    config
}

fn real_data() -> PathBuf {
    if let Ok(dir) = std::env::var("ESHOP_MOVIELENS_DIR") {
        return dir.into();
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    ["../../shared", "../../../shared"]
        .iter()
        .map(|up| root.join(up).join("data/movielens-small-2016"))
        .find(|dir| dir.join("movies.csv").exists())
        .expect("the real MovieLens extract")
}

/// Mean milliseconds of GET `paths` (each once, in order).
async fn mean_ms(client: &reqwest::Client, base: &str, paths: &[String]) -> f64 {
    let started = Instant::now();
    for path in paths {
        let response = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200, "{path}");
        response.bytes().await.expect("body");
    }
    started.elapsed().as_secs_f64() * 1000.0 / paths.len() as f64
}

#[tokio::main]
async fn main() {
    let (database_url, pool) = fresh_database().await;
    let namespace = format!("b{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let running = start(&config(&database_url, &namespace))
        .await
        .expect("app starts");
    let dir = real_data();
    let bar = indicatif::ProgressBar::hidden();
    let mut rows: Vec<(String, String)> = Vec::new();

    let (report, took) = eshop_api::movie_cli::import_dir(&running.state.bus, &dir, &bar)
        .await
        .expect("imports");
    let file_rows = bar.length().unwrap_or_default() as f64;
    rows.push((
        "first import (rows of the files / s)".into(),
        format!(
            "{:.0} ({:.0} rows, {:.2} s)",
            file_rows / took.as_secs_f64(),
            file_rows,
            took.as_secs_f64()
        ),
    ));
    rows.push((
        "first import (events appended / s)".into(),
        format!(
            "{:.0} ({} events)",
            report.events as f64 / took.as_secs_f64(),
            report.events
        ),
    ));
    let caught = Instant::now();
    loop {
        let (count, sum): (i64, Option<i64>) =
            sqlx::query_as("SELECT count(*), sum(ratings_count)::bigint FROM movies")
                .fetch_one(&pool)
                .await
                .expect("counts");
        if count == report.movies as i64 && sum.unwrap_or(0) == report.ratings as i64 {
            break;
        }
        assert!(
            caught.elapsed() < Duration::from_secs(900),
            "read model never caught up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rows.push((
        "read models caught up after the import".into(),
        format!("{:.1} s", caught.elapsed().as_secs_f64()),
    ));
    let (again, took) = eshop_api::movie_cli::import_dir(&running.state.bus, &dir, &bar)
        .await
        .expect("imports again");
    rows.push((
        "second import, nothing to append (rows / s)".into(),
        format!(
            "{:.0} ({} events)",
            file_rows / took.as_secs_f64(),
            again.events
        ),
    ));

    let client = reqwest::Client::new();
    let base = format!("http://{}", running.addr);
    // Distinct filter combinations: each a cache miss the first time.
    let uncached: Vec<String> = (0..200)
        .map(|n| {
            format!(
                "/api/movies?limit=20&min_ratings={}&genre=drama&genre=comedy&ordering=-rating_average",
                n % 100
            ) + if n >= 100 { "&genre_mode=all" } else { "" }
        })
        .collect();
    let miss = mean_ms(&client, &base, &uncached).await;
    let hit = mean_ms(&client, &base, &uncached).await;
    rows.push((
        "list page, 20 cards, uncached (mean)".into(),
        format!("{miss:.2} ms"),
    ));
    rows.push((
        "list page, 20 cards, cached (mean)".into(),
        format!("{hit:.2} ms"),
    ));

    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    println!("\n| {:width$} | result |", "movies bench", width = width);
    println!("| {} | --- |", "-".repeat(width));
    for (name, value) in rows {
        println!("| {name:width$} | {value} |");
    }
}
