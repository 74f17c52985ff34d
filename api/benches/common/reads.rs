//! Read load for the benches: closed-loop clients (wrk when installed, else this process's own),
//! percentiles, and the Markdown table every bench prints. Shared by `fanout` and `search`.
//!
//! Included with `#[path = "common/reads.rs"] mod reads;`.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

/// The admin account the benches start their app with.
pub const ADMIN_EMAIL: &str = "bench-admin@example.com";
pub const ADMIN_PASSWORD: &str = "bench-password-1";

pub struct Row {
    pub what: String,
    pub target: String,
    pub throughput: String,
    pub p50: String,
    pub p99: String,
}

pub fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

/// An access token of the bench's admin (the app is started with `ADMIN_EMAIL`).
pub async fn admin_token(client: &reqwest::Client, base: &str) -> String {
    let body: Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    body["access_token"].as_str().expect("token").to_string()
}

/// Closed-loop load: `connections` clients each sending one request after another for
/// `duration`, paths chosen by `path`.
pub async fn load(
    client: &reqwest::Client,
    base: &str,
    connections: usize,
    duration: Duration,
    path: Arc<dyn Fn() -> String + Send + Sync>,
) -> (f64, Vec<Duration>) {
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let client = client.clone();
        let base = base.to_string();
        let path = path.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while started.elapsed() < duration {
                let sent = Instant::now();
                let response = client
                    .get(format!("{base}{}", path()))
                    .send()
                    .await
                    .expect("get");
                assert!(response.status().is_success(), "{}", response.status());
                let _ = response.bytes().await.expect("body");
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("worker"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    (all.len() as f64 / elapsed, all)
}

/// Closed-loop load with wrk (when installed: it costs the machine far less CPU than this
/// process would), over paths drawn at random from `paths`. Returns req/s, p50, p99.
pub fn wrk_load(
    base: &str,
    connections: usize,
    duration: Duration,
    paths: &[String],
) -> Option<(f64, String, String)> {
    let script = std::env::temp_dir().join(format!("eshop-bench-{}.lua", Uuid::new_v4().simple()));
    let quoted: Vec<String> = paths.iter().map(|path| format!("{path:?}")).collect();
    std::fs::write(
        &script,
        format!(
            "local paths = {{{}}}\nrequest = function() return wrk.format(\"GET\", paths[math.random(#paths)]) end\n",
            quoted.join(",")
        ),
    )
    .ok()?;
    let output = std::process::Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs()),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(base)
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains("Non-2xx"), "wrk saw errors:\n{text}");
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|line| line.starts_with(prefix))
            .and_then(|line| line.split_whitespace().nth(1))
            .map(str::to_string)
    };
    let rate = field("Requests/sec:")?.parse().ok()?;
    Some((rate, field("50%")?, field("99%")?))
}

/// One read benchmark: with wrk when it is installed, else with this process's own client.
pub async fn read_bench(
    what: &str,
    target: &str,
    client: &reqwest::Client,
    base: &str,
    connections: usize,
    paths: Vec<String>,
) -> Row {
    let warm = Duration::from_secs(2);
    let run = Duration::from_secs(10);
    if wrk_load(base, connections, warm, &paths).is_some() {
        if let Some((rate, p50, p99)) = wrk_load(base, connections, run, &paths) {
            return Row {
                what: format!("{what}, {connections} connections (wrk)"),
                target: target.into(),
                throughput: format!("{rate:.0} req/s"),
                p50,
                p99,
            };
        }
    }
    let paths = Arc::new(paths);
    let next: Arc<dyn Fn() -> String + Send + Sync> =
        Arc::new(move || paths[fastrand::usize(..paths.len())].clone());
    let _ = load(client, base, connections, warm, next.clone()).await;
    let (rate, latencies) = load(client, base, connections, run, next).await;
    Row {
        what: format!("{what}, {connections} connections (in-process client)"),
        target: target.into(),
        throughput: format!("{rate:.0} req/s"),
        p50: ms(percentile(&latencies, 0.50)),
        p99: ms(percentile(&latencies, 0.99)),
    }
}

pub fn print_table(rows: Vec<Row>) {
    println!("| benchmark | target | throughput | p50 | p99 |");
    println!("| --- | --- | --- | --- | --- |");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            row.what, row.target, row.throughput, row.p50, row.p99
        );
    }
}
