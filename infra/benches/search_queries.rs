//! The product index's queries alone, in this process on one thread: no HTTP, no stream, no
//! Postgres. Over the search bench's catalog (100,000 products, each word in one product of
//! eight), each kind of query is run over the same list of requests and timed one by one, so
//! the table says what a query costs the CPU by itself (what `cargo bench -p eshop-api --bench
//! search` measures over HTTP adds the server, the client and the other processes).
//!
//!     cargo bench -p eshop-infra --bench search_queries
//!     SEARCH_QUERIES=broad,suggest cargo bench -p eshop-infra --bench search_queries
//!
//! `SEARCH_QUERIES` picks the kinds (broad, selective, faceted, suggest, fresh: selective
//! searches whose number is new each time, so no word's forms are kept from before, and next:
//! a broad search's second page, after the first page's cursor);
//! `SEARCH_ROUNDS` how many times each list of 600 requests is run (default 5);
//! `SEARCH_COMMITS` in how many commits the catalog is indexed (default 14, as many as a build
//! from the stream makes at its pace, one commit per 200 ms; each commit leaves a segment until
//! the writer merges them).

// Statistics, not money: floating point is fine here.
#![allow(clippy::float_arithmetic)]

use std::time::{Duration, Instant};

use eshop_infra::search::products::ProductIndex;
use eshop_infra::testing::catalog;
use eshop_projections::query::Cursor;
use eshop_projections::search::{FacetRequest, SearchRequest};
use uuid::Uuid;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PRODUCTS: usize = 100_000;
const REQUESTS: usize = 600;

fn build(dir: &std::path::Path, commits: usize) -> ProductIndex {
    let catalog = ProductIndex::open(dir, 0).expect("index opens");
    let mut guard = catalog.index.writer();
    let writer = guard.as_mut().expect("a writer");
    let per_commit = PRODUCTS.div_ceil(commits.max(1));
    for n in 1..=PRODUCTS {
        writer
            .add_document(
                catalog
                    .fields
                    .document(&catalog::indexed(Uuid::now_v7(), n)),
            )
            .expect("added");
        if n % per_commit == 0 || n == PRODUCTS {
            catalog.index.commit(writer, n as u64).expect("committed");
        }
    }
    drop(guard);
    catalog
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn request(text: String, facets: bool, after: Option<Cursor>) -> SearchRequest {
    SearchRequest {
        text,
        filter: Default::default(),
        limit: 20,
        after,
        facets: FacetRequest {
            category: facets,
            price: facets,
        },
    }
}

fn percentile(sorted: &[Duration], at: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * at).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn main() {
    let dir = std::env::temp_dir().join(format!("eshop-search-queries-{}", Uuid::new_v4()));
    let started = Instant::now();
    let catalog = build(&dir, env_number("SEARCH_COMMITS", 14));
    eprintln!(
        "indexed {PRODUCTS} products in {:.1} s, {} segments",
        started.elapsed().as_secs_f64(),
        catalog.index.searcher().segment_readers().len()
    );
    let chosen = std::env::var("SEARCH_QUERIES")
        .unwrap_or_else(|_| "broad,selective,fresh,faceted,suggest,next".into());
    let rounds = env_number("SEARCH_ROUNDS", 5);

    let pick = || catalog::SEARCH_WORDS[fastrand::usize(..catalog::SEARCH_WORDS.len())];
    println!("| query (in process, one thread) | median µs | p99 µs | queries/s per core |");
    println!("| --- | ---: | ---: | ---: |");
    for kind in chosen.split(',') {
        let texts = || -> Vec<String> {
            (0..REQUESTS)
                .map(|_| match kind {
                    "selective" | "fresh" => format!("{} {}", pick(), fastrand::u32(1..100_000)),
                    "suggest" => catalog::SUGGEST_PREFIXES
                        [fastrand::usize(..catalog::SUGGEST_PREFIXES.len())]
                    .to_string(),
                    _ => format!("{} {}", pick(), pick()),
                })
                .collect()
        };
        let repeated = texts();
        // For `next`: each text's first page's cursor, found before the timing starts.
        let second_pages: Vec<Option<Cursor>> = repeated
            .iter()
            .map(|text| {
                let first = (kind == "next").then(|| {
                    catalog
                        .search(&request(text.clone(), false, None))
                        .expect("searched")
                });
                first
                    .and_then(|page| page.next_cursor)
                    .map(|cursor| Cursor::decode(&cursor).expect("a cursor"))
            })
            .collect();
        let mut timings = Vec::with_capacity(REQUESTS * rounds);
        for _ in 0..rounds {
            let fresh;
            let round = if kind == "fresh" {
                fresh = texts();
                &fresh
            } else {
                &repeated
            };
            for (text, after) in round.iter().zip(&second_pages) {
                let began = Instant::now();
                let found = match kind {
                    "suggest" => catalog.suggest(text).expect("suggested").len(),
                    "faceted" => catalog
                        .search(&request(text.clone(), true, None))
                        .expect("searched")
                        .hits
                        .len(),
                    _ => catalog
                        .search(&request(text.clone(), false, after.clone()))
                        .expect("searched")
                        .hits
                        .len(),
                };
                timings.push(began.elapsed());
                std::hint::black_box(found);
            }
        }
        let mean = timings.iter().sum::<Duration>().as_secs_f64() / timings.len() as f64;
        timings.sort();
        println!(
            "| {kind} | {:.0} | {:.0} | {:.0} |",
            percentile(&timings, 0.5).as_secs_f64() * 1e6,
            percentile(&timings, 0.99).as_secs_f64() * 1e6,
            1.0 / mean
        );
    }
    drop(catalog);
    let _ = std::fs::remove_dir_all(&dir);
}
