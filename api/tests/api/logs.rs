//! No password, token or card number in any log line: the logs of a whole run, at the most
//! verbose level, searched for every secret the run used.

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::{json, Value};
use tracing_subscriber::fmt::MakeWriter;

use crate::helpers::{spawn_app, ADMIN_PASSWORD, PASSWORD};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn a_full_run_logs_no_password_token_or_card_number() {
    let captured = Captured::default();
    // nextest runs each test in its own process, so this subscriber sees only this test.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(captured.clone())
        .with_ansi(false)
        .try_init()
        .expect("the only subscriber of this process");

    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let book = app.add_book(&admin, "Dune", 10).await;
    let new_password = "plum-velvet-42";
    app.register("kim@example.com", "kim").await;
    let (access, refresh) = app.login_pair("kim@example.com", PASSWORD).await;
    let renewed: Value = app
        .post("/api/auth/refresh", None, json!({"refresh_token": refresh}))
        .await
        .json()
        .await
        .expect("json");
    let access = renewed["access_token"]
        .as_str()
        .unwrap_or(&access)
        .to_string();
    let second_refresh = renewed["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let wrong = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "kim@example.com", "password": "a-wrong-guess-77"}),
        )
        .await;
    assert_eq!(wrong.status(), 401);
    let card = "4242 4242 4242 4242";
    let declined_card = "4000000000000002";
    for card_number in [card, declined_card] {
        let placed = app
            .request(Method::POST, "/api/orders", Some(&access))
            .header("Prefer", "wait=5")
            .json(
                &json!({"lines": [{"product_id": book["id"], "quantity": 1}],
                          "payment": {"method": "card", "card": card_number}}),
            )
            .send()
            .await
            .expect("sent");
        assert_eq!(placed.status(), 201);
    }
    let changed = app
        .post(
            "/api/users/me/password",
            Some(&access),
            json!({"current_password": PASSWORD, "new_password": new_password}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let reused = app
        .post("/api/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(reused.status(), 401);
    app.login_pair("kim@example.com", new_password).await;
    app.shutdown().await;

    let logs = String::from_utf8_lossy(&captured.0.lock().expect("logs")).to_string();
    assert!(
        logs.lines().count() > 100,
        "the run was logged: {} lines",
        logs.lines().count()
    );
    let card_digits = card.replace(' ', "");
    let secrets = [
        PASSWORD,
        ADMIN_PASSWORD,
        new_password,
        "a-wrong-guess-77",
        &access,
        &admin,
        &refresh,
        &second_refresh,
        card,
        &card_digits,
        declined_card,
        "test-secret-not-the-default",
    ];
    for secret in secrets {
        let line = logs.lines().find(|line| line.contains(secret));
        assert!(
            line.is_none(),
            "a secret was logged: {}",
            line.unwrap_or_default()
        );
    }
}

/// The lines of `logs` logged within the request with this id (its span names it).
fn within_request<'a>(logs: &'a str, request_id: &str) -> Vec<&'a str> {
    logs.lines()
        .filter(|line| line.contains(request_id))
        .collect()
}

#[tokio::test]
async fn an_order_reads_as_one_trace_from_its_request_to_each_command() {
    let captured = Captured::default();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .try_init()
        .expect("the only subscriber of this process");

    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let book = app.add_book(&admin, "Dune", 10).await;
    let (_, token) = app.customer("lea").await;
    // Waited for in the request, and driven after it answered.
    for (request_id, prefer, status) in [
        ("trace-waited", "wait=5", 201),
        ("trace-later", "wait=0", 202),
    ] {
        let placed = app
            .request(Method::POST, "/api/orders", Some(&token))
            .header("x-request-id", request_id)
            .header("Prefer", prefer)
            .json(
                &json!({"lines": [{"product_id": book["id"], "quantity": 1}],
                          "payment": {"method": "card", "card": "4242 4242 4242 4242"}}),
            )
            .send()
            .await
            .expect("sent");
        assert_eq!(placed.status(), status);
    }
    // A wallet purchase is committed by its product's task, in the purchase's request span.
    let deposit = app
        .post(
            "/api/users/me/deposits",
            Some(&token),
            json!({"amount_cents": 10_000}),
        )
        .await;
    assert_eq!(deposit.status(), 200);
    let bought = app
        .request(Method::POST, "/api/purchases", Some(&token))
        .header("x-request-id", "trace-purchase")
        .json(&json!({"product_id": book["id"], "quantity": 1, "payment_method": "balance"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(bought.status(), 201);
    // The order answered 202 is driven on after its request: until its drive ends.
    crate::helpers::eventually(
        std::time::Duration::from_secs(10),
        "the drive ended",
        || {
            let captured = captured.clone();
            async move {
                let logs = String::from_utf8_lossy(&captured.0.lock().expect("logs")).to_string();
                let driven = within_request(&logs, "trace-later")
                    .iter()
                    .any(|line| line.contains("advance_from{") && line.contains(": close"));
                driven.then_some(())
            }
        },
    )
    .await;
    app.shutdown().await;

    let logs = String::from_utf8_lossy(&captured.0.lock().expect("logs")).to_string();
    let purchase = within_request(&logs, "trace-purchase");
    for step in [
        "purchase{",
        "command{aggregate_type=\"order\"",
        "command{aggregate_type=\"product\"",
        "command{aggregate_type=\"user\"",
        "command{aggregate_type=\"payment\"",
    ] {
        assert!(
            purchase.iter().any(|line| line.contains(step)),
            "the purchase: no {step} within the request's trace"
        );
    }
    for request_id in ["trace-waited", "trace-later"] {
        let lines = within_request(&logs, request_id);
        for step in [
            "place{",
            "command{aggregate_type=\"order\"",
            "command{aggregate_type=\"product\"",
            "command{aggregate_type=\"payment\"",
            "charge{",
        ] {
            assert!(
                lines.iter().any(|line| line.contains(step)),
                "{request_id}: no {step} within the request's trace"
            );
        }
    }
}
