//! Auditors: the feed's filters, one correlation's story, state as of a moment, the NDJSON
//! export, and the hash chain's verification against a store tampered with behind the
//! application's back.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{assert_problem, eventually, spawn_app, TestApp};

async fn json_of(app: &TestApp, path: &str, token: &str) -> Value {
    let response = app.get(path, Some(token)).await;
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.expect("json")
}

async fn deposit(app: &TestApp, token: &str, correlation_id: Option<Uuid>) -> Value {
    let mut request = app
        .request(Method::POST, "/api/users/me/deposits", Some(token))
        .json(&json!({"amount_cents": 5000}));
    if let Some(id) = correlation_id {
        request = request.header("X-Correlation-Id", id.to_string());
    }
    let response = request.send().await.expect("sent");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

async fn purchase(app: &TestApp, token: &str, product_id: &str, correlation_id: Uuid) -> Value {
    let response = app
        .request(Method::POST, "/api/purchases", Some(token))
        .header("X-Correlation-Id", correlation_id.to_string())
        .json(&json!({"product_id": product_id, "quantity": 1, "payment_method": "balance"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    response.json().await.expect("json")
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().expect("items")
}

#[tokio::test]
async fn the_feed_filters_combine_and_page() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.add_book(&admin, "Dune", 5).await;
    app.add_book(&admin, "Emma", 5).await;
    let (ann_id, ann) = app.customer("ann").await;
    let correlation = Uuid::new_v4();
    deposit(&app, &ann, Some(correlation)).await;
    deposit(&app, &ann, None).await;

    let added = json_of(&app, "/api/audit/events?event_type=ProductAdded", &admin).await;
    assert_eq!(items(&added).len(), 2);
    assert!(items(&added)
        .iter()
        .all(|event| event["event_type"] == "ProductAdded"));

    let anns = json_of(
        &app,
        &format!("/api/audit/events?aggregate_type=user&aggregate_id={ann_id}&actor={ann_id}"),
        &admin,
    )
    .await;
    let types: Vec<&str> = items(&anns)
        .iter()
        .map(|event| event["event_type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        ["UserRegistered", "WalletDeposited", "WalletDeposited"]
    );

    let correlated = json_of(
        &app,
        &format!("/api/audit/events?correlation_id={correlation}&event_type=WalletDeposited"),
        &admin,
    )
    .await;
    assert_eq!(items(&correlated).len(), 1);
    assert_eq!(
        items(&correlated)[0]["metadata"]["correlation_id"],
        correlation.to_string()
    );

    let system = json_of(
        &app,
        "/api/audit/events?actor=system&event_type=WalletDeposited",
        &admin,
    )
    .await;
    assert!(items(&system).is_empty());

    // Paging keeps the filters: one event a page, then the next, then the end.
    let first = json_of(
        &app,
        "/api/audit/events?event_type=WalletDeposited&limit=1",
        &admin,
    )
    .await;
    let after = first["next_after"].as_i64().expect("a next page");
    let second = json_of(
        &app,
        &format!("/api/audit/events?event_type=WalletDeposited&limit=1&after={after}"),
        &admin,
    )
    .await;
    assert_eq!(items(&second).len(), 1);
    assert!(items(&second)[0]["position"].as_i64() > Some(after));

    // Recorded time: nothing from the future, everything since a minute ago.
    let later = (chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339();
    let earlier = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let future = json_of(
        &app,
        &format!("/api/audit/events?from={}", urlencode(&later)),
        &admin,
    )
    .await;
    assert!(items(&future).is_empty());
    let window = json_of(
        &app,
        &format!(
            "/api/audit/events?from={}&to={}&limit=1000",
            urlencode(&earlier),
            urlencode(&later)
        ),
        &admin,
    )
    .await;
    assert_eq!(items(&window).len() as i64, app.event_count().await);

    for bad in [
        "actor=nobody",
        "correlation_id=7",
        "from=yesterday",
        "limit=0",
    ] {
        let response = app
            .get(&format!("/api/audit/events?{bad}"), Some(&admin))
            .await;
        assert_problem(response, 422, "validation_failed").await;
    }
    app.shutdown().await;
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn a_correlation_tells_the_whole_story_of_a_purchase() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let product = app.add_book(&admin, "Dune", 5).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (ann_id, ann) = app.customer("ann").await;
    deposit(&app, &ann, None).await;
    let correlation = Uuid::new_v4();
    let order_id = purchase(&app, &ann, &product, correlation).await["order_id"]
        .as_str()
        .expect("order id")
        .to_string();

    let story: Vec<Value> = json_of(
        &app,
        &format!("/api/audit/correlations/{correlation}"),
        &admin,
    )
    .await
    .as_array()
    .expect("events")
    .clone();
    let seen: Vec<(String, String)> = story
        .iter()
        .map(|event| {
            (
                event["aggregate_type"].as_str().expect("type").to_string(),
                event["event_type"].as_str().expect("type").to_string(),
            )
        })
        .collect();
    for expected in [
        ("order", "OrderPlaced"),
        ("product", "StockReserved"),
        ("user", "WalletDebited"),
        ("order", "OrderConfirmed"),
    ] {
        assert!(
            seen.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} missing from {seen:?}"
        );
    }
    let placed = seen
        .iter()
        .position(|(_, event_type)| event_type == "OrderPlaced")
        .expect("placed");
    let confirmed = seen
        .iter()
        .position(|(_, event_type)| event_type == "OrderConfirmed")
        .expect("confirmed");
    assert!(placed < confirmed, "commit order: {seen:?}");
    assert!(
        story
            .iter()
            .all(|event| event["aggregate_id"] != ann_id || event["event_type"] == "WalletDebited"),
        "no event of another request: {seen:?}"
    );

    // The order's id (the order process's correlation) tells the same story.
    let by_order: Value =
        json_of(&app, &format!("/api/audit/correlations/{order_id}"), &admin).await;
    assert_eq!(by_order.as_array().map(Vec::len), Some(story.len()));

    let unknown = app
        .get(
            &format!("/api/audit/correlations/{}", Uuid::new_v4()),
            Some(&admin),
        )
        .await;
    assert_problem(unknown, 404, "not_found").await;
    app.shutdown().await;
}

#[tokio::test]
async fn state_as_of_a_version_or_a_moment_with_an_erased_users_data_absent() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let before_anything = chrono::Utc::now();
    let product = app.add_book(&admin, "Dune", 5).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let restocked = app
        .post(
            &format!("/api/products/{product}/restock"),
            Some(&admin),
            json!({"quantity": 7}),
        )
        .await;
    assert_eq!(restocked.status(), 200);

    let path = |query: &str| format!("/api/audit/streams/product/{product}/state?{query}");
    let first = json_of(&app, &path("version=1"), &admin).await;
    assert_eq!(first["version"], 1);
    assert_eq!(first["aggregate_type"], "product");
    assert_eq!(first["aggregate_id"], product);
    assert_eq!(first["state"]["stock"], 5, "{first}");
    let then = json_of(
        &app,
        &path(&format!("as_of={}", urlencode(&between.to_rfc3339()))),
        &admin,
    )
    .await;
    assert_eq!(
        then, first,
        "the moment between the two commands is version 1"
    );
    let now = json_of(&app, &path("version=99"), &admin).await;
    assert_eq!(now["version"], 2);
    assert_eq!(now["state"]["stock"], 12);

    let too_early = app
        .get(
            &path(&format!(
                "as_of={}",
                urlencode(&before_anything.to_rfc3339())
            )),
            Some(&admin),
        )
        .await;
    assert_problem(too_early, 404, "not_found").await;
    for bad in [
        "",
        "version=1&as_of=2026-01-01T00:00:00Z",
        "version=0",
        "as_of=monday",
    ] {
        let response = app.get(&path(bad), Some(&admin)).await;
        assert_problem(response, 422, "validation_failed").await;
    }
    let unknown = app
        .get(
            &format!("/api/audit/streams/spaceship/{product}/state?version=1"),
            Some(&admin),
        )
        .await;
    assert_problem(unknown, 404, "not_found").await;

    // A user's state opens their personal fields; once erased, they are absent in every
    // moment, and the password hash never shows.
    let registered = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "bea@example.com", "username": "bea", "password": crate::helpers::PASSWORD,
                   "first_name": "Bea"}),
        )
        .await;
    assert_eq!(registered.status(), 201);
    let bea: Value = registered.json().await.expect("json");
    let bea_id = bea["id"].as_str().expect("id");
    let user_path = format!("/api/audit/streams/user/{bea_id}/state?version=1");
    let live = json_of(&app, &user_path, &admin).await;
    assert_eq!(live["state"]["email"], "bea@example.com");
    assert_eq!(live["state"]["first_name"], "Bea");
    assert!(live["state"].get("password_hash").is_none(), "{live}");
    let erased = app
        .post(
            &format!("/api/admin/users/{bea_id}/erase"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(erased.status(), 200);
    let after_erasure = json_of(&app, &user_path, &admin).await;
    assert_eq!(
        after_erasure["state"]["email"],
        Value::Null,
        "{after_erasure}"
    );
    assert_eq!(after_erasure["state"]["first_name"], Value::Null);
    assert_eq!(after_erasure["state"]["username"], "bea");
    assert!(!after_erasure.to_string().contains("bea@example.com"));
    app.shutdown().await;
}

async fn export_lines(app: &TestApp, query: &str, token: &str) -> Vec<Value> {
    let response = app
        .get(&format!("/api/audit/export{query}"), Some(token))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/x-ndjson",
        "{query}"
    );
    let body = response.text().await.expect("body");
    body.lines()
        .map(|line| serde_json::from_str(line).expect("one envelope per line"))
        .collect()
}

#[tokio::test]
async fn the_export_is_the_published_stream_in_commit_order_and_resumes() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let product = app.add_book(&admin, "Dune", 5).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (ann_id, ann) = app.customer("ann").await;
    deposit(&app, &ann, None).await;
    purchase(&app, &ann, &product, Uuid::new_v4()).await;
    let erased = app
        .post(
            &format!("/api/admin/users/{ann_id}/erase"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(erased.status(), 200);
    let total = app.event_count().await;

    // The export reads in commit-safe order: an event shows once no transaction begun before
    // its own is still in flight (a projection's write may be, for a moment).
    let all = eventually(
        Duration::from_secs(10),
        "every event exportable",
        || async {
            let lines = export_lines(&app, "", &admin).await;
            (lines.len() as i64 == total).then_some(lines)
        },
    )
    .await;
    // Exactly what the relay published on NATS, event for event.
    let state = app.state();
    let published = eventually(
        Duration::from_secs(20),
        "the relay publishes every event",
        || async {
            let stream = eshop_infra::testing::read_stream(&state.jetstream, &state.subjects).await;
            (stream.len() as i64 == total).then_some(stream)
        },
    )
    .await;
    let by_position: HashMap<i64, Value> = published
        .into_iter()
        .map(|event| (event.position, serde_json::to_value(event).expect("json")))
        .collect();
    for line in &all {
        let position = line["position"].as_i64().expect("position");
        assert_eq!(
            Some(line),
            by_position.get(&position),
            "position {position}"
        );
    }
    let text = serde_json::to_string(&all).expect("json");
    assert!(
        !text.contains("ann@example.com"),
        "the erased user's e-mail stays sealed"
    );
    assert!(!text.contains("password_hash"));
    assert!(text.contains("\"sealed\""));

    // Resumed after the fifth line: the rest, in the same order.
    let fifth = all[4]["position"].as_i64().expect("position");
    let rest = export_lines(&app, &format!("?after={fifth}"), &admin).await;
    assert_eq!(rest.as_slice(), &all[5..]);
    // Bounded by a position, and narrowed to one aggregate type.
    let tenth = all[9]["position"].as_i64().expect("position");
    let bounded = export_lines(&app, &format!("?after={fifth}&until={tenth}"), &admin).await;
    assert_eq!(bounded.as_slice(), &all[5..10]);
    let orders = export_lines(&app, "?aggregate_type=order", &admin).await;
    let expected: Vec<Value> = all
        .iter()
        .filter(|event| event["aggregate_type"] == "order")
        .cloned()
        .collect();
    assert_eq!(orders, expected);
    assert!(!orders.is_empty());

    let unknown = app
        .get("/api/audit/export?after=999999", Some(&admin))
        .await;
    assert_problem(unknown, 422, "validation_failed").await;

    // The command line writes the same lines to a file.
    let file = std::env::temp_dir().join(format!("eshop-export-{}.ndjson", app.namespace));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_eshop"))
        .args(["audit", "export", "--out"])
        .arg(&file)
        .args(["--database-url", &app.database_url])
        .output()
        .expect("eshop runs");
    assert!(output.status.success(), "{output:?}");
    let written: Vec<Value> = std::fs::read_to_string(&file)
        .expect("the file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("envelope"))
        .collect();
    assert_eq!(written, all);
    let resumed = std::process::Command::new(env!("CARGO_BIN_EXE_eshop"))
        .args(["audit", "export", "--out"])
        .arg(&file)
        .args(["--database-url", &app.database_url, "--after"])
        .arg(fifth.to_string())
        .output()
        .expect("eshop runs");
    assert!(resumed.status.success(), "{resumed:?}");
    let appended = std::fs::read_to_string(&file)
        .expect("the file")
        .lines()
        .count();
    assert_eq!(appended, all.len() * 2 - 5, "--after appends the rest");
    let _ = std::fs::remove_file(&file);
    app.shutdown().await;
}

async fn verification(app: &TestApp, token: &str) -> Value {
    json_of(app, "/api/audit/verify", token).await
}

async fn fully_sealed(app: &TestApp, token: &str) -> Value {
    let total = app.event_count().await;
    eventually(
        Duration::from_secs(30),
        "the sealer links every event",
        || async {
            let verified = verification(app, token).await;
            (verified["verified_events"].as_i64() == Some(total) && verified["pending_events"] == 0)
                .then_some(verified)
        },
    )
    .await
}

async fn tamper(app: &TestApp, statement: &str) {
    let mut tx = app.pool.begin().await.expect("begin");
    for sql in [
        "ALTER TABLE events DISABLE TRIGGER events_append_only",
        statement,
        "ALTER TABLE events ENABLE TRIGGER events_append_only",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.expect(sql);
    }
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn verification_names_each_altered_missing_and_unsealed_event() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for title in ["Dune", "Emma", "Ulysses"] {
        app.add_book(&admin, title, 5).await;
    }
    let (ann_id, ann) = app.customer("ann").await;
    deposit(&app, &ann, None).await;
    // An erasure deletes a key, not an event: the chain (over ciphertext) still holds.
    let erased = app
        .post(
            &format!("/api/admin/users/{ann_id}/erase"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(erased.status(), 200);

    let sound = fully_sealed(&app, &admin).await;
    assert_eq!(sound["ok"], true, "{sound}");
    assert!(sound.get("first_mismatch").is_none());
    let head = &sound["head"];
    assert_eq!(head["link"].as_str().map(str::len), Some(64), "{sound}");

    // Within 10 s a seal is stored and published on NATS with the chain's link.
    let state = app.state();
    let seal: Value = eventually(Duration::from_secs(20), "a seal on NATS", || async {
        let stream = state
            .jetstream
            .get_stream(state.subjects.seals_stream_name())
            .await
            .ok()?;
        let message = stream
            .get_last_raw_message_by_subject(&state.subjects.seals())
            .await
            .ok()?;
        serde_json::from_slice(&message.payload).ok()
    })
    .await;
    let stored: Vec<u8> = sqlx::query_scalar("SELECT link FROM event_links WHERE chain_index = $1")
        .bind(seal["chain_index"].as_i64().expect("chain index"))
        .fetch_one(&app.pool)
        .await
        .expect("the sealed link");
    assert_eq!(
        seal["link"].as_str(),
        Some(eshop_infra::audit::chain::to_hex(&stored).as_str())
    );
    assert!(
        seal["up_to_position"].is_i64() && seal["sealed_at"].is_string(),
        "{seal}"
    );

    let products: Vec<i64> = sqlx::query_scalar(
        "SELECT position FROM events WHERE event_type = 'ProductAdded' ORDER BY position",
    )
    .fetch_all(&app.pool)
    .await
    .expect("positions");
    let (altered, deleted) = (products[0], products[1]);
    tamper(
        &app,
        &format!(
            "UPDATE events SET payload = jsonb_set(payload, '{{data,price_cents}}', '1')
              WHERE position = {altered}"
        ),
    )
    .await;
    tamper(
        &app,
        &format!("DELETE FROM events WHERE position = {deleted}"),
    )
    .await;
    // Inserted into the past: the xid and time of the first event, so it sorts inside the
    // sealed part of the chain.
    let inserted: i64 = sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata, xid, recorded_at)
         SELECT 'product', $1, 1, 'ProductAdded', '1', payload, metadata, xid, recorded_at
           FROM events WHERE position = $2
         RETURNING position",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(products[2])
    .fetch_one(&app.pool)
    .await
    .expect("inserted");

    let broken = verification(&app, &admin).await;
    assert_eq!(broken["ok"], false, "{broken}");
    let named: Vec<(i64, &str)> = broken["mismatches"]
        .as_array()
        .expect("mismatches")
        .iter()
        .map(|m| {
            (
                m["position"].as_i64().expect("position"),
                m["reason"].as_str().expect("reason"),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            (altered, "altered"),
            (deleted, "missing"),
            (inserted, "unsealed")
        ],
        "{broken}"
    );
    assert_eq!(broken["first_mismatch"]["position"], altered);
    assert_eq!(broken["first_mismatch"]["reason"], "altered");
    assert_eq!(broken["mismatch_count"], 3);

    // The command line exits non-zero and names each one.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_eshop"))
        .args(["audit", "verify", "--database-url", &app.database_url])
        .output()
        .expect("eshop runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for (position, reason) in &named {
        assert!(
            stderr.contains(&format!("position {position}: {reason}")),
            "{stderr}"
        );
    }
    let printed: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(printed["mismatch_count"], 3);
    app.shutdown().await;
}
