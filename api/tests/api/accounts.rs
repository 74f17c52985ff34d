use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn register_answers_the_new_account_without_secrets() {
    let app = spawn_app().await;
    let response = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": " Alice@Example.com ", "username": "alice", "password": PASSWORD,
                   "first_name": "Alice"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["etag"], "\"1\"");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["email"], "alice@example.com");
    assert_eq!(body["username"], "alice");
    assert_eq!(body["first_name"], "Alice");
    assert_eq!(body["last_name"], Value::Null);
    assert_eq!(body["version"], 1);
    assert!(body["id"].as_str().is_some());
    let text = body.to_string();
    assert!(!text.contains("argon2") && !text.contains(PASSWORD));
    app.shutdown().await;
}

#[tokio::test]
async fn a_taken_email_or_username_is_a_conflict() {
    let app = spawn_app().await;
    app.register("bob@example.com", "bob").await;
    let same_email = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "BOB@example.com", "username": "robert", "password": PASSWORD}),
        )
        .await;
    assert_problem(same_email, 409, "email_taken").await;
    let same_username = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "robert@example.com", "username": "Bob", "password": PASSWORD}),
        )
        .await;
    assert_problem(same_username, 409, "username_taken").await;
}

#[tokio::test]
async fn invalid_registration_names_every_bad_field() {
    let app = spawn_app().await;
    let response = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "not-an-email", "username": "x", "password": "12345678"}),
        )
        .await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    let mut fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["email", "password", "username"]);
    assert_eq!(app.event_count().await, 2, "only the admin's events");
}

#[tokio::test]
async fn login_refuses_unknown_email_and_wrong_password_alike() {
    let app = spawn_app().await;
    app.register("carol@example.com", "carol").await;
    let wrong_password = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "carol@example.com", "password": "nope-nope-1"}),
        )
        .await;
    let unknown = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "nobody@example.com", "password": PASSWORD}),
        )
        .await;
    let a = assert_problem(wrong_password, 401, "invalid_credentials").await;
    let b = assert_problem(unknown, 401, "invalid_credentials").await;
    assert_eq!(a, b);

    let ok = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "CAROL@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
}

#[tokio::test]
async fn a_customer_reads_and_changes_their_profile_and_tops_up() {
    let app = spawn_app().await;
    let (id, token) = app.customer("dave").await;

    let me: Value = app
        .get("/api/users/me", Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["balance_cents"], 0);
    assert_eq!(me["roles"], json!([]));

    let patched = app
        .patch(
            "/api/users/me",
            Some(&token),
            json!({"first_name": "Dave", "last_name": "Lister"}),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let patched: Value = patched.json().await.expect("json");
    assert_eq!(
        (patched["first_name"].as_str(), patched["version"].as_u64()),
        (Some("Dave"), Some(2))
    );

    let deposit = app
        .post(
            "/api/users/me/deposits",
            Some(&token),
            json!({"amount_cents": 2500}),
        )
        .await;
    assert_eq!(deposit.status(), 200);
    let deposit: Value = deposit.json().await.expect("json");
    assert_eq!(deposit["balance_cents"], 2500);
    assert_eq!(deposit["version"], 3);

    for amount in [0, -100] {
        let refused = app
            .post(
                "/api/users/me/deposits",
                Some(&token),
                json!({"amount_cents": amount}),
            )
            .await;
        let problem = assert_problem(refused, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "amount_cents");
    }
}

#[tokio::test]
async fn a_stale_if_match_is_refused_with_412() {
    let app = spawn_app().await;
    let (_, token) = app.customer("erin").await;
    let stale = app
        .request(Method::PATCH, "/api/users/me", Some(&token))
        .header("If-Match", "\"7\"")
        .json(&json!({"first_name": "Erin"}))
        .send()
        .await
        .expect("sent");
    let problem = assert_problem(stale, 412, "version_mismatch").await;
    assert_eq!(problem["current_version"], 1);

    let fresh = app
        .request(Method::PATCH, "/api/users/me", Some(&token))
        .header("If-Match", "\"1\"")
        .json(&json!({"first_name": "Erin"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(fresh.status(), 200);
    assert_eq!(fresh.headers()["etag"], "\"2\"");
}

#[tokio::test]
async fn admins_manage_accounts_and_others_are_forbidden() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (frank, frank_token) = app.customer("frank").await;

    assert_problem(
        app.get("/api/users", Some(&frank_token)).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(app.get("/api/users", None).await, 401, "unauthorized").await;

    let shown = app
        .get(&format!("/api/users/{frank}?min_version=1"), Some(&admin))
        .await;
    assert_eq!(shown.status(), 200);
    let first: Value = app
        .get("/api/users?limit=1", Some(&admin))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(first["items"].as_array().expect("items").len(), 1);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("more pages")
        .to_string();
    let rest: Value = app
        .get(
            &format!("/api/users?limit=10&cursor={cursor}"),
            Some(&admin),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(rest["items"].as_array().expect("items").len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);
    let mut emails = vec![
        first["items"][0]["email"].to_string(),
        rest["items"][0]["email"].to_string(),
    ];
    emails.sort();
    assert_eq!(
        emails,
        [
            format!("\"{ADMIN_EMAIL}\""),
            "\"frank@example.com\"".to_string()
        ]
    );

    let granted = app
        .post(
            &format!("/api/users/{frank}/roles"),
            Some(&admin),
            json!({"role": "auditor"}),
        )
        .await;
    assert_eq!(granted.status(), 200);
    let granted: Value = granted.json().await.expect("json");
    assert_eq!(granted["roles"], json!(["auditor"]));

    let deactivated = app
        .request(Method::DELETE, &format!("/api/users/{frank}"), Some(&admin))
        .send()
        .await
        .expect("sent");
    assert_eq!(deactivated.status(), 200);
    let deactivated: Value = deactivated.json().await.expect("json");
    assert_eq!(deactivated["is_active"], false);
    let login = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "frank@example.com", "password": PASSWORD}),
        )
        .await;
    assert_problem(login, 409, "user_deactivated").await;

    let reactivated = app
        .post(
            &format!("/api/users/{frank}/reactivate"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(reactivated.status(), 200);
    app.login("frank@example.com", PASSWORD).await;

    let missing = app
        .get(
            &format!("/api/users/{}", uuid::Uuid::now_v7()),
            Some(&admin),
        )
        .await;
    assert_problem(missing, 404, "not_found").await;
}

#[tokio::test]
async fn the_admin_account_is_created_once_however_often_the_app_starts() {
    let app = spawn_app().await;
    let events_after_first_start = app.event_count().await;
    assert_eq!(
        events_after_first_start, 2,
        "registered, then granted admin"
    );

    let second = eshop_api::server::start(&test_config(&app.database_url, &app.namespace))
        .await
        .expect("second start");
    second.shutdown().await.expect("stops");
    assert_eq!(app.event_count().await, events_after_first_start);

    let admin = app.admin_token().await;
    let me: Value = app
        .get("/api/users/me?min_version=2", Some(&admin))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["roles"], json!(["admin"]));
}

#[tokio::test]
async fn health_answers_ok() {
    let app = spawn_app().await;
    let response = app.get("/health", None).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn password_hashes_never_leave_the_event_store() {
    let app = spawn_app().await;
    let (_, token) = app.customer("vera").await;
    app.get("/api/users/me?min_version=1", Some(&token)).await;
    let stored: String = sqlx::query_scalar(
        "SELECT payload::text FROM events WHERE event_type = 'UserRegistered' LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .expect("stored");
    assert!(stored.contains("$argon2id$"), "the store keeps the hash");
    let state = app.state();
    let published = eshop_infra::testing::read_stream(&state.jetstream, &state.subjects).await;
    assert!(!published.is_empty());
    for event in published {
        assert!(
            !event.payload.to_string().contains("argon2"),
            "{}",
            event.event_type
        );
    }
}
