//! `eshop serve --role api` and `eshop serve --role workers` as two real processes (the built
//! binary) over one database and one stream: the API takes the purchase, the workers relay it
//! and build the read models the API reads.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};

use crate::helpers::{eventually, ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD};

/// A child process killed when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

fn serve(role: &str, port: u16, database_url: &str, namespace: &str) -> Process {
    let child = Command::new(env!("CARGO_BIN_EXE_eshop"))
        .args(["serve", "--role", role])
        .env("DATABASE_URL", database_url)
        .env("NATS_URL", eshop_infra::testing::nats_url())
        .env("ESHOP_NATS_PREFIX", namespace)
        .env(
            "REDIS_URL",
            std::env::var("ESHOP_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        )
        .env("ESHOP_REDIS_PREFIX", format!("{namespace}:"))
        .env("ESHOP_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("ESHOP_ENV", "test")
        .env("ESHOP_JWT_SECRET", "test-secret-not-the-default-0123456789")
        .env("ESHOP_THROTTLE", "false")
        .env("ESHOP_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("ESHOP_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env(
            "ESHOP_MAIL_DIR",
            std::env::temp_dir().join(format!("eshop-mail-{namespace}")),
        )
        .env("ESHOP_DB_POOL_SIZE", "8")
        .env(
            "ESHOP_SEARCH_DIR",
            std::env::temp_dir().join(format!("eshop-search-{namespace}-{role}")),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("eshop starts");
    Process(child)
}

async fn post(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let request = client.post(url).json(&body);
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.expect("sent")
}

async fn login(client: &reqwest::Client, api: &str, email: &str, password: &str) -> String {
    let response = post(
        client,
        format!("{api}/api/auth/login"),
        None,
        json!({"email": email, "password": password}),
    )
    .await;
    assert_eq!(response.status(), 200, "logging in {email}");
    let body: Value = response.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_string()
}

#[tokio::test]
async fn an_api_process_and_a_workers_process_run_apart_and_a_purchase_reaches_the_read_model() {
    let (database_url, _pool) = eshop_infra::testing::fresh_database().await;
    let namespace = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let (api_port, workers_port) = (free_port(), free_port());
    let _api = serve("api", api_port, &database_url, &namespace);
    let _workers = serve("workers", workers_port, &database_url, &namespace);
    let api = format!("http://127.0.0.1:{api_port}");
    let workers = format!("http://127.0.0.1:{workers_port}");
    let client = reqwest::Client::new();

    for base in [&api, &workers] {
        eventually(Duration::from_secs(60), "the process answers", || {
            let client = client.clone();
            let url = format!("{base}/health");
            async move {
                let response = client.get(url).send().await.ok()?;
                (response.status() == 200).then_some(())
            }
        })
        .await;
    }
    // The workers process serves no API.
    let not_here = client
        .get(format!("{workers}/api/products"))
        .send()
        .await
        .expect("sent");
    assert_eq!(not_here.status(), 404);

    let admin = login(&client, &api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let book: Value = post(
        &client,
        format!("{api}/api/products"),
        Some(&admin),
        json!({"title": "Dune", "author": "Frank Herbert", "published_date": "1965-08-01",
               "description": "A desert planet.", "price_cents": 1999, "stock": 5,
               "category": "science-fiction"}),
    )
    .await
    .json()
    .await
    .expect("json");
    let book = book["id"].as_str().expect("product id").to_string();
    let registered = post(
        &client,
        format!("{api}/api/auth/register"),
        None,
        json!({"email": "ann@example.com", "username": "ann", "password": PASSWORD}),
    )
    .await;
    assert_eq!(registered.status(), 201);
    let token = login(&client, &api, "ann@example.com", PASSWORD).await;
    let deposited = post(
        &client,
        format!("{api}/api/users/me/deposits"),
        Some(&token),
        json!({"amount_cents": 5000}),
    )
    .await;
    assert_eq!(deposited.status(), 200);

    let purchase = post(
        &client,
        format!("{api}/api/purchases"),
        Some(&token),
        json!({"product_id": book, "quantity": 1, "payment_method": "balance"}),
    )
    .await;
    assert_eq!(purchase.status(), 201);
    let purchase: Value = purchase.json().await.expect("json");
    assert_eq!(purchase["status"], "confirmed");
    let order_id = purchase["order_id"].as_str().expect("order id").to_string();

    // Relayed and projected by the workers process, read through the API process.
    let order: Value = eventually(Duration::from_secs(30), "the order read model", || {
        let client = client.clone();
        let url = format!("{api}/api/orders/{order_id}");
        let token = token.clone();
        async move {
            let response = client.get(url).bearer_auth(token).send().await.ok()?;
            let order: Value = response.json().await.ok()?;
            (order["status"] == "confirmed").then_some(order)
        }
    })
    .await;
    assert_eq!(order["total_cents"], 1999);
    let me: Value = client
        .get(format!("{api}/api/users/me?min_version=3"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(me["balance_cents"], 5000 - 1999);

    drop((_api, _workers));
    if let Ok(client) = async_nats::connect(eshop_infra::testing::nats_url()).await {
        let jetstream = async_nats::jetstream::new(client);
        let subjects = eshop_infra::nats::EventSubjects::new(&namespace);
        let _ = jetstream.delete_stream(subjects.stream_name()).await;
        let _ = jetstream.delete_stream(subjects.tasks_stream_name()).await;
    }
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("eshop-mail-{namespace}")));
}

/// Read-model rows (users, products, orders, payments) behind what the store holds.
async fn rows_behind(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT aggregate_type, aggregate_id, max(sequence) AS version
                                 FROM events GROUP BY aggregate_type, aggregate_id) AS store
          WHERE store.aggregate_type IN ('user', 'product', 'order', 'payment')
            AND NOT EXISTS (
                SELECT 1 FROM users WHERE store.aggregate_type = 'user' AND users.id::text = store.aggregate_id AND users.version = store.version
                UNION ALL SELECT 1 FROM products WHERE store.aggregate_type = 'product' AND products.id::text = store.aggregate_id AND products.version = store.version
                UNION ALL SELECT 1 FROM orders WHERE store.aggregate_type = 'order' AND orders.id::text = store.aggregate_id AND orders.version = store.version
                UNION ALL SELECT 1 FROM payments WHERE store.aggregate_type = 'payment' AND payments.id::text = store.aggregate_id AND payments.version = store.version)",
    )
    .fetch_one(pool)
    .await
    .expect("compares")
}

/// The probe's crash: `kill -9` of the process running the projections during 200 purchases,
/// then a restart. Every read model must be caught up within 5 s of it, not after the ack wait.
#[tokio::test]
async fn read_models_catch_up_within_5_s_of_a_restart_after_a_kill_during_purchases() {
    let (database_url, pool) = eshop_infra::testing::fresh_database().await;
    let namespace = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let (api_port, workers_port) = (free_port(), free_port());
    let _api = serve("api", api_port, &database_url, &namespace);
    let mut workers = serve("workers", workers_port, &database_url, &namespace);
    let api = format!("http://127.0.0.1:{api_port}");
    let client = reqwest::Client::new();
    let healthy = |base: String| {
        let client = client.clone();
        async move {
            eventually(Duration::from_secs(60), "the process answers", || {
                let client = client.clone();
                let url = format!("{base}/health");
                async move {
                    let response = client.get(url).send().await.ok()?;
                    (response.status() == 200).then_some(())
                }
            })
            .await
        }
    };
    healthy(api.clone()).await;
    healthy(format!("http://127.0.0.1:{workers_port}")).await;

    let admin = login(&client, &api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let book: Value = post(
        &client,
        format!("{api}/api/products"),
        Some(&admin),
        json!({"title": "Dune", "author": "Frank Herbert", "published_date": "1965-08-01",
               "description": "A desert planet.", "price_cents": 100, "stock": 1000,
               "category": "science-fiction"}),
    )
    .await
    .json()
    .await
    .expect("json");
    let book = book["id"].as_str().expect("product id").to_string();
    let mut buyers = Vec::new();
    for n in 0..4 {
        let email = format!("buyer{n}@example.com");
        let registered = post(
            &client,
            format!("{api}/api/auth/register"),
            None,
            json!({"email": email, "username": format!("buyer{n}"), "password": PASSWORD}),
        )
        .await;
        assert_eq!(registered.status(), 201);
        let token = login(&client, &api, &email, PASSWORD).await;
        let deposited = post(
            &client,
            format!("{api}/api/users/me/deposits"),
            Some(&token),
            json!({"amount_cents": 100_000}),
        )
        .await;
        assert_eq!(deposited.status(), 200);
        buyers.push(token);
    }

    let purchases = futures::stream::iter(0..200)
        .map(|n| {
            let client = client.clone();
            let url = format!("{api}/api/purchases");
            let token = buyers[n % buyers.len()].clone();
            let book = book.clone();
            async move {
                post(
                    &client,
                    url,
                    Some(&token),
                    json!({"product_id": book, "quantity": 1, "payment_method": "balance"}),
                )
                .await
                .status()
            }
        })
        .buffer_unordered(8);
    tokio::pin!(purchases);
    let mut answered = 0;
    while let Some(status) = purchases.next().await {
        assert_eq!(status, 201);
        answered += 1;
        if answered == 60 {
            // kill -9: nothing is acknowledged, no lock released but by Postgres.
            workers.0.kill().expect("killed");
            workers.0.wait().expect("reaped");
        }
    }
    let restarted_at = std::time::Instant::now();
    let _workers = serve("workers", workers_port, &database_url, &namespace);
    healthy(format!("http://127.0.0.1:{workers_port}")).await;
    let serving_after = restarted_at.elapsed();
    let caught_up = loop {
        let behind = rows_behind(&pool).await;
        if behind == 0 {
            break restarted_at.elapsed();
        }
        assert!(
            restarted_at.elapsed() < Duration::from_secs(60),
            "still {behind} rows behind"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("restarted: serving after {serving_after:?}, every read model caught up after {caught_up:?}");
    assert!(
        caught_up <= Duration::from_secs(5),
        "caught up only {caught_up:?} after the restart"
    );

    drop((_api, _workers, workers));
    if let Ok(client) = async_nats::connect(eshop_infra::testing::nats_url()).await {
        let jetstream = async_nats::jetstream::new(client);
        let subjects = eshop_infra::nats::EventSubjects::new(&namespace);
        let _ = jetstream.delete_stream(subjects.stream_name()).await;
        let _ = jetstream.delete_stream(subjects.tasks_stream_name()).await;
    }
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("eshop-mail-{namespace}")));
}
