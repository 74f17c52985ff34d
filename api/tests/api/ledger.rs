//! The shop's books for the tests that drive many purchases: seeds written as events, and what
//! is still outstanding in what the events imply.

use std::collections::HashMap;

use serde_json::Value;
use uuid::Uuid;

/// `count` products priced 100, 200 or 300 cents, `stock` each, added as events (as an import
/// would). Their prices by id.
pub async fn seed_products(pool: &sqlx::PgPool, count: i64, stock: i64) -> HashMap<Uuid, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        r#"INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
           SELECT 'product', gen_random_uuid()::text, 1, 'ProductAdded', '1',
                  jsonb_build_object('type', 'ProductAdded', 'data', jsonb_build_object(
                      'title', 'Book ' || n, 'author', 'A', 'published_date', '2000-01-01',
                      'description', '', 'price_cents', 100 * (1 + n % 3), 'stock', $2::bigint,
                      'category', 'books')),
                  '{}'::jsonb
             FROM generate_series(1, $1) AS n
           RETURNING aggregate_id, (payload->'data'->>'price_cents')::bigint"#,
    )
    .bind(count)
    .bind(stock)
    .fetch_all(pool)
    .await
    .expect("products");
    rows.into_iter()
        .map(|(id, price)| (id.parse().expect("uuid"), price))
        .collect()
}

/// `count` buyers with `balance_cents` each.
pub async fn seed_buyers(pool: &sqlx::PgPool, count: i64, balance_cents: i64) -> Vec<Uuid> {
    let ids: Vec<String> = sqlx::query_scalar(
        r#"INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
           SELECT 'user', gen_random_uuid()::text, 1, 'UserRegistered', '1',
                  jsonb_build_object('type', 'UserRegistered', 'data', jsonb_build_object(
                      'email', 'buyer' || n || '@example.com', 'username', 'buyer' || n,
                      'password_hash', 'x', 'first_name', null, 'last_name', null)),
                  '{}'::jsonb
             FROM generate_series(1, $1) AS n
           RETURNING aggregate_id"#,
    )
    .bind(count)
    .fetch_all(pool)
    .await
    .expect("buyers");
    sqlx::query(
        r#"INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
           SELECT 'user', id, 2, 'WalletDeposited', '1',
                  jsonb_build_object('type', 'WalletDeposited', 'data', jsonb_build_object(
                      'amount_cents', $2::bigint, 'balance_cents', $2::bigint)),
                  '{}'::jsonb
             FROM unnest($1::text[]) AS id"#,
    )
    .bind(&ids)
    .bind(balance_cents)
    .execute(pool)
    .await
    .expect("deposits");
    ids.iter().map(|id| id.parse().expect("uuid")).collect()
}

/// Read-model rows (users, products, orders, payments) behind what the store holds.
pub async fn rows_behind(pool: &sqlx::PgPool) -> i64 {
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

/// What is still to do: read-model rows behind, orders not finished, confirmations without a
/// sent mail, mails not settled.
pub async fn outstanding(pool: &sqlx::PgPool) -> (i64, i64, i64, i64) {
    let unfinished: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE status NOT IN ('confirmed', 'failed', 'cancelled')",
    )
    .fetch_one(pool)
    .await
    .expect("counts");
    let unmailed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events
          WHERE event_type = 'OrderConfirmed'
            AND NOT EXISTS (SELECT 1 FROM email_log
                             WHERE email_log.position = events.position
                               AND template = 'order_confirmation' AND status = 'sent')",
    )
    .fetch_one(pool)
    .await
    .expect("counts");
    let unsettled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM email_log WHERE status NOT IN ('sent', 'skipped')",
    )
    .fetch_one(pool)
    .await
    .expect("counts");
    (rows_behind(pool).await, unfinished, unmailed, unsettled)
}

/// Orders in the read model, and how many of them were confirmed.
pub struct Books {
    pub orders: usize,
    pub confirmed: i64,
}

/// Once everything caught up (`outstanding` is all zeros): every order confirmed or failed;
/// each product's stock went exactly to confirmed orders at its price, never below zero; each
/// buyer paid exactly for their own confirmed orders (nothing twice, nothing for a failed one),
/// never below zero; so the money is conserved.
pub async fn assert_books_balance(
    pool: &sqlx::PgPool,
    prices: &HashMap<Uuid, i64>,
    stock: i64,
    buyers: &[Uuid],
    balance_cents: i64,
) -> Books {
    let orders: Vec<(Uuid, String, i64, Value)> = sqlx::query_as(
        "SELECT customer_id, status, (record->>'total_cents')::bigint, record->'lines' FROM orders",
    )
    .fetch_all(pool)
    .await
    .expect("orders");
    assert!(
        orders
            .iter()
            .all(|(_, status, _, _)| status == "confirmed" || status == "failed"),
        "every order settled"
    );
    let mut sold: HashMap<Uuid, i64> = HashMap::new();
    let mut paid: HashMap<Uuid, i64> = HashMap::new();
    let mut confirmed = 0;
    for (customer, _, total_cents, lines) in orders.iter().filter(|order| order.1 == "confirmed") {
        confirmed += 1;
        *paid.entry(*customer).or_default() += total_cents;
        for line in lines.as_array().expect("lines") {
            let product: Uuid = line["product_id"]
                .as_str()
                .expect("id")
                .parse()
                .expect("uuid");
            assert_eq!(
                line["unit_price_cents"].as_i64(),
                prices.get(&product).copied(),
                "sold at its price"
            );
            *sold.entry(product).or_default() += line["quantity"].as_i64().expect("quantity");
        }
    }
    let stocks: Vec<(Uuid, i64)> = sqlx::query_as("SELECT id, stock FROM products")
        .fetch_all(pool)
        .await
        .expect("stocks");
    for (product, left) in stocks {
        assert!(left >= 0, "no oversell: {product} has {left}");
        assert_eq!(
            stock - left,
            sold.get(&product).copied().unwrap_or(0),
            "the stock of {product} went exactly to confirmed orders"
        );
    }
    let balances: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT id, balance_cents FROM users WHERE id = ANY($1)")
            .bind(buyers)
            .fetch_all(pool)
            .await
            .expect("balances");
    assert_eq!(
        balances.len(),
        buyers.len(),
        "every buyer in the read model"
    );
    for (buyer, balance) in balances {
        assert!(balance >= 0, "no overdraw: {buyer} has {balance}");
        assert_eq!(
            balance_cents - balance,
            paid.get(&buyer).copied().unwrap_or(0),
            "{buyer} paid exactly for their confirmed orders"
        );
    }
    Books {
        orders: orders.len(),
        confirmed,
    }
}
