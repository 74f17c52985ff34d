//! What downstream consumers get: the AsyncAPI document, CloudEvents headers on every message,
//! the live stream's age bound, and replays to a stream of their own.

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::HeaderMap;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app, spawn_app_with, TestApp};

/// Every message of a stream, in stream order: subject, headers and body.
async fn messages(app: &TestApp, stream_name: &str) -> Vec<(String, HeaderMap, Value)> {
    let jetstream = &app.state().jetstream;
    let stream = jetstream.get_stream(stream_name).await.expect("stream");
    let total = stream.get_info().await.expect("info").state.messages as usize;
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut found = Vec::with_capacity(total);
    let mut stream = consumer.messages().await.expect("messages");
    while found.len() < total {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the stream delivers")
            .expect("a message")
            .expect("no error");
        let body = serde_json::from_slice(&message.payload).expect("json");
        found.push((
            message.subject.to_string(),
            message.headers.clone().unwrap_or_default(),
            body,
        ));
    }
    found
}

async fn stream_len(app: &TestApp, stream_name: &str) -> u64 {
    let stream = app
        .state()
        .jetstream
        .get_stream(stream_name)
        .await
        .expect("stream");
    stream.get_info().await.expect("info").state.messages
}

/// Waits until the relay has published every stored event.
async fn relayed(app: &TestApp) -> u64 {
    let stream = app.state().subjects.stream_name();
    eventually(Duration::from_secs(15), "the relay to catch up", || async {
        let stored = u64::try_from(app.event_count().await).unwrap_or_default();
        let published = stream_len(app, &stream).await;
        (published == stored).then_some(published)
    })
    .await
}

/// A customer who bought a book: user, product and order events in the store.
async fn some_history(app: &TestApp, name: &str) {
    let admin = app.admin_token().await;
    let book = app.add_book(&admin, &format!("Dune {name}"), 5).await;
    let (_, token) = app.customer(name).await;
    let deposit = app
        .post(
            "/api/users/me/deposits",
            Some(&token),
            json!({"amount_cents": 5000}),
        )
        .await;
    assert_eq!(deposit.status(), 200);
    let purchase = app
        .post(
            "/api/purchases",
            Some(&token),
            json!({"product_id": book["id"], "quantity": 1, "payment_method": "balance"}),
        )
        .await;
    assert_eq!(purchase.status(), 201);
}

#[tokio::test]
async fn the_asyncapi_document_is_served_with_this_instances_subjects() {
    let app = spawn_app().await;
    let response = app.get("/api/asyncapi.json", None).await;
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.expect("json");
    assert_eq!(document["asyncapi"], "3.0.0");
    assert_eq!(
        document,
        eshop_api::docs::asyncapi::document(&app.namespace)
    );
    assert_eq!(
        document["channels"]["events"]["address"],
        json!(format!(
            "{}.eshop.events.{{aggregate_type}}.{{aggregate_id}}",
            app.namespace
        ))
    );
    app.shutdown().await;
}

#[tokio::test]
async fn every_message_is_a_cloudevent_and_its_body_is_unchanged() {
    let app = spawn_app().await;
    some_history(&app, "cleo").await;
    relayed(&app).await;
    let document = eshop_api::docs::asyncapi::document(&app.namespace);
    let documented: Vec<String> = document["components"]["schemas"]["EventHeaders"]["required"]
        .as_array()
        .expect("required headers")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    let envelope_fields: BTreeSet<&str> = [
        "position",
        "aggregate_type",
        "aggregate_id",
        "sequence",
        "event_type",
        "event_version",
        "recorded_at",
        "metadata",
        "payload",
    ]
    .into();
    let published = messages(&app, &app.state().subjects.stream_name()).await;
    let types: BTreeSet<&str> = published
        .iter()
        .filter_map(|(_, _, body)| body["aggregate_type"].as_str())
        .collect();
    assert!(
        types.contains("user") && types.contains("order") && types.contains("product"),
        "{types:?}"
    );
    for (subject, headers, body) in &published {
        let header = |name: &str| {
            headers
                .get(name)
                .map(|value| value.as_str().to_string())
                .unwrap_or_else(|| panic!("{subject}: no {name} header"))
        };
        for name in &documented {
            header(name);
        }
        let fields: BTreeSet<&str> = body
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields, envelope_fields,
            "{subject}: the body is the envelope"
        );
        assert_eq!(header("ce-specversion"), "1.0");
        assert_eq!(
            header("ce-id"),
            body["metadata"]["event_id"].as_str().expect("id")
        );
        assert_eq!(
            header("ce-source"),
            format!("/eshop/{}", body["aggregate_type"].as_str().expect("type"))
        );
        assert_eq!(
            header("ce-type"),
            format!(
                "eshop.{}.{}.v{}",
                body["aggregate_type"].as_str().expect("type"),
                body["event_type"].as_str().expect("event type"),
                body["event_version"].as_str().expect("version")
            )
        );
        assert_eq!(
            header("ce-subject"),
            body["aggregate_id"].as_str().expect("id")
        );
        assert_eq!(header("ce-datacontenttype"), "application/json");
        let time = chrono::DateTime::parse_from_rfc3339(&header("ce-time")).expect("RFC 3339");
        let recorded = chrono::DateTime::parse_from_rfc3339(
            body["recorded_at"].as_str().expect("recorded_at"),
        )
        .expect("RFC 3339");
        assert_eq!(time, recorded);
        assert_eq!(header("Nats-Msg-Id"), body["position"].to_string());
    }
    app.shutdown().await;
}

#[tokio::test]
async fn the_live_stream_keeps_messages_as_long_as_configured() {
    let bounded = spawn_app_with(|config| {
        config.events_max_age = Some(Duration::from_secs(2 * 3600));
    })
    .await;
    let state = bounded.state();
    let mut stream = state
        .jetstream
        .get_stream(state.subjects.stream_name())
        .await
        .expect("stream");
    let info = stream.info().await.expect("info");
    assert_eq!(info.config.max_age, Duration::from_secs(2 * 3600));
    bounded.shutdown().await;

    let unbounded = spawn_app().await;
    let state = unbounded.state();
    let mut stream = state
        .jetstream
        .get_stream(state.subjects.stream_name())
        .await
        .expect("stream");
    let info = stream.info().await.expect("info");
    assert_eq!(
        info.config.max_age,
        Duration::ZERO,
        "unset keeps everything"
    );
    unbounded.shutdown().await;
}

#[tokio::test]
async fn a_replay_republishes_history_to_its_own_stream_and_never_to_the_live_one() {
    let app = spawn_app().await;
    some_history(&app, "rhea").await;
    let first_order: i64 =
        sqlx::query_scalar("SELECT min(position) FROM events WHERE aggregate_type = 'order'")
            .fetch_one(&app.pool)
            .await
            .expect("an order");
    some_history(&app, "otto").await;
    let live_before = relayed(&app).await;
    let live = messages(&app, &app.state().subjects.stream_name()).await;

    let prefix = format!("{}-replay", app.namespace);
    let stream = format!("{}_REPLAY", app.namespace.to_uppercase());
    let run = |args: Vec<String>| {
        let database_url = app.database_url.clone();
        let namespace = app.namespace.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_eshop"))
                    .args(["relay", "replay"])
                    .args(args)
                    .env("DATABASE_URL", database_url)
                    .env("NATS_URL", eshop_infra::testing::nats_url())
                    .env("ESHOP_NATS_PREFIX", namespace)
                    .env("RUST_LOG", "warn")
                    .output()
                    .expect("eshop runs")
            })
            .await
            .expect("joined")
        }
    };
    // Everything user-related, then the orders from the first one on.
    let output = run(vec![
        "--from-position".into(),
        "1".into(),
        "--aggregate-type".into(),
        "user".into(),
        "--subject-prefix".into(),
        prefix.clone(),
        "--stream".into(),
        stream.clone(),
    ])
    .await;
    assert!(output.status.success(), "{output:?}");
    let output = run(vec![
        "--from-position".into(),
        first_order.to_string(),
        "--aggregate-type".into(),
        "order".into(),
        "--subject-prefix".into(),
        prefix.clone(),
        "--stream".into(),
        stream.clone(),
    ])
    .await;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("to stream {stream}")), "{stdout}");

    let replayed = messages(&app, &stream).await;
    let expected: Vec<&(String, HeaderMap, Value)> = live
        .iter()
        .filter(|(_, _, body)| {
            body["aggregate_type"] == "user"
                || (body["aggregate_type"] == "order"
                    && body["position"].as_i64().expect("position") >= first_order)
        })
        .collect();
    let positions = |messages: Vec<&Value>| -> BTreeSet<i64> {
        messages
            .into_iter()
            .map(|body| body["position"].as_i64().expect("position"))
            .collect()
    };
    assert_eq!(
        positions(replayed.iter().map(|(_, _, body)| body).collect()),
        positions(expected.iter().map(|(_, _, body)| body).collect()),
    );
    assert_eq!(replayed.len(), expected.len(), "each event once");
    for (subject, headers, body) in &replayed {
        let twin = expected
            .iter()
            .find(|(_, _, live)| live["position"] == body["position"])
            .expect("the live twin");
        assert_eq!(body, &twin.2, "the same body as live");
        assert_eq!(
            headers.get("ce-type").map(|v| v.as_str().to_string()),
            twin.1.get("ce-type").map(|v| v.as_str().to_string())
        );
        assert!(subject.starts_with(&format!("{prefix}.")), "{subject}");
        let text = body.to_string();
        assert!(!text.contains("argon2"), "no secret: {text}");
        assert!(
            !text.contains("@example.com"),
            "personal data stays sealed: {text}"
        );
    }
    let sealed = replayed
        .iter()
        .find(|(_, _, body)| body["event_type"] == "UserRegistered")
        .expect("a registration");
    assert!(sealed.2["payload"]["data"]["email"]["sealed"].is_string());
    // Per-aggregate order: sequences ascend within each aggregate.
    let mut last = std::collections::HashMap::new();
    for (_, _, body) in &replayed {
        let sequence = body["sequence"].as_u64().expect("sequence");
        let previous = last.insert(body["aggregate_id"].to_string(), sequence);
        assert!(previous.is_none_or(|previous| previous < sequence));
    }
    assert_eq!(
        stream_len(&app, &app.state().subjects.stream_name()).await,
        live_before,
        "the live stream is untouched"
    );

    // A prefix that reaches the live subjects is refused before anything is published.
    let refused = run(vec![
        "--subject-prefix".into(),
        format!("{}.eshop.events", app.namespace),
    ])
    .await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("overlaps the live stream")
            || String::from_utf8_lossy(&refused.stdout).contains("overlaps the live stream"),
        "{refused:?}"
    );
    assert_eq!(
        stream_len(&app, &app.state().subjects.stream_name()).await,
        live_before
    );
    let _ = app.state().jetstream.delete_stream(&stream).await;
    app.shutdown().await;
}
