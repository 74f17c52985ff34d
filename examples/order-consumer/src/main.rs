//! `cargo run -p eshop-order-consumer`: follows eshop's order events into its own database.
//!
//! `CONSUMER_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/order_consumer`, which
//! must exist), `NATS_URL`, `ESHOP_NATS_PREFIX`, `CONSUMER_NAME` (the durable consumer,
//! default `order-consumer`). Stops on Ctrl-C; run it again and it resumes.

use std::sync::Arc;

use eshop_order_consumer::{migrate, run, Settings, Stats};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let settings = Settings {
        nats_url: env("NATS_URL", "nats://127.0.0.1:4222"),
        eshop_prefix: env("ESHOP_NATS_PREFIX", ""),
        durable_name: env("CONSUMER_NAME", "order-consumer"),
        ack_wait: std::time::Duration::from_secs(30),
    };
    let pool = sqlx::PgPool::connect(&env(
        "CONSUMER_DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/order_consumer",
    ))
    .await?;
    migrate(&pool).await?;
    let stats = Arc::new(Stats::default());
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    run(&settings, &pool, stats.clone(), stop).await?;
    eprintln!("stopped: {stats:?}");
    Ok(())
}
