//! Rebuilding a read model without downtime (issue 14, part 5): from the command line and over
//! HTTP, equal to what the live builder built, while clients keep reading and writing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(120);
const TABLES: [&str; 7] = [
    "products",
    "users",
    "orders",
    "payments",
    "carts",
    "wishlists",
    "reviews",
];

/// Every row of `table` as JSON, by id; `updated_at` (the time a row was written, not a fact of
/// the history) left out.
async fn snapshot(pool: &PgPool, table: &str) -> Vec<Value> {
    sqlx::query_scalar(&format!(
        "SELECT to_jsonb(t) - 'updated_at' FROM {table} AS t ORDER BY id"
    ))
    .fetch_all(pool)
    .await
    .expect("snapshot")
}

/// Adds `count` restocks of one unit to a product (at version 1, stock `stock`) straight to the
/// store, as the aggregate would have appended them: a longer history to rebuild.
async fn seed_restocks(pool: &PgPool, product: &str, stock: i64, count: i64) {
    sqlx::query(
        r#"INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
           SELECT 'product', $1, n, 'ProductRestocked', '1',
                  jsonb_build_object('type', 'ProductRestocked', 'data', jsonb_build_object('quantity', 1, 'stock', $2 + n - 1)),
                  '{}'::jsonb
             FROM generate_series(2, $3 + 1) AS n"#,
    )
    .bind(product)
    .bind(stock)
    .bind(count)
    .execute(pool)
    .await
    .expect("seed");
}

/// Waits until every product row reflects every event of its aggregate in the store.
async fn products_caught_up(app: &TestApp) {
    eventually(WAIT, "the live products table catches up", || async {
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT aggregate_id, max(sequence) AS last FROM events
                                    WHERE aggregate_type = 'product' GROUP BY aggregate_id) AS e
              LEFT JOIN products ON products.id = e.aggregate_id::uuid
              WHERE products.version IS DISTINCT FROM e.last",
        )
        .fetch_one(&app.pool)
        .await
        .ok()?;
        (behind == 0).then_some(())
    })
    .await;
}

/// Every read model's rows in the store's final state (each table's rows at its aggregates'
/// last versions).
async fn every_table_caught_up(app: &TestApp) -> Vec<Vec<Value>> {
    eventually(WAIT, "every read model catches up", || async {
        for (table, aggregate_type) in [
            ("products", "product"),
            ("users", "user"),
            ("orders", "order"),
            ("payments", "payment"),
            ("carts", "cart"),
            ("wishlists", "wishlist"),
            ("reviews", "review"),
        ] {
            let behind: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM (SELECT aggregate_id, max(sequence) AS last FROM events
                                        WHERE aggregate_type = $1 GROUP BY aggregate_id) AS e
                  LEFT JOIN {table} AS t ON t.id = e.aggregate_id::uuid
                  WHERE t.version IS DISTINCT FROM e.last"
            ))
            .bind(aggregate_type)
            .fetch_one(&app.pool)
            .await
            .ok()?;
            if behind > 0 {
                return None;
            }
        }
        Some(())
    })
    .await;
    let mut tables = Vec::new();
    for table in TABLES {
        tables.push(snapshot(&app.pool, table).await);
    }
    tables
}

async fn some_of_everything(app: &TestApp) {
    let admin = app.admin_token().await;
    let dune = app.add_book(&admin, "Dune", 5).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let emma = app.add_book(&admin, "Emma", 5).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (_, ann) = app.customer("ann").await;
    for (method, path, body) in [
        (
            Method::POST,
            "/api/users/me/deposits".to_string(),
            json!({"amount_cents": 5000}),
        ),
        (
            Method::POST,
            "/api/purchases".to_string(),
            json!({"product_id": dune, "quantity": 1, "payment_method": "balance"}),
        ),
        (
            Method::PUT,
            format!("/api/cart/items/{emma}"),
            json!({"quantity": 2}),
        ),
        (
            Method::PUT,
            format!("/api/wishlist/items/{dune}"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/products/{dune}/reviews"),
            json!({"rating": 5, "comment": "fine"}),
        ),
    ] {
        let response = app
            .request(method, &path, Some(&ann))
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
}

#[tokio::test]
async fn the_command_line_rebuilds_every_read_model_into_equal_tables() {
    let app = spawn_app().await;
    some_of_everything(&app).await;
    let before = every_table_caught_up(&app).await;
    assert!(before.iter().all(|rows| !rows.is_empty()), "{before:?}");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_eshop"))
        .args(["projections", "rebuild", "--all", "--database-url"])
        .arg(&app.database_url)
        .args(["--redis-prefix", &format!("{}:", app.namespace)])
        .output()
        .expect("eshop runs");
    assert!(output.status.success(), "{output:?}");
    let table = String::from_utf8_lossy(&output.stdout);
    for name in TABLES {
        assert!(table.contains(&format!("| {name} |")), "{table}");
    }

    let after = every_table_caught_up(&app).await;
    for (name, (before, after)) in TABLES.iter().zip(before.iter().zip(&after)) {
        assert_eq!(before, after, "{name}");
    }
    let leftovers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'eshop_rebuild_%' OR nspname LIKE 'eshop_retired_%'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("schemas");
    assert_eq!(leftovers, 0, "the shadow and retired tables are dropped");

    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_eshop"))
        .args(["projections", "rebuild", "nonsense", "--database-url"])
        .arg(&app.database_url)
        .output()
        .expect("eshop runs");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no read model is called"));
    app.shutdown().await;
}

#[tokio::test]
async fn an_admin_rebuilds_a_read_model_as_a_task_and_sees_its_progress() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, customer) = app.customer("cid").await;
    let product = app.add_book(&admin, "Dune", 5).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    seed_restocks(&app.pool, &product, 5, 2000).await;
    products_caught_up(&app).await;
    let before = snapshot(&app.pool, "products").await;

    let unknown = app
        .post(
            "/api/admin/projections/nonsense/rebuild",
            Some(&admin),
            json!({}),
        )
        .await;
    assert_problem(unknown, 404, "not_found").await;
    let forbidden = app
        .post(
            "/api/admin/projections/products/rebuild",
            Some(&customer),
            json!({}),
        )
        .await;
    assert_eq!(forbidden.status(), 403);

    let accepted = app
        .post(
            "/api/admin/projections/products/rebuild",
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(accepted.status(), 202);
    let accepted: Value = accepted.json().await.expect("json");
    let url = accepted["status_url"].as_str().expect("url").to_string();
    let task = eventually(WAIT, "the rebuild task finishes", || async {
        let task: Value = app.get(&url, Some(&admin)).await.json().await.ok()?;
        matches!(task["status"].as_str(), Some("DONE" | "FAILED")).then_some(task)
    })
    .await;
    assert_eq!(task["status"], "DONE", "{task}");
    assert_eq!(task["progress"], 100, "{task}");
    assert_eq!(task["result"]["events"], 2001, "{task}");

    let reports: Value = app
        .get("/api/admin/projections", Some(&admin))
        .await
        .json()
        .await
        .expect("json");
    let products = reports
        .as_array()
        .expect("a list")
        .iter()
        .find(|report| report["name"] == "products")
        .expect("products");
    assert_eq!(products["rebuild"]["phase"], "done", "{products}");
    assert_eq!(products["rebuild"]["percent"], 100, "{products}");
    assert_eq!(products["rebuild"]["events_done"], 2001, "{products}");
    assert_eq!(snapshot(&app.pool, "products").await, before);
    app.shutdown().await;
}

#[derive(Default)]
struct Seen {
    failures: Vec<String>,
    reads: usize,
    restocked: HashMap<String, i64>,
    /// Reports of `GET /api/admin/projections` taken while the rebuild ran.
    phases: Vec<String>,
}

/// Reads one product over and over; every read answers 200 with a version no older than the
/// last this client saw.
async fn reader(
    app: Arc<TestApp>,
    token: String,
    products: Vec<String>,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) {
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut turn = 0;
    while !stop.load(Ordering::Relaxed) {
        turn += 1;
        if turn % 5 == 0 {
            // The catalog page: every product, every time.
            let response = app.get("/api/products?limit=100", Some(&token)).await;
            let status = response.status();
            let page: Value = response.json().await.unwrap_or_default();
            let count = page["items"].as_array().map_or(0, Vec::len);
            let mut seen = seen.lock().expect("lock");
            seen.reads += 1;
            if status != 200 || count != products.len() {
                seen.failures.push(format!("list: {status}, {count} items"));
            }
            continue;
        }
        let product = &products[turn % products.len()];
        let response = app
            .get(&format!("/api/products/{product}"), Some(&token))
            .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        let version = body["version"].as_u64().unwrap_or_default();
        let mut seen = seen.lock().expect("lock");
        seen.reads += 1;
        if status != 200 {
            seen.failures.push(format!("{product}: {status} {body}"));
            continue;
        }
        let previous = last.insert(product.clone(), version).unwrap_or_default();
        if version < previous {
            seen.failures.push(format!(
                "{product} went back from version {previous} to {version}"
            ));
        }
    }
}

/// Restocks products one unit at a time; counts what succeeded.
async fn writer(
    app: Arc<TestApp>,
    admin: String,
    products: Vec<String>,
    offset: usize,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) {
    let mut turn = offset;
    while !stop.load(Ordering::Relaxed) {
        turn += 1;
        let product = &products[turn % products.len()];
        let response = app
            .post(
                &format!("/api/products/{product}/restock"),
                Some(&admin),
                json!({"quantity": 1}),
            )
            .await;
        let status = response.status();
        let mut seen = seen.lock().expect("lock");
        if status.is_success() {
            *seen.restocked.entry(product.clone()).or_default() += 1;
        } else if status != 409 {
            seen.failures.push(format!("restock {product}: {status}"));
        }
    }
}

#[tokio::test]
async fn rebuilding_products_while_fifty_clients_read_and_write() {
    let app = Arc::new(spawn_app().await);
    let admin = app.admin_token().await;
    let (_, customer) = app.customer("reader").await;
    let mut products = Vec::new();
    for n in 0..20 {
        let id = app.add_book(&admin, &format!("Book {n}"), 10).await["id"]
            .as_str()
            .expect("id")
            .to_string();
        seed_restocks(&app.pool, &id, 10, 1000).await;
        products.push(id);
    }
    products_caught_up(&app).await;
    let before: HashMap<String, Value> = snapshot(&app.pool, "products")
        .await
        .into_iter()
        .map(|row| (row["id"].as_str().expect("id").to_string(), row))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut clients = Vec::new();
    for n in 0..50 {
        let (app, stop, seen, products) =
            (app.clone(), stop.clone(), seen.clone(), products.clone());
        clients.push(if n % 2 == 0 {
            tokio::spawn(reader(app, customer.clone(), products, stop, seen))
        } else {
            tokio::spawn(writer(app, admin.clone(), products, n, stop, seen))
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let accepted = app
        .post(
            "/api/admin/projections/products/rebuild",
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(accepted.status(), 202);
    let accepted: Value = accepted.json().await.expect("json");
    let url = accepted["status_url"].as_str().expect("url").to_string();
    let task = eventually(WAIT, "the rebuild task finishes", || async {
        let reports: Value = app
            .get("/api/admin/projections", Some(&admin))
            .await
            .json()
            .await
            .ok()?;
        if let Some(phase) = reports
            .as_array()
            .and_then(|reports| reports.iter().find(|report| report["name"] == "products"))
            .and_then(|report| report["rebuild"]["phase"].as_str())
        {
            seen.lock().expect("lock").phases.push(phase.to_string());
        }
        let task: Value = app.get(&url, Some(&admin)).await.json().await.ok()?;
        matches!(task["status"].as_str(), Some("DONE" | "FAILED")).then_some(task)
    })
    .await;
    assert_eq!(task["status"], "DONE", "{task}");
    let reports: Value = app
        .get("/api/admin/projections", Some(&admin))
        .await
        .json()
        .await
        .expect("json");
    let finished = reports
        .as_array()
        .and_then(|reports| reports.iter().find(|report| report["name"] == "products"))
        .map(|report| report["rebuild"]["phase"].clone());
    seen.lock().expect("lock").phases.push(
        finished
            .and_then(|phase| phase.as_str().map(String::from))
            .unwrap_or_default(),
    );
    // Still reading and writing over the new table a while.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("client");
    }
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    assert!(
        seen.failures.is_empty(),
        "{:?}",
        &seen.failures[..seen.failures.len().min(20)]
    );
    assert!(seen.reads > 100, "{} reads", seen.reads);
    assert!(!seen.restocked.is_empty());
    assert_eq!(
        seen.phases.last().map(String::as_str),
        Some("done"),
        "{:?}",
        seen.phases
    );

    // The rebuilt table, carried on by the live builder, is the live-built one plus exactly
    // the restocks that succeeded.
    eprintln!("the clients stopped; waiting for the live builder");
    products_caught_up(&app).await;
    let after = snapshot(&app.pool, "products").await;
    assert_eq!(after.len(), before.len());
    for row in after {
        let id = row["id"].as_str().expect("id").to_string();
        let restocked = seen.restocked.get(&id).copied().unwrap_or_default();
        let mut expected = before[&id].clone();
        expected["stock"] = json!(expected["stock"].as_i64().expect("stock") + restocked);
        expected["version"] = json!(expected["version"].as_i64().expect("version") + restocked);
        assert_eq!(row, expected, "{id}");
    }
    Arc::try_unwrap(app)
        .ok()
        .expect("one owner")
        .shutdown()
        .await;
}
