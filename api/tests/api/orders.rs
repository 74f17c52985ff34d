//! Purchases and orders over HTTP, through the order process manager.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

async fn shop(app: &TestApp, stock: i64, price_cents: i64) -> String {
    let admin = app.admin_token().await;
    let response = app
        .post(
            "/api/products",
            Some(&admin),
            json!({"title": "Dune", "author": "Frank Herbert", "published_date": "1965-08-01",
                   "price_cents": price_cents, "stock": stock, "category": "science-fiction"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string()
}

async fn customer_with(app: &TestApp, name: &str, balance_cents: i64) -> String {
    let (_, token) = app.customer(name).await;
    if balance_cents > 0 {
        let deposit = app
            .post(
                "/api/users/me/deposits",
                Some(&token),
                json!({"amount_cents": balance_cents}),
            )
            .await;
        assert_eq!(deposit.status(), 200);
    }
    token
}

/// The order as the read model shows it once it reached `status`.
async fn order_when(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
    for _ in 0..100 {
        let response = app.get(&format!("/api/orders/{id}"), Some(token)).await;
        if response.status() == 200 {
            let order: Value = response.json().await.expect("json");
            if order["status"] == status {
                return order;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("order {id} never reached {status}");
}

#[tokio::test]
async fn a_purchase_from_the_wallet_confirms_in_one_call() {
    let app = spawn_app().await;
    let book = shop(&app, 10, 1999).await;
    let token = customer_with(&app, "ivy", 5000).await;
    let response = app
        .post(
            "/api/purchases",
            Some(&token),
            json!({"product_id": book, "quantity": 2, "payment_method": "balance"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "confirmed");
    assert_eq!(
        (body["total_cents"].as_i64(), body["balance_cents"].as_i64()),
        (Some(3998), Some(1002))
    );

    let order = order_when(
        &app,
        &token,
        body["order_id"].as_str().expect("id"),
        "confirmed",
    )
    .await;
    let timeline: Vec<&str> = order["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|entry| entry["status"].as_str().expect("status"))
        .collect();
    assert_eq!(timeline, ["placed", "stock_reserved", "paid", "confirmed"]);
    assert_eq!(order["payment"]["method"], "balance");
    let product: Value = app
        .get(&format!("/api/products/{book}?min_version=3"), None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(product["stock"], 8);
    let orders: Value = app
        .get("/api/orders", Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(orders["items"].as_array().expect("items").len(), 1);
}

#[tokio::test]
async fn a_purchase_fails_cleanly_without_stock_or_money() {
    let app = spawn_app().await;
    let book = shop(&app, 1, 1000).await;
    let rich = customer_with(&app, "jon", 10_000).await;
    let poor = customer_with(&app, "kim", 500).await;
    let too_many = app
        .post(
            "/api/purchases",
            Some(&rich),
            json!({"product_id": book, "quantity": 2, "payment_method": "balance"}),
        )
        .await;
    assert_problem(too_many, 409, "out_of_stock").await;
    let too_poor = app
        .post(
            "/api/purchases",
            Some(&poor),
            json!({"product_id": book, "quantity": 1, "payment_method": "balance"}),
        )
        .await;
    assert_problem(too_poor, 409, "insufficient_balance").await;
    // Nothing was taken (version 2: registered, deposited).
    let me: Value = app
        .get("/api/users/me?min_version=2", Some(&poor))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["balance_cents"], 500);
    let stock = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM events WHERE event_type = 'StockReleased'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("counts");
    assert_eq!(stock, 1, "the reservation of the poor buyer was released");
}

#[tokio::test]
async fn a_repeated_purchase_with_one_key_buys_once() {
    let app = spawn_app().await;
    let book = shop(&app, 5, 1000).await;
    let token = customer_with(&app, "lea", 5000).await;
    let buy = || {
        app.request(Method::POST, "/api/purchases", Some(&token))
            .header("Idempotency-Key", "buy-once")
            .json(&json!({"product_id": book, "quantity": 1, "payment_method": "balance"}))
            .send()
    };
    let first: Value = buy().await.expect("sent").json().await.expect("json");
    let again: Value = buy().await.expect("sent").json().await.expect("json");
    assert_eq!(first, again);
    assert_eq!(first["balance_cents"], 4000);
    let orders = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("counts");
    assert_eq!(orders, 1);
}

#[tokio::test]
async fn an_order_paid_by_a_declined_card_fails_and_keeps_no_card_number() {
    let app = spawn_app().await;
    let book = shop(&app, 3, 1500).await;
    let token = customer_with(&app, "max", 0).await;
    let response = app
        .request(Method::POST, "/api/orders", Some(&token))
        .header("Prefer", "wait=5")
        .json(&json!({"lines": [{"product_id": book, "quantity": 1}],
                      "payment": {"method": "card", "card": "4000 0000 0000 0002"}}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    let order: Value = response.json().await.expect("json");
    assert_eq!(
        (order["status"].as_str(), order["reason"].as_str()),
        (Some("failed"), Some("payment_declined"))
    );
    assert_eq!(order["payment"]["card_last4"], "0002");

    let approved = app
        .request(Method::POST, "/api/orders", Some(&token))
        .header("Prefer", "wait=5")
        .json(&json!({"lines": [{"product_id": book, "quantity": 1}],
                      "payment": {"method": "card", "card": "4242 4242 4242 4242"}}))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        approved.json::<Value>().await.expect("json")["status"],
        "confirmed"
    );

    let leaked: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE payload::text LIKE '%4000000000000002%' OR payload::text LIKE '%4242424242424242%'")
        .fetch_one(&app.pool)
        .await
        .expect("counts");
    assert_eq!(leaked, 0, "no full card number in any event");
}

#[tokio::test]
async fn orders_of_others_do_not_exist_for_you() {
    let app = spawn_app().await;
    let book = shop(&app, 3, 100).await;
    let owner = customer_with(&app, "ned", 1000).await;
    let other = customer_with(&app, "ola", 1000).await;
    let body: Value = app
        .post(
            "/api/purchases",
            Some(&owner),
            json!({"product_id": book, "quantity": 1, "payment_method": "balance"}),
        )
        .await
        .json()
        .await
        .expect("json");
    let id = body["order_id"].as_str().expect("id").to_string();
    order_when(&app, &owner, &id, "confirmed").await;
    assert_problem(
        app.get(&format!("/api/orders/{id}"), Some(&other)).await,
        404,
        "not_found",
    )
    .await;
    let cancel = app
        .post(&format!("/api/orders/{id}/cancel"), Some(&other), json!({}))
        .await;
    assert_problem(cancel, 404, "not_found").await;
    let admin = app.admin_token().await;
    assert_eq!(
        app.get(&format!("/api/orders/{id}"), Some(&admin))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_cancelled_order_gives_its_stock_back() {
    // A slow gateway leaves time to cancel while the card is being charged.
    let app = spawn_app_with(|config| config.gateway_latency_ms = 1500).await;
    let book = shop(&app, 2, 900).await;
    let token = customer_with(&app, "pia", 0).await;
    let response = app
        .post(
            "/api/orders",
            Some(&token),
            json!({"lines": [{"product_id": book, "quantity": 2}],
              "payment": {"method": "card", "card": "4242 4242 4242 4242"}}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.expect("json")["order_id"]
        .as_str()
        .expect("id")
        .to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancelled = app
        .post(&format!("/api/orders/{id}/cancel"), Some(&token), json!({}))
        .await;
    assert_eq!(cancelled.status(), 200);
    let order = order_when(&app, &token, &id, "cancelled").await;
    assert_eq!(order["reason"], "cancelled by the customer");
    // The stock comes back once the process has undone the reservation.
    for _ in 0..100 {
        let released: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'StockReleased'")
                .fetch_one(&app.pool)
                .await
                .expect("counts");
        if released == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the reservation was never released");
}

#[tokio::test]
async fn payments_are_listed_for_their_owner_with_the_last_four_digits_only() {
    let app = spawn_app().await;
    let book = shop(&app, 3, 1200).await;
    let owner = customer_with(&app, "quin", 0).await;
    let other = customer_with(&app, "rae", 0).await;
    let placed = app
        .request(Method::POST, "/api/orders", Some(&owner))
        .header("Prefer", "wait=5")
        .json(&json!({"lines": [{"product_id": book, "quantity": 1}],
                      "payment": {"method": "card", "card": "4242 4242 4242 4242"}}))
        .send()
        .await
        .expect("sent");
    let order: Value = placed.json().await.expect("json");
    let payment_id = order["payment"]["id"]
        .as_str()
        .expect("payment id")
        .to_string();

    let mut payment = Value::Null;
    for _ in 0..100 {
        let response = app
            .get(&format!("/api/payments/{payment_id}"), Some(&owner))
            .await;
        if response.status() == 200 {
            payment = response.json().await.expect("json");
            if payment["status"] == "captured" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(payment["status"], "captured");
    assert_eq!(
        (
            payment["amount_cents"].as_i64(),
            payment["card_last4"].as_str()
        ),
        (Some(1200), Some("4242"))
    );
    assert!(!payment.to_string().contains("4242424242424242"));
    let mine: Value = app
        .get("/api/payments", Some(&owner))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(mine["items"].as_array().expect("items").len(), 1);
    let theirs: Value = app
        .get("/api/payments", Some(&other))
        .await
        .json()
        .await
        .expect("json");
    assert!(theirs["items"].as_array().expect("items").is_empty());
    assert_problem(
        app.get(&format!("/api/payments/{payment_id}"), Some(&other))
            .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_cart_is_filled_checked_out_and_emptied() {
    let app = spawn_app().await;
    let first = shop(&app, 5, 1000).await;
    let second = shop(&app, 5, 250).await;
    let token = customer_with(&app, "sam", 5000).await;
    let empty: Value = app
        .get("/api/cart", Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(empty["items"], json!([]));
    let put = |product: &str, quantity: i64| {
        app.request(
            Method::PUT,
            &format!("/api/cart/items/{product}"),
            Some(&token),
        )
        .json(&json!({"quantity": quantity}))
        .send()
    };
    assert_eq!(put(&first, 2).await.expect("sent").status(), 200);
    let cart: Value = put(&second, 4)
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(cart["items"].as_array().expect("items").len(), 2);
    let read: Value = app
        .get(
            &format!("/api/cart?min_version={}", cart["version"]),
            Some(&token),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(read["items"].as_array().expect("items").len(), 2);
    assert_problem(
        put(&first, -1).await.expect("sent"),
        422,
        "validation_failed",
    )
    .await;

    let checkout = app
        .request(Method::POST, "/api/cart/checkout", Some(&token))
        .header("Prefer", "wait=5")
        .json(&json!({"payment": {"method": "balance"}}))
        .send()
        .await
        .expect("sent");
    assert_eq!(checkout.status(), 201);
    let order: Value = checkout.json().await.expect("json");
    assert_eq!(
        (order["status"].as_str(), order["total_cents"].as_i64()),
        (Some("confirmed"), Some(3000))
    );
    let cart_after = app.get("/api/cart?min_version=3", Some(&token)).await;
    let cart_after: Value = cart_after.json().await.expect("json");
    assert_eq!(cart_after["items"], json!([]));
    let again = app
        .post(
            "/api/cart/checkout",
            Some(&token),
            json!({"payment": {"method": "balance"}}),
        )
        .await;
    assert_problem(again, 422, "cart_empty").await;
}

#[tokio::test]
async fn a_wishlist_keeps_products_once() {
    let app = spawn_app().await;
    let book = shop(&app, 1, 100).await;
    let token = customer_with(&app, "tia", 0).await;
    for _ in 0..2 {
        let added = app
            .request(
                Method::PUT,
                &format!("/api/wishlist/items/{book}"),
                Some(&token),
            )
            .send()
            .await
            .expect("sent");
        assert_eq!(added.status(), 200);
    }
    let wishlist: Value = app
        .get("/api/wishlist?min_version=1", Some(&token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(wishlist["items"], json!([book]));
    let removed = app
        .request(
            Method::DELETE,
            &format!("/api/wishlist/items/{book}"),
            Some(&token),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(
        removed.json::<Value>().await.expect("json")["items"],
        json!([])
    );
    let missing = app
        .request(
            Method::PUT,
            &format!("/api/wishlist/items/{}", uuid::Uuid::now_v7()),
            Some(&token),
        )
        .send()
        .await
        .expect("sent");
    assert_problem(missing, 404, "not_found").await;
}

#[tokio::test]
async fn one_review_per_user_and_product_and_products_show_their_rating() {
    let app = spawn_app().await;
    let book = shop(&app, 1, 100).await;
    let uma = customer_with(&app, "uma", 0).await;
    let vic = customer_with(&app, "vic", 0).await;
    let path = format!("/api/products/{book}/reviews");
    let review = |token: String, rating: u8| {
        let path = path.clone();
        let app = &app;
        async move {
            app.post(
                &path,
                Some(&token),
                json!({"rating": rating, "comment": "read it"}),
            )
            .await
        }
    };
    assert_eq!(review(uma.clone(), 5).await.status(), 201);
    assert_eq!(
        review(uma.clone(), 3).await.status(),
        201,
        "a second review replaces the first"
    );
    assert_eq!(review(vic.clone(), 4).await.status(), 201);
    assert_problem(review(vic.clone(), 6).await, 422, "validation_failed").await;

    let mut product = Value::Null;
    for _ in 0..100 {
        product = app
            .get(&format!("/api/products/{book}"), None)
            .await
            .json()
            .await
            .expect("json");
        if product["rating_count"] == 2 && product["rating_average"] == 3.5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        (
            product["rating_count"].as_i64(),
            product["rating_average"].as_f64()
        ),
        (Some(2), Some(3.5))
    );
    let reviews: Value = app
        .get(&format!("/api/products/{book}/reviews"), None)
        .await
        .json()
        .await
        .expect("json");
    let mut ratings: Vec<i64> = reviews["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|review| review["rating"].as_i64().expect("rating"))
        .collect();
    ratings.sort_unstable();
    assert_eq!(ratings, [3, 4]);
}

fn card(number: &str, cvc: &str) -> Value {
    json!({"number": number, "exp_month": 12, "exp_year": 2031, "cvc": cvc, "holder": "Max Power"})
}

#[tokio::test]
async fn a_whole_card_is_checked_and_only_its_last_four_digits_and_brand_are_kept() {
    let app = spawn_app().await;
    let book = shop(&app, 5, 1500).await;
    let token = customer_with(&app, "mia", 0).await;
    let order = |payment: Value| {
        app.request(Method::POST, "/api/orders", Some(&token))
            .header("Prefer", "wait=5")
            .json(&json!({"lines": [{"product_id": book, "quantity": 1}], "payment": payment}))
            .send()
    };
    for (card, field) in [
        (card("4242 4242 4242 4241", "123"), "payment.card.number"),
        (
            json!({"number": "4242424242424242", "exp_month": 1, "exp_year": 2020, "cvc": "123"}),
            "payment.card.exp_year",
        ),
        (
            json!({"number": "4242424242424242", "exp_month": 0, "exp_year": 2031, "cvc": "123"}),
            "payment.card.exp_month",
        ),
        (card("4242424242424242", "12"), "payment.card.cvc"),
        (card("4242424242424242", "12345"), "payment.card.cvc"),
    ] {
        let refused = order(json!({"method": "card", "card": card}))
            .await
            .expect("sent");
        let problem = assert_problem(refused, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let events = app.event_count().await;

    let paid = order(json!({"method": "card", "card": card("5555 5555 5555 4444", "987")}))
        .await
        .expect("sent");
    assert_eq!(paid.status(), 201);
    let paid: Value = paid.json().await.expect("json");
    assert_eq!(paid["status"], "confirmed");
    assert_eq!(paid["payment"]["card_last4"], "4444");
    assert_eq!(paid["payment"]["card_brand"], "mastercard");
    assert!(app.event_count().await > events);
    // The string form still works.
    let legacy = order(json!({"method": "card", "card": "4242 4242 4242 4242"}))
        .await
        .expect("sent");
    assert_eq!(
        legacy.json::<Value>().await.expect("json")["status"],
        "confirmed"
    );
    let shown = order_when(&app, &token, paid["id"].as_str().expect("id"), "confirmed").await;
    assert_eq!(shown["payment"]["card_brand"], "mastercard");
    assert!(shown["created_at"].is_string() && shown["updated_at"].is_string());

    // The CVC's digits may appear by chance in any id: its field name must not.
    for secret in [
        "5555555555554444",
        "5555 5555 5555 4444",
        "\"cvc\"",
        "Max Power",
    ] {
        assert_eq!(
            crate::erasure::columns_holding(&app.pool, secret)
                .await
                .into_iter()
                .filter(|place| !place.starts_with("idempotency_records"))
                .collect::<Vec<_>>(),
            Vec::<String>::new(),
            "{secret} is stored"
        );
    }
}

#[tokio::test]
async fn a_declined_order_is_paid_again_with_another_card() {
    let app = spawn_app().await;
    let book = shop(&app, 1, 1500).await;
    let token = customer_with(&app, "noa", 0).await;
    let (_, other) = app.customer("olaf").await;
    let declined = app
        .request(Method::POST, "/api/orders", Some(&token))
        .header("Prefer", "wait=5")
        .json(&json!({"lines": [{"product_id": book, "quantity": 1}],
                      "payment": {"method": "card", "card": card("4000 0000 0000 0002", "123")}}))
        .send()
        .await
        .expect("sent");
    let declined: Value = declined.json().await.expect("json");
    assert_eq!(declined["reason"], "payment_declined");
    let id = declined["id"].as_str().expect("id").to_string();
    let path = format!("/api/orders/{id}/payments");

    // Someone else's order does not exist for them.
    assert_problem(
        app.post(
            &path,
            Some(&other),
            json!({"method": "card", "card": card("4242424242424242", "123")}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    // Declined again: still failed, and the stock came back each time.
    let again = app
        .request(Method::POST, &path, Some(&token))
        .header("Prefer", "wait=5")
        .json(&json!({"method": "card", "card": "4000 0000 0000 0002"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(again.status(), 201);
    assert_eq!(
        again.json::<Value>().await.expect("json")["reason"],
        "payment_declined"
    );
    let repaid = app
        .request(Method::POST, &path, Some(&token))
        .header("Prefer", "wait=5")
        .json(&json!({"method": "card", "card": card("4242 4242 4242 4242", "123")}))
        .send()
        .await
        .expect("sent");
    assert_eq!(repaid.status(), 201);
    let repaid: Value = repaid.json().await.expect("json");
    assert_eq!(repaid["status"], "confirmed", "{repaid}");
    assert_eq!(repaid["payment"]["card_last4"], "4242");
    let shown = order_when(&app, &token, &id, "confirmed").await;
    assert_eq!(shown["reason"], Value::Null);
    assert_eq!(shown["payment"]["card_brand"], "visa");
    // Each attempt reserved the one book and the declined ones gave it back; two payments
    // declined and one captured, all in the order's story.
    let story: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE metadata->>'correlation_id' = $1
            AND event_type IN ('StockReserved', 'StockReleased', 'ReservationCommitted',
                               'PaymentDeclined', 'PaymentCaptured')
          ORDER BY position",
    )
    .bind(&id)
    .fetch_all(&app.pool)
    .await
    .expect("story");
    let count = |kind: &str| story.iter().filter(|event| *event == kind).count();
    assert_eq!(
        (
            count("StockReserved"),
            count("StockReleased"),
            count("ReservationCommitted"),
            count("PaymentDeclined"),
            count("PaymentCaptured"),
        ),
        (3, 2, 1, 2, 1),
        "{story:?}"
    );
    let retries: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'OrderPaymentRetried'",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .expect("retries");
    assert_eq!(retries, 2);
    eventually(Duration::from_secs(10), "the stock at 0", || async {
        let product: Value = app
            .get(&format!("/api/products/{book}"), None)
            .await
            .json()
            .await
            .expect("json");
        (product["stock"] == 0).then_some(())
    })
    .await;
    // A confirmed order is not paid again.
    assert_problem(
        app.post(
            &path,
            Some(&token),
            json!({"method": "card", "card": card("4242424242424242", "123")}),
        )
        .await,
        409,
        "invalid_transition",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn admins_list_everyones_orders_by_status_user_and_time_customers_their_own() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let book = shop(&app, 10, 100).await;
    let (ann_id, ann) = app.customer("ann").await;
    let (bob_id, bob) = app.customer("bob").await;
    let before = chrono::Utc::now();
    for (token, card_number) in [
        (&ann, "4242424242424242"),
        (&ann, "4000000000000002"),
        (&bob, "4242424242424242"),
    ] {
        let placed = app
            .request(Method::POST, "/api/orders", Some(token))
            .header("Prefer", "wait=5")
            .json(&json!({"lines": [{"product_id": book, "quantity": 1}],
                          "payment": {"method": "card", "card": card_number}}))
            .send()
            .await
            .expect("sent");
        assert_eq!(placed.status(), 201);
    }
    let ids = |page: Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|order| order["customer_id"].as_str().expect("customer").to_string())
            .collect()
    };
    let list = |token: String, query: String| {
        let app = &app;
        async move {
            eventually(Duration::from_secs(10), "the orders", || {
                let token = token.clone();
                let query = query.clone();
                async move {
                    let response = app.get(&format!("/api/orders{query}"), Some(&token)).await;
                    assert_eq!(response.status(), 200, "{query}");
                    let page: Value = response.json().await.expect("json");
                    (page["items"].as_array().map_or(0, Vec::len) > 0).then_some(page)
                }
            })
            .await
        }
    };
    // Wait for all three in the read model.
    eventually(Duration::from_secs(10), "three orders", || async {
        let page: Value = app
            .get("/api/orders", Some(&admin))
            .await
            .json()
            .await
            .expect("json");
        (page["items"].as_array().map_or(0, Vec::len) == 3).then_some(())
    })
    .await;
    let everyone = ids(list(admin.clone(), String::new()).await);
    assert_eq!(
        everyone,
        vec![bob_id.clone(), ann_id.clone(), ann_id.clone()]
    );
    assert_eq!(
        ids(list(admin.clone(), format!("?user_id={ann_id}")).await),
        vec![ann_id.clone(), ann_id.clone()]
    );
    assert_eq!(
        ids(list(admin.clone(), "?status=failed".into()).await),
        vec![ann_id.clone()]
    );
    assert_eq!(
        ids(list(admin.clone(), format!("?status=confirmed&user_id={bob_id}")).await),
        vec![bob_id.clone()]
    );
    let from = before.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    assert_eq!(
        ids(list(
            admin.clone(),
            format!("?from={}&limit=2", from.replace('+', "%2B"))
        )
        .await)
        .len(),
        2
    );
    let future = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let later: Value = app
        .get(&format!("/api/orders?from={future}"), Some(&admin))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(later["items"], json!([]));
    // A customer sees their own, and cannot ask for someone else's.
    assert_eq!(
        ids(list(bob.clone(), String::new()).await),
        vec![bob_id.clone()]
    );
    assert_problem(
        app.get(&format!("/api/orders?user_id={ann_id}"), Some(&bob))
            .await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.get("/api/orders?status=lost", Some(&bob)).await,
        422,
        "validation_failed",
    )
    .await;
    app.shutdown().await;
}
