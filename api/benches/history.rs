//! Does a command's cost grow with its aggregate's history? A restock on a product with 100,000
//! events against one on a product with 10, through the command bus and real Postgres.
//!
//!     cargo bench -p eshop-api --bench history

// Statistics, not money: floating point is fine here.
#![allow(clippy::float_arithmetic)]

use std::time::{Duration, Instant};

use eshop_commands::{Actor, CommandBus, CommandContext, RetryPolicy};
use eshop_domain::product::{Product, ProductCommand};
use eshop_domain::values::Quantity;
use eshop_infra::testing::fresh_database;
use eshop_infra::PgEventStore;
use sqlx::PgPool;
use uuid::Uuid;

/// The allocator the `eshop` binary uses, so the in-process server measures as it ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A product with `events` events: added, then restocked one unit at a time.
async fn seed_product(pool: &PgPool, events: i64) -> String {
    let id = Uuid::now_v7().to_string();
    sqlx::query(
        r#"INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
           SELECT 'product', $1, 1, 'ProductAdded', '1',
                  '{"type":"ProductAdded","data":{"title":"T","author":"A","published_date":"2000-01-01","description":"","price_cents":100,"stock":10,"category":"c"}}'::jsonb,
                  '{}'::jsonb
           UNION ALL
           SELECT 'product', $1, n, 'ProductRestocked', '1',
                  jsonb_build_object('type', 'ProductRestocked', 'data', jsonb_build_object('quantity', 1, 'stock', 10 + n - 1)),
                  '{}'::jsonb
             FROM generate_series(2, $2) AS n"#,
    )
    .bind(&id)
    .bind(events)
    .execute(pool)
    .await
    .expect("seed");
    id
}

fn restock() -> ProductCommand {
    ProductCommand::Restock(Quantity::positive(1).expect("valid"))
}

async fn timed_restock(bus: &CommandBus<PgEventStore>, id: &str) -> Duration {
    let context = CommandContext::new(Actor::System, "bench");
    let started = Instant::now();
    bus.execute_with::<Product, _>(id, restock(), &context, None, |_| ())
        .await
        .expect("restock");
    started.elapsed()
}

/// The first restock of each product, then `runs` more of each, alternating between the two so
/// that whatever else the machine does weighs on both alike. Returns the firsts and the medians.
async fn restocks(
    bus: &CommandBus<PgEventStore>,
    ids: [&str; 2],
    runs: usize,
) -> ([Duration; 2], [Duration; 2]) {
    let firsts = [
        timed_restock(bus, ids[0]).await,
        timed_restock(bus, ids[1]).await,
    ];
    let mut timings = [Vec::with_capacity(runs), Vec::with_capacity(runs)];
    for _ in 0..runs {
        for (which, id) in ids.iter().enumerate() {
            timings[which].push(timed_restock(bus, id).await);
        }
    }
    let median = |timings: &mut Vec<Duration>| {
        timings.sort();
        timings[timings.len() / 2]
    };
    let [short, long] = &mut timings;
    (firsts, [median(short), median(long)])
}

#[tokio::main]
async fn main() {
    let (_, pool) = fresh_database().await;
    let long = seed_product(&pool, 100_000).await;
    let short = seed_product(&pool, 10).await;
    sqlx::query("VACUUM ANALYZE events")
        .execute(&pool)
        .await
        .expect("analyze");
    let bus = CommandBus::new(PgEventStore::new(pool.clone()), RetryPolicy::default());
    let runs = 2_000;
    let ([short_first, long_first], [short_median, long_median]) =
        restocks(&bus, [&short, &long], runs).await;
    println!("| aggregate | first command (loads the history) | median of the next {runs} (alternating) |");
    println!("| --- | --- | --- |");
    println!("| product with 10 events | {short_first:.2?} | {short_median:.2?} |");
    println!("| product with 100,000 events | {long_first:.2?} | {long_median:.2?} |");
    println!(
        "\nratio of medians: {:.2} (target ≤ 1.5)",
        long_median.as_secs_f64() / short_median.as_secs_f64()
    );
}
