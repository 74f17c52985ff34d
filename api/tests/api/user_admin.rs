//! The seeds' async user-CRUD contract: an admin creates an account without a password (its
//! owner is mailed a one-time link to choose one), replaces a user's editable fields, and
//! follows each request run in the background by its task: operation, related type and id,
//! and a small status answer to poll.

use std::time::Duration;

use eshop_infra::testing::smtp::SmtpServer;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::passwords::mailed_token;

#[tokio::test]
async fn an_account_an_admin_creates_has_no_password_until_its_owner_sets_one() {
    let server = SmtpServer::start().await;
    let url = server.url();
    let app = spawn_app_with(|config| config.smtp_url = Some(url)).await;
    let admin = app.admin_token().await;
    let (_, customer) = app.customer("carl").await;
    let body = json!({"username": "user1", "email": "user1@example.com",
                      "first_name": "John", "last_name": "Doe"});
    assert_problem(
        app.post("/api/users", Some(&customer), body.clone()).await,
        403,
        "forbidden",
    )
    .await;
    let created = app.post("/api/users", Some(&admin), body).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(created["first_name"], "John");

    let token = mailed_token(
        &server,
        "user1@example.com",
        "Your eshop account is ready: choose a password",
    )
    .await;
    assert_eq!(
        app.post(
            "/api/auth/login",
            None,
            json!({"email": "user1@example.com", "password": PASSWORD}),
        )
        .await
        .status(),
        401
    );
    let set = app
        .post(
            "/api/auth/password-reset/confirm",
            None,
            json!({"token": token, "new_password": "plum-velvet-42"}),
        )
        .await;
    assert_eq!(set.status(), 200);
    app.login("user1@example.com", "plum-velvet-42").await;

    let shown: Value = app
        .get(&format!("/api/users/{id}?min_version=2"), Some(&admin))
        .await
        .json()
        .await
        .expect("json");
    let joined = shown["date_joined"].as_str().expect("date_joined");
    assert_eq!(shown["created_at"], joined);
    let time = |text: &str| chrono::DateTime::parse_from_rfc3339(text).expect("time");
    assert!(time(shown["updated_at"].as_str().expect("updated_at")) > time(joined));
    app.shutdown().await;
}

#[tokio::test]
async fn put_replaces_a_users_editable_fields() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (id, _) = app.customer("dora").await;
    let path = format!("/api/users/{id}");
    let replaced = app
        .request(Method::PUT, &path, Some(&admin))
        .json(&json!({"email": "dora.new@example.com", "first_name": "Dora", "last_name": "Explorer"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(replaced.status(), 200);
    let replaced: Value = replaced.json().await.expect("json");
    assert_eq!(
        (
            &replaced["email"],
            &replaced["first_name"],
            &replaced["last_name"]
        ),
        (
            &json!("dora.new@example.com"),
            &json!("Dora"),
            &json!("Explorer")
        )
    );
    let partial = app
        .request(Method::PUT, &path, Some(&admin))
        .json(&json!({"email": "dora@example.com"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(partial.status(), 422);
    app.shutdown().await;
}

async fn done(app: &TestApp, token: &str, task_id: &str) -> Value {
    eventually(Duration::from_secs(20), "the task done", || async {
        let status: Value = app
            .get(&format!("/api/tasks/{task_id}/status"), Some(token))
            .await
            .json()
            .await
            .expect("json");
        let keys: Vec<&String> = status.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["id", "progress", "status"], "{status}");
        (status["status"] == "DONE").then_some(())
    })
    .await;
    app.get(&format!("/api/tasks/{task_id}"), Some(token))
        .await
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn tasks_name_their_operation_and_what_they_are_about() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let queued = app
        .request(Method::POST, "/api/users", Some(&admin))
        .header("Prefer", "respond-async")
        .json(&json!({"username": "user2", "email": "user2@example.com"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(queued.status(), 202);
    let task_id = queued.json::<Value>().await.expect("json")["task_id"]
        .as_str()
        .expect("task")
        .to_string();
    let task = done(&app, &admin, &task_id).await;
    assert_eq!(task["operation"], "create");
    assert_eq!(task["related_type"], "user");
    let user_id = task["related_id"].as_str().expect("related_id").to_string();
    assert_eq!(task["result"]["body"]["id"], user_id.as_str());

    let queued = app
        .request(Method::PUT, &format!("/api/users/{user_id}"), Some(&admin))
        .header("Prefer", "respond-async")
        .json(&json!({"email": "user2@example.com", "first_name": "Ann", "last_name": "Lee"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(queued.status(), 202);
    let task_id = queued.json::<Value>().await.expect("json")["task_id"]
        .as_str()
        .expect("task")
        .to_string();
    let task = done(&app, &admin, &task_id).await;
    assert_eq!(
        (
            &task["operation"],
            &task["related_type"],
            &task["related_id"]
        ),
        (&json!("update"), &json!("user"), &json!(user_id))
    );
    let queued = app
        .request(
            Method::DELETE,
            &format!("/api/users/{user_id}"),
            Some(&admin),
        )
        .header("Prefer", "respond-async")
        .send()
        .await
        .expect("sent");
    let task_id = queued.json::<Value>().await.expect("json")["task_id"]
        .as_str()
        .expect("task")
        .to_string();
    let task = done(&app, &admin, &task_id).await;
    assert_eq!(task["operation"], "delete");
    // Someone else's task status is 404 for a customer.
    let (_, customer) = app.customer("eve").await;
    assert_problem(
        app.get(&format!("/api/tasks/{task_id}/status"), Some(&customer))
            .await,
        404,
        "not_found",
    )
    .await;
    app.shutdown().await;
}
