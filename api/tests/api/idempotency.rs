use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::helpers::*;

async fn deposit_with_key(app: &TestApp, token: &str, key: &str, cents: i64) -> Response {
    app.request(Method::POST, "/api/users/me/deposits", Some(token))
        .header("Idempotency-Key", key)
        .json(&json!({"amount_cents": cents}))
        .send()
        .await
        .expect("sent")
}

#[tokio::test]
async fn the_same_key_and_body_returns_the_first_answer_and_appends_nothing() {
    let app = spawn_app().await;
    let (_, token) = app.customer("kate").await;
    let first = deposit_with_key(&app, &token, "top-up-1", 700).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.expect("json");
    let events = app.event_count().await;

    let again = deposit_with_key(&app, &token, "top-up-1", 700).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.expect("json");
    assert_eq!(again, first);
    assert_eq!(app.event_count().await, events);

    let me: Value = app
        .get("/api/users/me?min_version=2", Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["balance_cents"], 700);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422() {
    let app = spawn_app().await;
    let (_, token) = app.customer("liam").await;
    assert_eq!(
        deposit_with_key(&app, &token, "k-1", 100).await.status(),
        200
    );
    let reused = deposit_with_key(&app, &token, "k-1", 200).await;
    assert_problem(reused, 422, "idempotency_key_reused").await;
}

#[tokio::test]
async fn keys_belong_to_their_user() {
    let app = spawn_app().await;
    let (_, mia) = app.customer("mia").await;
    let (_, noah) = app.customer("noah").await;
    assert_eq!(
        deposit_with_key(&app, &mia, "shared-key", 100)
            .await
            .status(),
        200
    );
    let theirs = deposit_with_key(&app, &noah, "shared-key", 100).await;
    assert_eq!(theirs.status(), 200);
    assert!(theirs.headers().get("idempotent-replayed").is_none());
    let noah_me: Value = app
        .get("/api/users/me?min_version=2", Some(&noah))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(noah_me["balance_cents"], 100);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_take_effect_once() {
    let app = spawn_app().await;
    let (_, token) = app.customer("olga").await;
    let events = app.event_count().await;
    let requests = (0..10).map(|_| deposit_with_key(&app, &token, "burst", 300));
    let answers = futures::future::join_all(requests).await;
    let mut bodies = Vec::new();
    for answer in answers {
        assert_eq!(answer.status(), 200);
        bodies.push(answer.json::<Value>().await.expect("json"));
    }
    assert!(bodies.iter().all(|body| body == &bodies[0]), "{bodies:?}");
    assert_eq!(bodies[0]["balance_cents"], 300);
    assert_eq!(app.event_count().await, events + 1);
}

#[tokio::test]
async fn a_replayed_registration_returns_the_same_account() {
    let app = spawn_app().await;
    let body = json!({"email": "pat@example.com", "username": "pat", "password": PASSWORD});
    let register = || {
        app.request(Method::POST, "/api/auth/register", None)
            .header("Idempotency-Key", "signup-pat")
            .json(&body)
            .send()
    };
    let first = register().await.expect("sent");
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    let again = register().await.expect("sent");
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.expect("json"), first);
}

#[tokio::test]
async fn a_final_error_is_remembered_too() {
    let app = spawn_app().await;
    app.register("quinn@example.com", "quinn").await;
    let body = json!({"email": "quinn@example.com", "username": "quinn2", "password": PASSWORD});
    for _ in 0..2 {
        let response = app
            .request(Method::POST, "/api/auth/register", None)
            .header("Idempotency-Key", "dup-email")
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert_problem(response, 409, "email_taken").await;
    }
}
