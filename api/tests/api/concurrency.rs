use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn fifty_simultaneous_deposits_into_one_wallet_all_land() {
    let app = spawn_app().await;
    let (_, token) = app.customer("rita").await;
    let deposits = (1..=50).map(|cents| {
        app.post(
            "/api/users/me/deposits",
            Some(&token),
            json!({"amount_cents": cents}),
        )
    });
    for response in futures::future::join_all(deposits).await {
        assert_eq!(response.status(), 200);
    }
    let me: Value = app
        .get("/api/users/me?min_version=51", Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["balance_cents"], (1..=50).sum::<i64>());
    assert_eq!(me["version"], 51);
}

#[tokio::test]
async fn simultaneous_registrations_with_one_email_succeed_exactly_once() {
    let app = spawn_app().await;
    let events = app.event_count().await;
    let attempts = (0..20).map(|n| {
        app.post(
            "/api/auth/register",
            None,
            json!({"email": "same@example.com", "username": format!("racer{n}"), "password": PASSWORD}),
        )
    });
    let mut created = 0;
    let mut taken = 0;
    for response in futures::future::join_all(attempts).await {
        match response.status().as_u16() {
            201 => created += 1,
            409 => {
                let problem: Value = response.json().await.expect("json");
                assert_eq!(problem["code"], "email_taken");
                taken += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((created, taken), (1, 19));
    assert_eq!(app.event_count().await, events + 1);
}
