//! Bad input always answers 4xx problem+json and persists nothing.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn malformed_json_is_a_400() {
    let app = spawn_app().await;
    let response = app
        .request(Method::POST, "/api/auth/register", None)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .expect("sent");
    assert_problem(response, 400, "malformed_json").await;
}

#[tokio::test]
async fn wrong_types_missing_and_unknown_fields_are_422() {
    let app = spawn_app().await;
    let events = app.event_count().await;
    for (body, field) in [
        (
            json!({"email": 5, "username": "u", "password": "p"}),
            "body",
        ),
        (json!({"username": "henry", "password": PASSWORD}), "email"),
        (
            json!({"email": "h@example.com", "username": "henry", "password": PASSWORD, "is_admin": true}),
            "is_admin",
        ),
    ] {
        let response = app.post("/api/auth/register", None, body).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        if field != "body" {
            assert_eq!(problem["errors"][0]["field"], field);
        }
    }
    assert_eq!(app.event_count().await, events);
}

#[tokio::test]
async fn a_body_that_is_not_json_or_too_large_is_refused() {
    let app = spawn_app().await;
    let text = app
        .request(Method::POST, "/api/auth/register", None)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("sent");
    assert_problem(text, 415, "unsupported_media_type").await;

    let huge =
        json!({"email": "a@example.com", "username": "huge", "password": "x".repeat(100_000)});
    let response = app.post("/api/auth/register", None, huge).await;
    assert_problem(response, 413, "payload_too_large").await;
}

#[tokio::test]
async fn tampered_or_missing_tokens_are_401() {
    let app = spawn_app().await;
    let (_, token) = app.customer("ivan").await;
    assert_problem(app.get("/api/users/me", None).await, 401, "unauthorized").await;
    let tampered = format!("{token}x");
    assert_problem(
        app.get("/api/users/me", Some(&tampered)).await,
        401,
        "unauthorized",
    )
    .await;
    let response = app.get("/api/users/me", Some("not.a.token")).await;
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn unknown_routes_are_problem_404() {
    let app = spawn_app().await;
    assert_problem(app.get("/api/nothing-here", None).await, 404, "not_found").await;
}

#[tokio::test]
async fn bad_headers_are_400() {
    let app = spawn_app().await;
    let (_, token) = app.customer("judy").await;
    let bad_if_match = app
        .request(Method::PATCH, "/api/users/me", Some(&token))
        .header("If-Match", "yesterday")
        .json(&json!({"first_name": "Judy"}))
        .send()
        .await
        .expect("sent");
    assert_problem(bad_if_match, 400, "invalid_header").await;
    let bad_key = app
        .request(Method::POST, "/api/users/me/deposits", Some(&token))
        .header("Idempotency-Key", "k".repeat(300))
        .json(&json!({"amount_cents": 5}))
        .send()
        .await
        .expect("sent");
    assert_problem(bad_key, 400, "invalid_header").await;
}
