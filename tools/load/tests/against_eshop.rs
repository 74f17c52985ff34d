//! The load generator against a running eshop (spawned in-process, as eshop's API tests do):
//! a short run at a fixed rate covers every scenario of the mix without an error, and writes
//! the summary, the plots and the HTML report.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::json;

use eshop_api::config::Config;
use eshop_load::arrivals::{self, Plan};
use eshop_load::{fixture, report, Outcome};

const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "admin-password-1";

#[derive(Parser)]
struct Eshop {
    #[command(flatten)]
    config: Config,
}

/// eshop on a fresh database, NATS prefix, Redis prefix and index directory of this test's own,
/// without rate limits (as a load test runs it).
async fn spawn_eshop() -> eshop_api::server::Running {
    let (database_url, _) = eshop_infra::testing::fresh_database().await;
    let namespace = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let dir = std::env::temp_dir().join(format!("eshop-load-{namespace}"));
    let redis_prefix = format!("{namespace}:");
    let nats_url = eshop_infra::testing::nats_url();
    let mail_dir = dir.join("mail").to_string_lossy().to_string();
    let search_dir = dir.join("search").to_string_lossy().to_string();
    let eshop = Eshop::try_parse_from([
        "eshop",
        "--database-url",
        database_url.as_str(),
        "--nats-url",
        nats_url.as_str(),
        "--nats-prefix",
        namespace.as_str(),
        "--redis-prefix",
        redis_prefix.as_str(),
        "--http-addr",
        "127.0.0.1:0",
        "--environment",
        "test",
        "--jwt-secret",
        "test-secret-not-the-default-0123456789",
        "--throttle",
        "false",
        "--admin-email",
        ADMIN_EMAIL,
        "--admin-password",
        ADMIN_PASSWORD,
        "--mail-dir",
        mail_dir.as_str(),
        "--search-dir",
        search_dir.as_str(),
    ])
    .expect("a configuration");
    eshop_api::server::start(&eshop.config)
        .await
        .expect("eshop starts")
}

/// Ten books, 1,000 of each, in the catalog (and the search index) once `prepare` can see them.
async fn stock_the_shop(client: &reqwest::Client, base: &str) {
    let admin = fixture::sign_in(client, base, ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .expect("the admin signs in");
    for n in 0..10 {
        let answer = client
            .post(format!("{base}/api/products"))
            .bearer_auth(&admin)
            .json(&json!({
                "title": format!("Northern Voyage {n}"),
                "author": "Load Tester",
                "published_date": "2021-05-01",
                "description": "A book to buy under load",
                "price_cents": 1_000 + n,
                "stock": 1_000,
                "category": "fiction",
            }))
            .send()
            .await
            .expect("an answer");
        assert_eq!(
            answer.status(),
            201,
            "{}",
            answer.text().await.unwrap_or_default()
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page: serde_json::Value = client
            .get(format!("{base}/api/search?q=northern"))
            .send()
            .await
            .expect("an answer")
            .json()
            .await
            .unwrap_or_default();
        let found = page["items"].as_array().map_or(0, Vec::len);
        if found == 10 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the books reach the index"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_covers_the_mix_without_errors_and_writes_its_report() {
    let eshop = spawn_eshop().await;
    let base = format!("http://{}", eshop.addr);
    let client = reqwest::Client::new();
    stock_the_shop(&client, &base).await;
    let fixture = fixture::prepare(&client, &base, 5).await.expect("prepared");
    assert_eq!(fixture.products.len(), 10);
    assert!(fixture.words.contains(&"northern".to_string()));

    let plan = Plan {
        base: base.clone(),
        rate: 40,
        duration: Duration::from_secs(5),
    };
    let samples = arrivals::run(&plan, &client, Arc::new(fixture)).await;
    let errors: Vec<_> = samples
        .iter()
        .filter(|s| s.outcome == Outcome::Error)
        .collect();
    assert!(errors.is_empty(), "no errors: {errors:?}");
    // 200 arrivals; purchases add a second request each.
    assert!(samples.len() >= 200, "{} samples", samples.len());
    for endpoint in [
        "GET /api/products",
        "GET /api/products/{id}",
        "GET /api/search",
        "PUT /api/cart/items/{id}",
        "POST /api/cart/checkout",
        "POST /api/auth/login",
    ] {
        assert!(
            samples.iter().any(|s| s.endpoint == endpoint),
            "the mix reached {endpoint}"
        );
    }

    let dir = std::env::temp_dir().join(format!("eshop-load-report-{}", uuid::Uuid::new_v4()));
    let summary = report::write(&dir, &samples, plan.rate, plan.duration).expect("written");
    assert!(summary.contains("| POST /api/cart/checkout |"), "{summary}");
    assert!(summary.contains("| all | "), "{summary}");
    let html = std::fs::read_to_string(dir.join("report.html")).expect("the report");
    assert_eq!(html.matches("<svg").count(), 2, "two plots");
    for file in ["summary.md", "latency.svg", "throughput.svg"] {
        assert!(dir.join(file).exists(), "{file} written");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = eshop.shutdown().await;
}
