//! The storefront's home page for anonymous visitors: from the page cache, and rendered each
//! time (`ESHOP_PAGE_CACHE_MS=0`), in one run. Everything shares the machine's cores: Postgres,
//! NATS, eshop and the load generator (wrk when installed).
//!
//!     cargo bench -p eshop-api --bench pages
//!
//! Prints a Markdown table. Uses its own database, stream prefix and key prefix.

#[path = "common/config.rs"]
mod bench_config;
#[path = "common/reads.rs"]
mod reads;

use std::time::Duration;

use eshop_api::server::start;
use eshop_infra::testing::fresh_database;
use serde_json::json;
use uuid::Uuid;

use reads::{admin_token, print_table, read_bench, ADMIN_EMAIL, ADMIN_PASSWORD};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Products in the catalog: the home page lists at most 100 of them.
const PRODUCTS: usize = 100;
const CONNECTIONS: usize = 64;

#[tokio::main]
async fn main() {
    let (database_url, pool) = fresh_database().await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let mut rows = Vec::new();
    for (what, target, page_cache_ms) in [
        ("home page, anonymous, cached", "≥ 10,000 req/s", 1_000),
        ("home page, anonymous, rendered each time", "-", 0),
    ] {
        let namespace = format!("b{}", &Uuid::new_v4().simple().to_string()[..10]);
        let mut config = bench_config::bench_config(&database_url, &namespace);
        config.admin_email = Some(ADMIN_EMAIL.into());
        config.admin_password = Some(ADMIN_PASSWORD.into());
        config.web.page_cache_ms = page_cache_ms;
        let running = start(&config).await.expect("eshop starts");
        let base = format!("http://{}", running.addr);
        if page_cache_ms > 0 {
            seed_catalog(&client, &base).await;
            wait_for_products(&pool).await;
        }
        rows.push(read_bench(what, target, &client, &base, CONNECTIONS, vec!["/".into()]).await);
        let _ = running.shutdown().await;
    }
    print_table(rows);
}

async fn seed_catalog(client: &reqwest::Client, base: &str) {
    let token = admin_token(client, base).await;
    for n in 0..PRODUCTS {
        let category = ["fiction", "history", "science"][n % 3];
        let answer = client
            .post(format!("{base}/api/products"))
            .bearer_auth(&token)
            .json(&json!({
                "title": format!("Book {n}"),
                "author": format!("Author {}", n % 10),
                "published_date": "2020-01-01",
                "description": "A book",
                "price_cents": 1000 + n,
                "stock": 10,
                "category": category,
            }))
            .send()
            .await
            .expect("add a product");
        assert!(
            answer.status().is_success(),
            "{}",
            answer.text().await.unwrap_or_default()
        );
    }
}

async fn wait_for_products(pool: &sqlx::PgPool) {
    loop {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
            .fetch_one(pool)
            .await
            .expect("count");
        if count >= PRODUCTS as i64 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
