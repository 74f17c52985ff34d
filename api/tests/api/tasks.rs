//! Background tasks: any command with `Prefer: respond-async`, heavy tasks with progress, and a
//! task whose worker died.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

use eshop_api::background::tasks::TaskExecutor;
use eshop_api::server::router;

use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(30);

async fn task_when_finished(app: &TestApp, token: Option<&str>, url: &str) -> Value {
    eventually(WAIT, &format!("{url} to finish"), || async {
        let task: Value = app.get(url, token).await.json().await.ok()?;
        matches!(task["status"].as_str(), Some("DONE" | "FAILED")).then_some(task)
    })
    .await
}

async fn deposit_async(app: &TestApp, token: &str, amount_cents: i64) -> Value {
    let response = app
        .request(Method::POST, "/api/users/me/deposits", Some(token))
        .header("Prefer", "respond-async")
        .json(&json!({"amount_cents": amount_cents}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    assert_eq!(
        response.headers()["preference-applied"].to_str().ok(),
        Some("respond-async")
    );
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let accepted: Value = response.json().await.expect("json");
    assert_eq!(accepted["status_url"], location);
    assert_eq!(
        location,
        format!("/api/tasks/{}", accepted["task_id"].as_str().expect("id"))
    );
    accepted
}

/// The balance the users read model shows once it has applied the finished `task`'s command
/// (the read model follows the stream, so it is read as of the command's version).
async fn balance_after(app: &TestApp, token: &str, task: &Value) -> i64 {
    let version = task["result"]["body"]["version"]
        .as_u64()
        .expect("the answer's version");
    let me: Value = app
        .get(&format!("/api/users/me?min_version={version}"), Some(token))
        .await
        .json()
        .await
        .expect("json");
    me["balance_cents"].as_i64().expect("balance")
}

#[tokio::test]
async fn any_command_runs_in_the_background_and_reports_its_answer() {
    let app = spawn_app().await;
    let (_, token) = app.customer("tara").await;
    let accepted = deposit_async(&app, &token, 2500).await;
    let url = accepted["status_url"].as_str().expect("url");
    let task = task_when_finished(&app, Some(&token), url).await;
    assert_eq!(task["status"], "DONE", "{task}");
    assert_eq!(task["kind"], "command");
    assert_eq!(task["progress"], 100);
    assert_eq!(task["input"]["path"], "/api/users/me/deposits");
    assert_eq!(task["input"]["body"]["amount_cents"], 2500);
    assert_eq!(task["result"]["status"], 200);
    assert_eq!(task["result"]["body"]["balance_cents"], 2500);
    assert_eq!(task["result"]["replayed"], false);
    assert!(task["created_at"].is_string() && task["updated_at"].is_string());
    assert_eq!(balance_after(&app, &token, &task).await, 2500);

    // Listed for its owner; another customer cannot see it; an admin sees every task.
    let mine: Value = app
        .get("/api/tasks", Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(mine["items"].as_array().expect("items").len(), 1);
    let (_, other) = app.customer("ugo").await;
    let theirs: Value = app
        .get("/api/tasks", Some(&other))
        .await
        .json()
        .await
        .expect("json");
    assert!(theirs["items"].as_array().expect("items").is_empty());
    assert_problem(app.get(url, Some(&other)).await, 404, "not_found").await;
    assert_problem(app.get(url, None).await, 404, "not_found").await;
    let admin = app.admin_token().await;
    assert_eq!(app.get(url, Some(&admin)).await.status(), 200);

    // Reads are answered at once whatever the client prefers.
    let read = app
        .request(Method::GET, "/api/users/me", Some(&token))
        .header("Prefer", "respond-async")
        .send()
        .await
        .expect("sent");
    assert_eq!(read.status(), 200);
    // Pages of tasks, newest first.
    deposit_async(&app, &token, 100).await;
    let first: Value = app
        .get("/api/tasks?limit=1", Some(&token))
        .await
        .json()
        .await
        .expect("json");
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second: Value = app
        .get(&format!("/api/tasks?limit=1&cursor={cursor}"), Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        second["items"][0]["id"], accepted["task_id"],
        "the older one"
    );
    assert_ne!(first["items"][0]["id"], second["items"][0]["id"]);

    // A registration in the background keeps the password out of the task.
    let response = app
        .request(Method::POST, "/api/auth/register", None)
        .header("Prefer", "respond-async")
        .json(&json!({"email": "vera@example.com", "username": "vera", "password": PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.expect("json");
    let task = task_when_finished(&app, None, accepted["status_url"].as_str().expect("url")).await;
    assert_eq!(task["status"], "DONE", "{task}");
    assert_eq!(task["result"]["status"], 201);
    assert_eq!(task["input"]["body"]["password"], "[redacted]");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE input::text LIKE $1")
        .bind(format!("%{PASSWORD}%"))
        .fetch_one(&app.pool)
        .await
        .expect("counts");
    assert_eq!(stored, 0);
    app.login("vera@example.com", PASSWORD).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_failing_background_command_ends_failed_with_its_problem() {
    let app = spawn_app().await;
    let (_, token) = app.customer("wim").await;
    let accepted = deposit_async(&app, &token, -5).await;
    let task = task_when_finished(
        &app,
        Some(&token),
        accepted["status_url"].as_str().expect("url"),
    )
    .await;
    assert_eq!(task["status"], "FAILED", "{task}");
    assert_eq!(task["error"]["code"], "validation_failed");
    assert_eq!(task["error"]["status"], 422);
    assert!(task.get("result").is_none());
    // A bad token is refused at once, not in the background.
    let refused = app
        .request(Method::POST, "/api/users/me/deposits", Some("not-a-token"))
        .header("Prefer", "respond-async")
        .json(&json!({"amount_cents": 5}))
        .send()
        .await
        .expect("sent");
    assert_problem(refused, 401, "unauthorized").await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_sales_report_reports_rising_progress_then_its_result() {
    let app = spawn_app_with(|config| config.task_step_delay_ms = 100).await;
    let admin = app.admin_token().await;
    let book = app.add_book(&admin, "Dune", 5).await;
    let (_, token) = app.customer("xena").await;
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
            json!({"product_id": book["id"], "quantity": 2, "payment_method": "balance"}),
        )
        .await;
    assert_eq!(purchase.status(), 201);
    let today = chrono::Utc::now().date_naive();
    let from = today - chrono::Days::new(14);
    // The order reaches the read model the report reads.
    eventually(WAIT, "the confirmed order in the read model", || async {
        let confirmed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'confirmed'")
                .fetch_one(&app.pool)
                .await
                .ok()?;
        (confirmed == 1).then_some(())
    })
    .await;

    let customer_try = app
        .post(
            "/api/admin/reports/sales",
            Some(&token),
            json!({"from": from, "to": today}),
        )
        .await;
    assert_problem(customer_try, 403, "forbidden").await;
    let backwards = app
        .post(
            "/api/admin/reports/sales",
            Some(&admin),
            json!({"from": today, "to": from}),
        )
        .await;
    assert_problem(backwards, 422, "validation_failed").await;

    let response = app
        .post(
            "/api/admin/reports/sales",
            Some(&admin),
            json!({"from": from, "to": today}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.expect("json");
    let url = accepted["status_url"].as_str().expect("url").to_string();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    let task = loop {
        let task: Value = app
            .get(&url, Some(&admin))
            .await
            .json()
            .await
            .expect("json");
        seen.push((
            task["status"].as_str().expect("status").to_string(),
            task["progress"].as_i64().expect("progress"),
        ));
        if task["status"] == "DONE" || task["status"] == "FAILED" {
            break task;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the report never finished: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(task["status"], "DONE", "{task}");
    assert_eq!(task["kind"], "sales_report");
    let progress: Vec<i64> = seen.iter().map(|(_, progress)| *progress).collect();
    assert!(
        progress.windows(2).all(|pair| pair[0] <= pair[1]),
        "never down: {progress:?}"
    );
    assert!(
        seen.iter()
            .any(|(status, progress)| status == "PROCESSING" && (1..100).contains(progress)),
        "seen part-way: {seen:?}"
    );
    assert_eq!(seen.last().map(|(_, progress)| *progress), Some(100));
    let result = &task["result"];
    assert_eq!(result["days"].as_array().expect("days").len(), 15);
    assert_eq!(result["orders"], 1);
    assert_eq!(result["revenue_cents"], 3998);
    let last_day = &result["days"][14];
    assert_eq!(last_day["top_products"][0]["title"], "Dune");
    assert_eq!(last_day["top_products"][0]["quantity"], 2);
    app.shutdown().await;
}

#[tokio::test]
async fn a_ratings_recompute_reports_progress_and_stores_the_aggregates() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let dune = app.add_book(&admin, "Dune", 5).await;
    app.add_book(&admin, "Emma", 5).await;
    let dune_id = dune["id"].as_str().expect("id").to_string();
    for (name, rating) in [("yara", 5), ("zeno", 2)] {
        let (_, token) = app.customer(name).await;
        let review = app
            .post(
                &format!("/api/products/{dune_id}/reviews"),
                Some(&token),
                json!({"rating": rating, "comment": "read it"}),
            )
            .await;
        assert_eq!(review.status(), 201);
    }
    eventually(WAIT, "the reviews in the read model", || async {
        let reviews: i64 = sqlx::query_scalar("SELECT count(*) FROM reviews")
            .fetch_one(&app.pool)
            .await
            .ok()?;
        (reviews == 2).then_some(())
    })
    .await;
    eventually(WAIT, "both products in the read model", || async {
        let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
            .fetch_one(&app.pool)
            .await
            .ok()?;
        (products == 2).then_some(())
    })
    .await;
    let response = app
        .post(
            "/api/admin/products/ratings/recompute",
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.expect("json");
    let task = task_when_finished(
        &app,
        Some(&admin),
        accepted["status_url"].as_str().expect("url"),
    )
    .await;
    assert_eq!(task["status"], "DONE", "{task}");
    assert_eq!(task["progress"], 100);
    assert_eq!(
        task["result"],
        json!({"products": 2, "reviewed_products": 1, "reviews": 2})
    );
    let (count, average): (i64, Option<String>) = sqlx::query_as(
        "SELECT rating_count, rating_average::text FROM product_ratings WHERE product_id = $1::uuid",
    )
    .bind(&dune_id)
    .fetch_one(&app.pool)
    .await
    .expect("a row");
    assert_eq!((count, average.as_deref()), (2, Some("3.50")));
    app.shutdown().await;
}

#[tokio::test]
async fn a_task_whose_worker_died_mid_task_ends_done_once() {
    // This replica runs no task worker: the test plays the worker that dies.
    let app = spawn_app_with(|config| config.task_concurrency = 0).await;
    let (user_id, token) = app.customer("abel").await;
    let accepted = deposit_async(&app, &token, 1000).await;
    let task_id: uuid::Uuid = accepted["task_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");

    let state = app.state();
    let consumer =
        eshop_infra::tasks::consumer(&state.jetstream, &state.subjects, Duration::from_secs(3))
            .await
            .expect("the shared consumer");
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .expect("fetch");
    let message = batch.next().await.expect("the task's message").expect("ok");
    let queued: eshop_infra::tasks::QueuedTask =
        serde_json::from_slice(&message.payload).expect("a queued task");
    assert_eq!(queued.task_id, task_id);
    // The doomed worker starts the task and applies the deposit …
    let started = state
        .tasks
        .start(task_id)
        .await
        .expect("db")
        .expect("a task");
    let executor = TaskExecutor::new(state.clone(), router(state.clone()), Duration::ZERO);
    let outcome = executor.run_command(&started, queued.work).await;
    assert!(matches!(outcome, eshop_infra::tasks::Outcome::Done(_)));
    // … and dies before it records the outcome or acknowledges the message.
    drop(message);
    let processing: Value = app
        .get(accepted["status_url"].as_str().expect("url"), Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(processing["status"], "PROCESSING");

    // A replica with a worker gets the message again once the ack wait ran out.
    let replica = app.replica(|config| config.task_ack_wait_seconds = 3).await;
    let task = task_when_finished(
        &replica,
        Some(&token),
        accepted["status_url"].as_str().expect("url"),
    )
    .await;
    assert_eq!(task["status"], "DONE", "{task}");
    assert_eq!(task["attempts"], 2);
    assert_eq!(task["result"]["replayed"], true, "the first run's answer");
    assert_eq!(task["result"]["body"]["balance_cents"], 1000);
    assert_eq!(
        balance_after(&app, &token, &task).await,
        1000,
        "deposited once"
    );
    let deposits: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'WalletDeposited'",
    )
    .bind(&user_id)
    .fetch_one(&app.pool)
    .await
    .expect("counts");
    assert_eq!(deposits, 1);
    replica.shutdown().await;
    app.shutdown().await;
}

/// The queued request waits in JetStream (on disk): its body is sealed there, so a password
/// or card number in it is not readable from the stream.
#[tokio::test]
async fn a_queued_request_keeps_its_secrets_sealed_in_the_stream() {
    // No worker here: the request stays queued, to be read as any stream reader would.
    let app = spawn_app_with(|config| config.task_concurrency = 0).await;
    let secret = "sealed-horse-77";
    let queued = app
        .request(Method::POST, "/api/auth/register", None)
        .header("Prefer", "respond-async")
        .json(&json!({"email": "wren@example.com", "username": "wren", "password": secret}))
        .send()
        .await
        .expect("sent");
    assert_eq!(queued.status(), 202);
    let state = app.state();
    let mut stream = state
        .jetstream
        .get_stream(state.subjects.tasks_stream_name())
        .await
        .expect("the task stream");
    let (messages, first) = {
        let info = stream.info().await.expect("info");
        (info.state.messages, info.state.first_sequence)
    };
    assert_eq!(messages, 1, "the request is queued");
    let message = stream
        .get_raw_message(first)
        .await
        .expect("the queued message");
    let raw = String::from_utf8_lossy(&message.payload).to_string();
    assert!(raw.contains("/api/auth/register"), "{raw}");
    assert!(!raw.contains(secret), "the password travels sealed: {raw}");
    assert!(!raw.contains("wren@example.com"), "{raw}");
    app.shutdown().await;
}
