//! What operators watch: `/metrics` (and the dashboard that queries it) and `/ready`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{assert_problem, eventually, spawn_app};

/// The names of the samples in a Prometheus text answer.
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            line.split(['{', ' '])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// The metric names the shipped Grafana dashboard queries.
fn dashboard_metrics() -> BTreeSet<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/dashboards/eshop.json"
    );
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("JSON");
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            // Label values (inside quotes) may look like names; only bare words count.
            let bare: String = expr.split('"').step_by(2).collect::<Vec<_>>().join(" ");
            names.extend(
                bare.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .filter(|word| {
                        ["http_server_", "eshop_", "db_client_", "process_"]
                            .iter()
                            .any(|prefix| word.starts_with(prefix))
                    })
                    .map(str::to_string),
            );
        }
    }
    names
}

async fn metrics_text(app: &crate::helpers::TestApp) -> String {
    let response = app.get("/metrics", None).await;
    assert_eq!(response.status(), 200);
    response.text().await.expect("text")
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exported() {
    let app = spawn_app().await;
    // One request, so that the per-route series exist.
    assert_eq!(app.get("/api/products", None).await.status(), 200);

    let wanted = dashboard_metrics();
    assert!(
        wanted.len() >= 15,
        "the dashboard queries too few metrics: {wanted:?}"
    );
    let text = metrics_text(&app).await;
    let exported = sample_names(&text);
    let missing: Vec<_> = wanted.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics /metrics does not export: {missing:?}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn request_durations_are_counted_per_route_template_method_and_status() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let book = app.add_book(&admin, "Counted", 5).await;
    let id = book["id"].as_str().expect("id");
    let visible = app
        .get(&format!("/api/products/{id}?min_version=1"), None)
        .await;
    assert_eq!(visible.status(), 200);
    for _ in 0..3 {
        assert_eq!(
            app.get(&format!("/api/products/{id}"), None).await.status(),
            200
        );
    }
    let missing = uuid::Uuid::new_v4();
    assert_eq!(
        app.get(&format!("/api/products/{missing}"), None)
            .await
            .status(),
        404
    );
    assert_eq!(app.get("/no/such/page", None).await.status(), 404);

    let text = metrics_text(&app).await;
    let series = |status: u16| {
        format!(
            "http_server_request_duration_seconds_count{{http_request_method=\"GET\",http_route=\"/api/products/{{id}}\",http_response_status_code=\"{status}\"}}"
        )
    };
    let count_of = |prefix: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{prefix} missing from\n{text}"))
            .trim()
            .parse()
            .expect("count")
    };
    assert_eq!(count_of(&series(200)), 4);
    assert_eq!(count_of(&series(404)), 1);
    // Unknown paths share one series: a scanner cannot grow the set without bound.
    assert_eq!(
        count_of("http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"unmatched\",http_response_status_code=\"404\"}"),
        1
    );
    assert!(!text.contains("/no/such/page"));
    // The scrape itself is in flight while it renders.
    assert_eq!(count_of("http_server_active_requests "), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn projections_consumers_tasks_orders_pool_and_process_are_exported() {
    let app = spawn_app().await;
    let text = metrics_text(&app).await;
    for line in [
        "eshop_projection_lag_events{projection=\"products\"} 0",
        "eshop_tasks{status=\"queued\"} 0",
        "eshop_orders{status=\"confirmed\"} 0",
        "db_client_connections_max 20",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    let names = sample_names(&text);
    for name in [
        "eshop_projection_lag_seconds",
        "eshop_consumer_pending_messages",
        "eshop_consumer_ack_pending_messages",
        "db_client_connections_usage",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(names.contains(name), "{name} missing from\n{text}");
    }
    assert!(
        text.contains("consumer=\"mailer\""),
        "the mailer's consumer is listed:\n{text}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn ready_answers_200_when_the_dependencies_answer_and_nothing_lags() {
    let app = spawn_app().await;
    let response = app.get("/ready", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"status": "ready"})
    );
    app.shutdown().await;
}

#[tokio::test]
async fn ready_answers_503_with_the_reason_while_postgres_refuses_and_recovers_after() {
    let app = spawn_app().await;
    let database = app
        .database_url
        .rsplit('/')
        .next()
        .expect("database name")
        .to_string();
    let admin = sqlx::PgPool::connect(&format!(
        "{}/postgres",
        app.database_url.rsplit_once('/').expect("url").0
    ))
    .await
    .expect("admin connection");
    sqlx::query(&format!(
        "ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS false"
    ))
    .execute(&admin)
    .await
    .expect("limit");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(&database)
        .execute(&admin)
        .await
        .expect("terminate");

    let started = std::time::Instant::now();
    let problem = assert_problem(app.get("/ready", None).await, 503, "not_ready").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let reasons = problem["reasons"].as_array().expect("reasons");
    assert!(
        reasons
            .iter()
            .any(|reason| reason.as_str().unwrap_or_default().starts_with("postgres:")),
        "{problem}"
    );
    // Liveness is about the process: it says the same, so an orchestrator may restart it.
    assert_eq!(app.get("/health", None).await.status(), 503);

    sqlx::query(&format!(
        "ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS true"
    ))
    .execute(&admin)
    .await
    .expect("unlimit");
    eventually(Duration::from_secs(10), "ready again", || async {
        (app.get("/ready", None).await.status() == 200).then_some(())
    })
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn ready_answers_503_while_a_projection_lags_more_than_the_limit() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    app.add_book(&admin, "Before", 1).await;
    eventually(Duration::from_secs(10), "caught up", || async {
        (app.get("/ready", None).await.status() == 200).then_some(())
    })
    .await;
    // The builders stop; an event then reaches the stream that nobody applies.
    app.stop().await;
    let idle = app
        .replica(|config| {
            config.workers = false;
            config.operations.ready_max_lag_seconds = 1;
        })
        .await;
    let state = idle.state();
    let subject = state
        .subjects
        .subject("product", &uuid::Uuid::new_v4().to_string());
    state
        .jetstream
        .publish(subject, "{}".into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let problem = assert_problem(idle.get("/ready", None).await, 503, "not_ready").await;
    let reasons = problem["reasons"].to_string();
    assert!(reasons.contains("projection products lags"), "{problem}");
    let text = metrics_text(&idle).await;
    let lag_line = text
        .lines()
        .find(|line| line.starts_with("eshop_projection_lag_seconds{projection=\"products\"}"))
        .expect("products lag");
    let lag: f64 = lag_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(lag >= 1.0, "{lag_line}");
    idle.shutdown().await;
}
