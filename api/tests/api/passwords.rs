//! Forgotten passwords: a one-time link mailed for any address asked about (the same answer
//! for unknown ones), valid 30 minutes, under the password rules, ending every session;
//! throttled like logins.

use std::time::Duration;

use eshop_api::config::ThrottleSettings;
use eshop_infra::testing::smtp::SmtpServer;
use serde_json::{json, Value};

use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(30);

/// The token in the link of the newest mail to `address` with `subject`, once it arrived.
pub async fn mailed_token(server: &SmtpServer, address: &str, subject: &str) -> String {
    eventually(WAIT, &format!("a mail to {address}"), || async {
        server
            .received()
            .iter()
            .rev()
            .find(|mail| mail.to.iter().any(|to| to == address) && mail.subject() == subject)
            .map(|mail| {
                let body = mail.body_text();
                let start = body.find("token=").expect("a link with a token") + "token=".len();
                body[start..]
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect::<String>()
            })
    })
    .await
}

async fn reset(app: &TestApp, email: &str) -> Value {
    let response = app
        .post("/api/auth/password-reset", None, json!({"email": email}))
        .await;
    assert_eq!(response.status(), 202);
    response.json().await.expect("json")
}

async fn confirm(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post(
        "/api/auth/password-reset/confirm",
        None,
        json!({"token": token, "new_password": password}),
    )
    .await
}

#[tokio::test]
async fn a_forgotten_password_is_reset_once_by_the_mailed_link_and_every_session_ends() {
    let server = SmtpServer::start().await;
    let url = server.url();
    let app = spawn_app_with(|config| config.smtp_url = Some(url)).await;
    let (_, first) = app.customer("rosa").await;
    let second = app.login("rosa@example.com", PASSWORD).await;

    // The same answer for a known and an unknown address.
    let known = reset(&app, "rosa@example.com").await;
    let unknown = reset(&app, "nobody@example.com").await;
    assert_eq!(known, unknown);
    let token = mailed_token(&server, "rosa@example.com", "Reset your eshop password").await;
    assert!(token.len() >= 32, "{token}");
    assert!(server
        .received()
        .iter()
        .all(|mail| !mail.to.iter().any(|to| to == "nobody@example.com")));
    // Only a digest is stored, valid for 30 minutes.
    let lifetime: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM expires_at - created_at)::float8 FROM password_tokens",
    )
    .fetch_one(&app.pool)
    .await
    .expect("token row");
    assert_eq!(lifetime, 1800.0);

    // The password rules hold; a refused password leaves the token usable.
    let weak = assert_problem(
        confirm(&app, &token, "12345678901").await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(weak["errors"][0]["field"], "new_password");
    let changed = confirm(&app, &token, "plum-velvet-42").await;
    assert_eq!(changed.status(), 200);

    for session in [&first, &second] {
        assert_problem(
            app.get("/api/users/me", Some(session)).await,
            401,
            "session_revoked",
        )
        .await;
    }
    assert_problem(
        app.post(
            "/api/auth/login",
            None,
            json!({"email": "rosa@example.com", "password": PASSWORD}),
        )
        .await,
        401,
        "invalid_credentials",
    )
    .await;
    app.login("rosa@example.com", "plum-velvet-42").await;
    // Once only.
    let again = assert_problem(
        confirm(&app, &token, "another-plum-43").await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(again["errors"][0]["field"], "token");
    // The link left the mail log with the mail.
    eventually(WAIT, "the mail sent", || async {
        crate::erasure::columns_holding(&app.pool, &token)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_expired_or_unknown_token_sets_nothing() {
    let server = SmtpServer::start().await;
    let url = server.url();
    let app = spawn_app_with(|config| config.smtp_url = Some(url)).await;
    app.customer("sven").await;
    reset(&app, "sven@example.com").await;
    let token = mailed_token(&server, "sven@example.com", "Reset your eshop password").await;
    sqlx::query("UPDATE password_tokens SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .expect("expired");
    for token in [token.as_str(), "0123456789abcdef0123456789abcdef"] {
        let refused = assert_problem(
            confirm(&app, token, "plum-velvet-42").await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(refused["errors"][0]["field"], "token");
    }
    app.login("sven@example.com", PASSWORD).await;
    app.shutdown().await;
}

#[tokio::test]
async fn password_reset_requests_are_throttled_like_logins() {
    let app = spawn_app_with(|config| {
        config.throttle = ThrottleSettings {
            enabled: true,
            anonymous_commands_per_minute: 100,
            user_commands_per_minute: 100,
            reads_per_minute: 100,
            order_burst: 2,
            order_refill_seconds: 60,
            login_attempts_per_account: 3,
            login_attempts_per_address: 100,
        }
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            app.post(
                "/api/auth/password-reset",
                None,
                json!({"email": "tess@example.com"}),
            )
            .await
            .status()
            .as_u16(),
        );
    }
    assert_eq!(statuses, [202, 202, 202, 429, 429]);
    // Counted apart from logins: the account can still sign in attempts.
    let login = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "tess@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status(), 401);
    app.shutdown().await;
}
