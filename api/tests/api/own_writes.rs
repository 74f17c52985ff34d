//! Read your own writes without `min_version`: once a command is answered, the caller's own
//! account, cart and wishlist, and for admins the products and users they changed, reflect it.

use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn a_profile_change_shows_in_the_very_next_read() {
    let app = spawn_app().await;
    let (_, token) = app.customer("una").await;
    for round in 0..20 {
        let name = format!("Una{round}");
        let changed = app
            .patch("/api/users/me", Some(&token), json!({"first_name": name}))
            .await;
        assert_eq!(changed.status(), 200);
        let me: Value = app
            .get("/api/users/me", Some(&token))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(me["first_name"], name.as_str(), "round {round}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn fifty_simultaneous_deposits_all_show_in_the_next_read() {
    let app = spawn_app().await;
    let (_, token) = app.customer("vic").await;
    let deposits = (0..50).map(|_| {
        app.post(
            "/api/users/me/deposits",
            Some(&token),
            json!({"amount_cents": 100}),
        )
    });
    for answer in join_all(deposits).await {
        assert_eq!(answer.status(), 200);
    }
    let me: Value = app
        .get("/api/users/me", Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["balance_cents"], 5000);
    app.shutdown().await;
}

#[tokio::test]
async fn an_admin_reads_the_products_and_users_they_changed_as_changed() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let book = app.add_book(&admin, "Dune", 0).await;
    let id = book["id"].as_str().expect("id").to_string();
    for _ in 0..40 {
        let restocked = app
            .post(
                &format!("/api/products/{id}/restock"),
                Some(&admin),
                json!({"quantity": 1}),
            )
            .await;
        assert_eq!(restocked.status(), 200);
    }
    let read: Value = app
        .get(&format!("/api/products/{id}"), Some(&admin))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(read["stock"], 40);
    let time = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(read[field].as_str().expect(field)).expect("time")
    };
    assert!(time("updated_at") > time("created_at"), "{read}");

    let (user_id, _) = app.customer("wes").await;
    for round in 0..10 {
        let name = format!("Wes{round}");
        app.patch(
            &format!("/api/users/{user_id}"),
            Some(&admin),
            json!({"last_name": name}),
        )
        .await;
        let shown: Value = app
            .get(&format!("/api/users/{user_id}"), Some(&admin))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(shown["last_name"], name.as_str());
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_cart_and_a_wishlist_show_the_change_just_answered() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let book = app.add_book(&admin, "Emma", 50).await;
    let id = book["id"].as_str().expect("id").to_string();
    let (_, token) = app.customer("xia").await;
    for quantity in 1..=10 {
        let set = app
            .request(Method::PUT, &format!("/api/cart/items/{id}"), Some(&token))
            .json(&json!({"quantity": quantity}))
            .send()
            .await
            .expect("sent");
        assert_eq!(set.status(), 200);
        let cart: Value = app
            .get("/api/cart", Some(&token))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(cart["items"][0]["quantity"], quantity);
    }
    let added = app
        .request(
            Method::PUT,
            &format!("/api/wishlist/items/{id}"),
            Some(&token),
        )
        .send()
        .await
        .expect("sent");
    assert!(added.status().is_success());
    let wishlist: Value = app
        .get("/api/wishlist", Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(wishlist["items"], json!([id]));
    app.shutdown().await;
}

#[tokio::test]
async fn an_order_and_its_payment_read_as_answered() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let book = app.add_book(&admin, "Ulysses", 50).await;
    let (_, token) = app.customer("yan").await;
    for _ in 0..5 {
        let placed = app
            .request(Method::POST, "/api/orders", Some(&token))
            .header("Prefer", "wait=5")
            .json(
                &json!({"lines": [{"product_id": book["id"], "quantity": 1}],
                          "payment": {"method": "card", "card": "4242 4242 4242 4242"}}),
            )
            .send()
            .await
            .expect("sent");
        assert_eq!(placed.status(), 201);
        let placed: Value = placed.json().await.expect("json");
        assert_eq!(placed["status"], "confirmed");
        let id = placed["id"].as_str().expect("id");
        let order: Value = app
            .get(&format!("/api/orders/{id}"), Some(&token))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(order["status"], "confirmed", "{order}");
        assert_eq!(order["version"], placed["version"]);
        let payment_id = placed["payment"]["id"].as_str().expect("payment id");
        let payment: Value = app
            .get(&format!("/api/payments/{payment_id}"), Some(&token))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(payment["status"], "captured", "{payment}");
    }
    app.shutdown().await;
}
