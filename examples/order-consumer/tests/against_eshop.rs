//! The worked consumer against a running eshop (spawned in-process, as eshop's API tests do):
//! it builds its table of orders, resumes after a crash, and applies nothing twice when
//! everything is delivered again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::task::JoinHandle;

use eshop_api::config::Config;
use eshop_order_consumer::{migrate, run, Settings, Stats};

const ADMIN_EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "correct-horse-9";

#[derive(Parser)]
struct Eshop {
    #[command(flatten)]
    config: Config,
}

/// eshop on a fresh database, NATS prefix and Redis prefix of this test's own.
async fn spawn_eshop() -> (eshop_api::server::Running, String) {
    let (database_url, _) = eshop_infra::testing::fresh_database().await;
    let namespace = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mail_dir = std::env::temp_dir().join(format!("eshop-mail-{namespace}"));
    let redis_prefix = format!("{namespace}:");
    let nats_url = eshop_infra::testing::nats_url();
    let mail_dir = mail_dir.to_string_lossy().to_string();
    let eshop = Eshop::try_parse_from([
        "eshop",
        "--database-url",
        database_url.as_str(),
        "--nats-url",
        nats_url.as_str(),
        "--nats-prefix",
        namespace.as_str(),
        "--redis-prefix",
        redis_prefix.as_str(),
        "--http-addr",
        "127.0.0.1:0",
        "--environment",
        "test",
        "--jwt-secret",
        "test-secret-not-the-default-0123456789",
        "--throttle",
        "false",
        "--admin-email",
        ADMIN_EMAIL,
        "--admin-password",
        "admin-password-1",
        "--mail-dir",
        mail_dir.as_str(),
    ])
    .expect("a configuration");
    let running = eshop_api::server::start(&eshop.config)
        .await
        .expect("eshop starts");
    (running, namespace)
}

/// The consumer's own database (named like eshop's test databases, which scripts/test drops).
async fn consumer_database() -> PgPool {
    let server = eshop_infra::testing::server_url();
    let admin = PgPool::connect(&format!("{}/postgres", server.trim_end_matches('/')))
        .await
        .expect("postgres");
    let name = format!("eshop_test_consumer_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .expect("created");
    let pool = PgPool::connect(&format!("{}/{name}", server.trim_end_matches('/')))
        .await
        .expect("connects");
    migrate(&pool).await.expect("migrated");
    pool
}

struct Shop {
    client: reqwest::Client,
    base: String,
}

impl Shop {
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Value {
        let mut request = self.client.post(format!("{}{path}", self.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("eshop answers");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.expect("json")
    }

    async fn login(&self, email: &str, password: &str) -> String {
        let answer = self
            .post(
                "/api/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        answer["access_token"].as_str().expect("token").to_string()
    }

    /// A customer buys one copy of a new book; returns the order id.
    async fn purchase(&self, name: &str) -> String {
        let admin = self.login(ADMIN_EMAIL, "admin-password-1").await;
        let book = self
            .post(
                "/api/products",
                Some(&admin),
                json!({"title": format!("Dune for {name}"), "author": "Frank Herbert",
                       "published_date": "1965-08-01", "price_cents": 1999, "stock": 3,
                       "category": "science-fiction"}),
            )
            .await;
        let email = format!("{name}@example.com");
        self.post(
            "/api/auth/register",
            None,
            json!({"email": email, "username": name, "password": PASSWORD}),
        )
        .await;
        let token = self.login(&email, PASSWORD).await;
        self.post(
            "/api/users/me/deposits",
            Some(&token),
            json!({"amount_cents": 5000}),
        )
        .await;
        let order = self
            .post(
                "/api/purchases",
                Some(&token),
                json!({"product_id": book["id"], "quantity": 1, "payment_method": "balance"}),
            )
            .await;
        assert_eq!(order["status"], "confirmed");
        order["order_id"].as_str().expect("id").to_string()
    }
}

fn start_consumer(settings: &Settings, pool: &PgPool, stats: Arc<Stats>) -> JoinHandle<()> {
    let (settings, pool) = (settings.clone(), pool.clone());
    tokio::spawn(async move {
        run(&settings, &pool, stats, std::future::pending())
            .await
            .expect("the consumer runs");
    })
}

async fn orders(pool: &PgPool) -> Vec<(String, String, Option<i64>)> {
    sqlx::query_as("SELECT order_id::text, status, total_cents FROM consumer_orders ORDER BY 1")
        .fetch_all(pool)
        .await
        .expect("orders")
}

/// Polls until the consumer's table holds these orders, all confirmed.
async fn until_confirmed(
    pool: &PgPool,
    expected: &[&String],
) -> Vec<(String, String, Option<i64>)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let rows = orders(pool).await;
        let done = expected.iter().all(|id| {
            rows.iter()
                .any(|(order, status, _)| order == *id && status == "confirmed")
        });
        if done {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the consumer did not catch up: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_consumer_keeps_its_orders_across_restarts_and_applies_each_event_once() {
    let (eshop, namespace) = spawn_eshop().await;
    let shop = Shop {
        client: reqwest::Client::new(),
        base: format!("http://{}", eshop.addr),
    };
    let pool = consumer_database().await;
    let settings = Settings {
        nats_url: eshop_infra::testing::nats_url(),
        eshop_prefix: namespace.clone(),
        durable_name: "order-consumer".into(),
        // Messages handed to the run that crashed come again after this.
        ack_wait: Duration::from_secs(3),
    };

    let first = shop.purchase("ann").await;
    let stats = Arc::new(Stats::default());
    let consumer = start_consumer(&settings, &pool, stats.clone());
    let rows = until_confirmed(&pool, &[&first]).await;
    assert_eq!(rows, vec![(first.clone(), "confirmed".into(), Some(1999))]);

    // A crash: the task is cut wherever it is. Meanwhile the shop goes on.
    consumer.abort();
    let _ = consumer.await;
    let second = shop.purchase("bob").await;
    let consumer = start_consumer(&settings, &pool, Arc::new(Stats::default()));
    let rows = until_confirmed(&pool, &[&first, &second]).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    consumer.abort();
    let _ = consumer.await;

    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM consumer_applied")
        .fetch_one(&pool)
        .await
        .expect("count");
    let order_events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'order'")
            .fetch_one(&eshop.state.pool)
            .await
            .expect("count");
    assert_eq!(applied, order_events, "every order event applied once");

    // Everything delivered again (the durable consumer dropped and made anew from the start):
    // nothing is applied twice.
    let client = async_nats::connect(&settings.nats_url).await.expect("nats");
    let jetstream = async_nats::jetstream::new(client);
    jetstream
        .get_stream(settings.stream_name())
        .await
        .expect("stream")
        .delete_consumer(&settings.durable_name)
        .await
        .expect("consumer deleted");
    let again = Arc::new(Stats::default());
    let consumer = start_consumer(&settings, &pool, again.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while again.duplicates.load(Ordering::Relaxed) < u64::try_from(order_events).unwrap_or(0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "redelivery: {again:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    consumer.abort();
    let _ = consumer.await;
    assert_eq!(again.applied.load(Ordering::Relaxed), 0);
    assert_eq!(orders(&pool).await, rows);

    let subjects = eshop.state.subjects.clone();
    eshop.shutdown().await.expect("eshop stops");
    let _ = jetstream.delete_stream(subjects.stream_name()).await;
    let _ = jetstream.delete_stream(subjects.tasks_stream_name()).await;
}
