//! Read your own writes without `min_version`: once a command is answered, the caller's own
//! account, cart and wishlist, orders and payments, and for admins the products and users they
//! changed, reflect it, in single reads and in lists.

use std::collections::HashMap;

use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::proxy::FlakyProxy;

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

/// A list's items by id.
async fn listed(app: &TestApp, path: &str, token: &str) -> HashMap<String, Value> {
    let response = app.get(path, Some(token)).await;
    assert_eq!(response.status(), 200, "{path}");
    let page: Value = response.json().await.expect("json");
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| (item["id"].as_str().expect("id").to_string(), item.clone()))
        .collect()
}

/// Places `count` orders of one `book` at once, paid by card; `wait` as `Prefer: wait=N`
/// (0: answered 202 at once, the order goes on in the background).
async fn place_orders_at_once(
    app: &TestApp,
    token: &str,
    book: &Value,
    count: usize,
    wait: u64,
) -> Vec<Value> {
    let placing = (0..count).map(|_| async {
        let placed = app
            .request(Method::POST, "/api/orders", Some(token))
            .header("Prefer", format!("wait={wait}"))
            .json(
                &json!({"lines": [{"product_id": book["id"], "quantity": 1}],
                          "payment": {"method": "card", "card": "4242 4242 4242 4242"}}),
            )
            .send()
            .await
            .expect("sent");
        let status = placed.status();
        let placed: Value = placed.json().await.expect("json");
        assert_eq!(status, if wait == 0 { 202 } else { 201 }, "{placed}");
        placed
    });
    join_all(placing).await
}

#[tokio::test]
async fn orders_placed_at_once_are_all_listed_as_answered_in_the_next_read() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let book = app.add_book(&admin, "Ulysses", 1000).await;
    let (_, token) = app.customer("zoe").await;
    for round in 0..3 {
        let placed = place_orders_at_once(&app, &token, &book, 20, 5).await;
        let orders = listed(&app, "/api/orders?limit=100", &token).await;
        let payments = listed(&app, "/api/payments?limit=100", &token).await;
        for order in &placed {
            let id = order["id"].as_str().expect("id");
            let shown = orders
                .get(id)
                .unwrap_or_else(|| panic!("round {round}: order {id} is not listed"));
            assert_eq!(shown["status"], order["status"], "round {round}: {shown}");
            assert_eq!(shown["version"], order["version"], "round {round}: {shown}");
            let payment_id = order["payment"]["id"].as_str().expect("payment id");
            let payment = payments
                .get(payment_id)
                .unwrap_or_else(|| panic!("round {round}: payment {payment_id} is not listed"));
            assert_eq!(payment["status"], "captured", "round {round}: {payment}");
        }
    }
    // Answered before they finished: listed at once all the same (as placed, or further on).
    let placed = place_orders_at_once(&app, &token, &book, 20, 0).await;
    let orders = listed(&app, "/api/orders?limit=100", &token).await;
    for order in &placed {
        let id = order["order_id"].as_str().expect("order id");
        assert!(
            orders.contains_key(id),
            "order {id} answered 202 is not listed"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn wallet_purchases_at_once_are_all_listed_with_their_payments_in_the_next_read() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let book = app.add_book(&admin, "Walden", 1000).await;
    let (_, token) = app.customer("abe").await;
    let deposited = app
        .post(
            "/api/users/me/deposits",
            Some(&token),
            json!({"amount_cents": 1_000_000}),
        )
        .await;
    assert_eq!(deposited.status(), 200);
    let mut bought = 0;
    for round in 0..3 {
        let buying = (0..20).map(|_| {
            app.post(
                "/api/purchases",
                Some(&token),
                json!({"product_id": book["id"], "quantity": 1, "payment_method": "balance"}),
            )
        });
        let mut purchases = Vec::new();
        for answer in join_all(buying).await {
            assert_eq!(answer.status(), 201);
            purchases.push(answer.json::<Value>().await.expect("json"));
        }
        bought += purchases.len();
        let orders = listed(&app, "/api/orders?limit=100", &token).await;
        for purchase in &purchases {
            let id = purchase["order_id"].as_str().expect("order id");
            let shown = orders
                .get(id)
                .unwrap_or_else(|| panic!("round {round}: order {id} is not listed"));
            assert_eq!(shown["status"], "confirmed", "round {round}: {shown}");
            assert_eq!(shown["version"], purchase["version"], "round {round}");
        }
        let payments = listed(&app, "/api/payments?limit=100", &token).await;
        assert_eq!(
            payments.len(),
            bought,
            "round {round}: one payment a purchase"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn an_admin_lists_the_users_they_just_created_and_changed() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for round in 0..3 {
        let creating = (0..20).map(|i| {
            app.post(
                "/api/users",
                Some(&admin),
                json!({"email": format!("made{round}x{i}@example.com"),
                       "username": format!("made{round}x{i}")}),
            )
        });
        let mut ids = Vec::new();
        for answer in join_all(creating).await {
            assert_eq!(answer.status(), 201);
            let user: Value = answer.json().await.expect("json");
            ids.push(user["id"].as_str().expect("id").to_string());
        }
        let users = listed(&app, "/api/users?limit=200", &admin).await;
        for id in &ids {
            assert!(
                users.contains_key(id),
                "round {round}: user {id} is not listed"
            );
        }
        let renaming = ids.iter().map(|id| {
            let path = format!("/api/users/{id}");
            let admin = &admin;
            let app = &app;
            async move {
                app.patch(
                    &path,
                    Some(admin),
                    json!({"last_name": format!("Renamed{round}")}),
                )
                .await
            }
        });
        for answer in join_all(renaming).await {
            assert_eq!(answer.status(), 200);
        }
        let users = listed(&app, "/api/users?limit=200", &admin).await;
        for id in &ids {
            assert_eq!(
                users[id]["last_name"],
                format!("Renamed{round}"),
                "round {round}"
            );
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn an_admin_lists_the_products_they_just_added_and_restocked_though_the_page_was_cached() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for round in 0..3 {
        let author = format!("Author Number{round}");
        let page = format!(
            "/api/products?author={}&limit=100",
            author.replace(' ', "%20")
        );
        // Cached (empty) by an anonymous read before the admin writes.
        assert_eq!(app.get(&page, None).await.status(), 200);
        let adding = (0..20).map(|i| {
            app.post(
                "/api/products",
                Some(&admin),
                json!({"title": format!("Book {round}-{i}"), "author": author,
                       "published_date": "1965-08-01", "description": "A book.",
                       "price_cents": 999, "stock": 0, "category": "science-fiction"}),
            )
        });
        let mut ids = Vec::new();
        for answer in join_all(adding).await {
            assert_eq!(answer.status(), 201);
            let product: Value = answer.json().await.expect("json");
            ids.push(product["id"].as_str().expect("id").to_string());
        }
        let products = listed(&app, &page, &admin).await;
        for id in &ids {
            assert!(
                products.contains_key(id),
                "round {round}: product {id} is not listed"
            );
        }
        let restocking = ids.iter().map(|id| {
            let path = format!("/api/products/{id}/restock");
            let admin = &admin;
            let app = &app;
            async move { app.post(&path, Some(admin), json!({"quantity": 7})).await }
        });
        for answer in join_all(restocking).await {
            assert_eq!(answer.status(), 200);
        }
        let products = listed(&app, &page, &admin).await;
        for id in &ids {
            assert_eq!(products[id]["stock"], 7, "round {round}");
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn tasks_are_listed_at_once_and_what_they_did_once_they_are_done() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let book = app.add_book(&admin, "Emma", 100).await;
    let (_, token) = app.customer("cyd").await;
    let queueing = (0..10).map(|_| {
        app.request(Method::POST, "/api/orders", Some(&token))
            .header("Prefer", "respond-async")
            .json(
                &json!({"lines": [{"product_id": book["id"], "quantity": 1}],
                          "payment": {"method": "card", "card": "4242 4242 4242 4242"}}),
            )
            .send()
    });
    let mut task_ids = Vec::new();
    for answer in join_all(queueing).await {
        let answer = answer.expect("sent");
        assert_eq!(answer.status(), 202);
        let accepted: Value = answer.json().await.expect("json");
        task_ids.push(accepted["task_id"].as_str().expect("task id").to_string());
    }
    let tasks = listed(&app, "/api/tasks?limit=100", &token).await;
    for id in &task_ids {
        assert!(tasks.contains_key(id), "task {id} is not listed");
    }
    // Each task ran the order's request as the customer: once it is done, the order it
    // placed is listed without asking for a version.
    for id in &task_ids {
        let task = eventually(
            std::time::Duration::from_secs(30),
            "the task to finish",
            || async {
                let task: Value = app
                    .get(&format!("/api/tasks/{id}"), Some(&token))
                    .await
                    .json()
                    .await
                    .ok()?;
                (task["status"] == "DONE").then_some(task)
            },
        )
        .await;
        let order_id = task["result"]["body"]["order_id"]
            .as_str()
            .expect("the order placed")
            .to_string();
        let orders = listed(&app, "/api/orders?limit=100", &token).await;
        assert!(
            orders.contains_key(&order_id),
            "order {order_id} is not listed"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn with_redis_down_lists_still_answer() {
    let proxy = FlakyProxy::to_redis().await;
    let url = proxy.url.clone();
    let app = spawn_app_with(|config| config.redis_url = url).await;
    let admin = app.admin_token().await;
    let book = app.add_book(&admin, "Persuasion", 100).await;
    let (_, token) = app.customer("dee").await;
    proxy.cut();
    let placed = place_orders_at_once(&app, &token, &book, 3, 5).await;
    for path in ["/api/orders", "/api/payments", "/api/tasks"] {
        assert_eq!(app.get(path, Some(&token)).await.status(), 200, "{path}");
    }
    for path in ["/api/users", "/api/products"] {
        assert_eq!(app.get(path, Some(&admin)).await.status(), 200, "{path}");
    }
    // Eventually consistent, as lists were before.
    let id = placed[0]["id"].as_str().expect("id").to_string();
    eventually(
        std::time::Duration::from_secs(10),
        "the order to be listed",
        || async {
            let orders = listed(&app, "/api/orders", &token).await;
            orders.contains_key(&id).then_some(())
        },
    )
    .await;
    app.shutdown().await;
}
