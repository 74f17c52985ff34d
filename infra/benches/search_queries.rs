//! The product index's queries alone, in this process on one thread: no HTTP, no stream, no
//! Postgres. Over the search bench's catalog (100,000 products, each word in one product of
//! eight), each kind of query is run over the same list of requests and timed one by one, so
//! the table says what a query costs the CPU by itself (what `cargo bench -p eshop-api --bench
//! search` measures over HTTP adds the server, the client and the other processes).
//!
//!     cargo bench -p eshop-infra --bench search_queries
//!     SEARCH_QUERIES=broad,suggest cargo bench -p eshop-infra --bench search_queries
//!
//! `SEARCH_QUERIES` picks the kinds (broad, selective, faceted, suggest); `SEARCH_ROUNDS`
//! how many times each list of 600 requests is run (default 5).

// Statistics, not money: floating point is fine here.
#![allow(clippy::float_arithmetic)]

use std::time::{Duration, Instant};

use eshop_infra::search::products::{Indexed, ProductIndex};
use eshop_infra::testing::catalog;
use eshop_projections::product::ProductRecord;
use eshop_projections::search::{FacetRequest, SearchRequest};
use uuid::Uuid;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PRODUCTS: usize = 100_000;
const REQUESTS: usize = 600;

/// The search bench's catalog (the fan-out bench's distribution), product `n` of 1..=100,000.
fn product(n: usize) -> Indexed {
    let book = catalog::book(n);
    Indexed {
        record: ProductRecord {
            id: Uuid::now_v7(),
            title: book.title,
            author: book.author,
            published_date: book.published_date,
            description: book.description,
            price_cents: book.price_cents,
            stock: book.stock,
            category: book.category,
            category_id: None,
            category_slug: None,
            removed: false,
            version: 1,
            created_at: None,
            updated_at: None,
            rating_count: 0,
            rating_average: None,
        },
        rating_sum: 0,
    }
}

fn build(dir: &std::path::Path) -> ProductIndex {
    let catalog = ProductIndex::open(dir, 0).expect("index opens");
    let mut guard = catalog.index.writer();
    let writer = guard.as_mut().expect("a writer");
    for n in 1..=PRODUCTS {
        writer
            .add_document(catalog.fields.document(&product(n)))
            .expect("added");
    }
    catalog.index.commit(writer, 1).expect("committed");
    drop(guard);
    catalog
}

fn request(text: String, facets: bool) -> SearchRequest {
    SearchRequest {
        text,
        filter: Default::default(),
        limit: 20,
        after: None,
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
    let catalog = build(&dir);
    eprintln!(
        "indexed {PRODUCTS} products in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let chosen = std::env::var("SEARCH_QUERIES")
        .unwrap_or_else(|_| "broad,selective,faceted,suggest".into());
    let rounds: usize = std::env::var("SEARCH_ROUNDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(5);

    let pick = || catalog::SEARCH_WORDS[fastrand::usize(..catalog::SEARCH_WORDS.len())];
    println!("| query (in process, one thread) | median µs | p99 µs | queries/s per core |");
    println!("| --- | ---: | ---: | ---: |");
    for kind in chosen.split(',') {
        let texts: Vec<String> = (0..REQUESTS)
            .map(|_| match kind {
                "selective" => format!("{} {}", pick(), fastrand::u32(1..100_000)),
                "suggest" => catalog::SUGGEST_PREFIXES
                    [fastrand::usize(..catalog::SUGGEST_PREFIXES.len())]
                .to_string(),
                _ => format!("{} {}", pick(), pick()),
            })
            .collect();
        let mut timings = Vec::with_capacity(REQUESTS * rounds);
        for _ in 0..rounds {
            for text in &texts {
                let began = Instant::now();
                let found = match kind {
                    "suggest" => catalog.suggest(text).expect("suggested").len(),
                    "faceted" => catalog
                        .search(&request(text.clone(), true))
                        .expect("searched")
                        .hits
                        .len(),
                    _ => catalog
                        .search(&request(text.clone(), false))
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
