//! Sessions: rotating single-use refresh tokens, family revocation on reuse, logout, password
//! change, and the password policy.

use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, TestApp, PASSWORD};

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post("/api/auth/refresh", None, json!({"refresh_token": token}))
        .await
}

async fn pair_from(response: reqwest::Response) -> (String, String) {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    (
        body["access_token"].as_str().expect("access").to_string(),
        body["refresh_token"].as_str().expect("refresh").to_string(),
    )
}

#[tokio::test]
async fn a_refresh_token_rotates_and_a_reused_one_revokes_its_whole_family() {
    let app = spawn_app().await;
    app.register("ann@example.com", "ann").await;
    let (access, first_refresh) = app.login_pair("ann@example.com", PASSWORD).await;

    let (second_access, second_refresh) = pair_from(refresh(&app, &first_refresh).await).await;
    assert_ne!(second_refresh, first_refresh);
    assert_eq!(
        app.get("/api/users/me", Some(&second_access))
            .await
            .status(),
        200
    );

    // The first token again: someone else has a copy. The family ends, and with it every
    // access token of the session.
    assert_problem(refresh(&app, &first_refresh).await, 401, "session_revoked").await;
    assert_problem(refresh(&app, &second_refresh).await, 401, "session_revoked").await;
    for token in [&access, &second_access] {
        assert_problem(
            app.get("/api/users/me", Some(token)).await,
            401,
            "session_revoked",
        )
        .await;
    }
    // Another login is another family, untouched.
    let (fresh, _) = app.login_pair("ann@example.com", PASSWORD).await;
    assert_eq!(app.get("/api/users/me", Some(&fresh)).await.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn two_simultaneous_refreshes_with_one_token_get_one_pair_and_revoke_the_family() {
    let app = spawn_app().await;
    app.register("bea@example.com", "bea").await;
    let (_, token) = app.login_pair("bea@example.com", PASSWORD).await;

    let answers = futures::future::join_all((0..8).map(|_| refresh(&app, &token))).await;
    let statuses: Vec<u16> = answers
        .iter()
        .map(|answer| answer.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|status| **status == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|status| **status == 401).count(),
        7,
        "{statuses:?}"
    );
    let winner = answers
        .into_iter()
        .find(|answer| answer.status() == 200)
        .expect("one pair");
    let (access, next) = pair_from(winner).await;
    // The losers presented a spent token: the winner's pair is dead too.
    assert_problem(refresh(&app, &next).await, 401, "session_revoked").await;
    assert_problem(
        app.get("/api/users/me", Some(&access)).await,
        401,
        "session_revoked",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_unknown_refresh_token_is_refused() {
    let app = spawn_app().await;
    assert_problem(
        refresh(&app, "not-a-token").await,
        401,
        "invalid_refresh_token",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn logout_ends_the_session_and_only_that_one() {
    let app = spawn_app().await;
    app.register("cal@example.com", "cal").await;
    let (phone, phone_refresh) = app.login_pair("cal@example.com", PASSWORD).await;
    let (laptop, _) = app.login_pair("cal@example.com", PASSWORD).await;

    let response = app.post("/api/auth/logout", Some(&phone), json!({})).await;
    assert_eq!(response.status(), 204);
    assert_problem(
        app.get("/api/users/me", Some(&phone)).await,
        401,
        "session_revoked",
    )
    .await;
    assert_problem(refresh(&app, &phone_refresh).await, 401, "session_revoked").await;
    assert_eq!(app.get("/api/users/me", Some(&laptop)).await.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn a_password_change_ends_every_session_and_the_old_password() {
    let app = spawn_app().await;
    app.register("dee@example.com", "dee").await;
    let (first, first_refresh) = app.login_pair("dee@example.com", PASSWORD).await;
    let (second, _) = app.login_pair("dee@example.com", PASSWORD).await;

    let wrong = app
        .post(
            "/api/users/me/password",
            Some(&first),
            json!({"current_password": "not-my-password", "new_password": "plum-velvet-42"}),
        )
        .await;
    let problem = assert_problem(wrong, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "current_password");

    let weak = app
        .post(
            "/api/users/me/password",
            Some(&first),
            json!({"current_password": PASSWORD, "new_password": "iloveyou1"}),
        )
        .await;
    let problem = assert_problem(weak, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "new_password");
    assert_eq!(problem["errors"][0]["message"], "is too common");

    let changed = app
        .post(
            "/api/users/me/password",
            Some(&first),
            json!({"current_password": PASSWORD, "new_password": "plum-velvet-42"}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    for token in [&first, &second] {
        assert_problem(
            app.get("/api/users/me", Some(token)).await,
            401,
            "session_revoked",
        )
        .await;
    }
    assert_problem(refresh(&app, &first_refresh).await, 401, "session_revoked").await;
    let old = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "dee@example.com", "password": PASSWORD}),
        )
        .await;
    assert_problem(old, 401, "invalid_credentials").await;
    app.login_pair("dee@example.com", "plum-velvet-42").await;

    // The hash is in the store, never on the stream or in a read model.
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'PasswordChanged' AND payload->'data' ? 'password_hash'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("counts");
    assert_eq!(stored, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn registration_names_the_password_rule_broken() {
    let app = spawn_app().await;
    let cases = [
        ("short1", "must be at least 8 characters"),
        ("1234567890", "must not be only digits"),
        ("sunshine1", "is too common"),
        ("evelynn77!", "is too similar to the username"),
        ("mailbox.example", "is too similar to the e-mail address"),
    ];
    for (password, rule) in cases {
        let response = app
            .post(
                "/api/auth/register",
                None,
                json!({"email": "mailbox@example.com", "username": "evelynn77", "password": password}),
            )
            .await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "password", "{password}");
        assert_eq!(problem["errors"][0]["message"], rule, "{password}");
    }
    assert_eq!(app.event_count().await, 2, "only the admin's events");
    app.shutdown().await;
}

#[tokio::test]
async fn an_access_token_names_its_session_and_expires_sooner_than_the_session() {
    let app = spawn_app().await;
    app.register("fay@example.com", "fay").await;
    let response = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "fay@example.com", "password": PASSWORD}),
        )
        .await;
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert!(body["refresh_token"]
        .as_str()
        .is_some_and(|token| token.len() >= 64));
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE token_digest = $1")
            .bind(body["refresh_token"].as_str())
            .fetch_one(&app.pool)
            .await
            .expect("counts");
    assert_eq!(stored, 0, "only a digest of a refresh token is kept");
    app.shutdown().await;
}
