//! `eshop-load`: drives a running eshop at a fixed arrival rate and writes a report.
//!
//!     cargo run --release -p eshop-load -- --base-url http://127.0.0.1:8080 --rate 200 --seconds 60
//!
//! The shop must run without rate limits (`ESHOP_THROTTLE=false`) or with limits above the
//! run's, and have products in stock (`eshop serve --demo` adds ten).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use eshop_load::arrivals::{self, Plan};
use eshop_load::{fixture, report};

#[derive(Parser)]
#[command(about = "Drive a running eshop at a fixed arrival rate and write a report")]
struct Args {
    /// The shop's address.
    #[arg(
        long,
        env = "ESHOP_LOAD_BASE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    base_url: String,
    /// Arrivals per second (each runs one scenario of the mix).
    #[arg(long, env = "ESHOP_LOAD_RATE", default_value_t = 100)]
    rate: u32,
    /// How long the run lasts.
    #[arg(long, env = "ESHOP_LOAD_SECONDS", default_value_t = 30)]
    seconds: u64,
    /// Shoppers registered and funded before the run.
    #[arg(long, env = "ESHOP_LOAD_SHOPPERS", default_value_t = 20)]
    shoppers: usize,
    /// Where `summary.md`, `report.html`, `latency.svg` and `throughput.svg` go.
    #[arg(long, env = "ESHOP_LOAD_OUT", default_value = "target/load-report")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let base = args.base_url.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()?;
    eprintln!("preparing {} shoppers on {base} …", args.shoppers);
    let fixture = fixture::prepare(&client, &base, args.shoppers).await?;
    let plan = Plan {
        base,
        rate: args.rate,
        duration: Duration::from_secs(args.seconds),
    };
    eprintln!("running {} arrivals/s for {} s …", plan.rate, args.seconds);
    let samples = arrivals::run(&plan, &client, Arc::new(fixture)).await;
    let summary = report::write(&args.out, &samples, plan.rate, plan.duration)?;
    println!("{summary}");
    eprintln!("report: {}", args.out.join("report.html").display());
    Ok(())
}
