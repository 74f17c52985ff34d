//! The right to erasure in an append-only store: personal data is sealed with a per-user key;
//! erasing deletes the key, and nothing (read tables, cache, stream, API, a rebuild) shows the
//! data again, while the events stay.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, TestApp, PASSWORD};

const EMAIL: &str = "zoe.quill@example.com";
const LAST_NAME: &str = "Quillfeather";

/// Every table's rows as text, and every Redis value under the app's prefix, that mention
/// `needle`.
async fn places_holding(app: &TestApp, needle: &str) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_sqlx_migrations'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("tables");
    let mut found = Vec::new();
    for table in tables {
        let hits: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{table}\" AS row WHERE lower(row::text) LIKE '%' || lower($1) || '%'"
        ))
        .bind(needle)
        .fetch_one(&app.pool)
        .await
        .expect("scan");
        if hits > 0 {
            found.push(format!("table {table}"));
        }
    }
    let client = redis::Client::open("redis://127.0.0.1:6379").expect("redis url");
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", app.namespace))
        .query_async(&mut redis)
        .await
        .expect("keys");
    for key in keys {
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap_or(None);
        if value.is_some_and(|bytes| String::from_utf8_lossy(&bytes).contains(needle)) {
            found.push(format!("redis {key}"));
        }
    }
    found
}

async fn user_when(app: &TestApp, admin: &str, id: &str, version: u64) -> Value {
    let response = app
        .get(
            &format!("/api/users/{id}?min_version={version}"),
            Some(admin),
        )
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// The user's registration as any replay would read it: unsealed with whatever key exists.
async fn registration_as_replayed(app: &TestApp, user_id: &str) -> Value {
    let mut payload: Value = sqlx::query_scalar(
        "SELECT payload FROM events WHERE aggregate_type = 'user' AND aggregate_id = $1 AND sequence = 1",
    )
    .bind(user_id)
    .fetch_one(&app.pool)
    .await
    .expect("the registration");
    eshop_infra::personal_data::PersonalDataKeys::new(app.pool.clone())
        .unseal_all([("user", user_id, &mut payload)])
        .await
        .expect("keys read");
    payload["data"].clone()
}

async fn stream_mentions(app: &TestApp, needle: &str) -> bool {
    let state = app.state();
    eshop_infra::testing::read_stream(&state.jetstream, &state.subjects)
        .await
        .iter()
        .any(|event| event.payload.to_string().contains(needle))
}

#[tokio::test]
async fn an_erased_user_is_nowhere_after_a_rebuild_while_the_history_stays() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let registered = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": EMAIL, "username": "zoe", "password": PASSWORD,
                   "first_name": "Zoe", "last_name": LAST_NAME}),
        )
        .await;
    assert_eq!(registered.status(), 201);
    let user_id = registered.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let token = app.login(EMAIL, PASSWORD).await;
    app.post(
        "/api/users/me/deposits",
        Some(&token),
        json!({"amount_cents": 5000}),
    )
    .await;
    let book = app.add_book(&admin, "Dune", 5).await;
    let bought = app
        .post(
            "/api/purchases",
            Some(&token),
            json!({"product_id": book["id"], "quantity": 1, "payment_method": "balance"}),
        )
        .await;
    assert_eq!(bought.status(), 201);

    // Before erasure: readable through the API, sealed in the store and on the stream.
    let before = user_when(&app, &admin, &user_id, 1).await;
    assert_eq!(before["email"], EMAIL);
    assert_eq!(before["last_name"], LAST_NAME);
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT payload::text FROM events WHERE aggregate_type = 'user' AND aggregate_id = $1",
    )
    .bind(&user_id)
    .fetch_all(&app.pool)
    .await
    .expect("events");
    assert!(stored
        .iter()
        .all(|payload| !payload.contains(EMAIL) && !payload.contains(LAST_NAME)));
    assert!(stored[0].contains("\"sealed\""), "{}", stored[0]);
    assert!(!stream_mentions(&app, EMAIL).await);
    assert_eq!(
        registration_as_replayed(&app, &user_id).await["email"],
        EMAIL
    );
    let events_before = app.event_count().await;

    let erased = app
        .post(
            &format!("/api/admin/users/{user_id}/erase"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(erased.status(), 200);
    let erased: Value = erased.json().await.expect("json");
    assert_eq!(erased["erased"], true);
    assert_eq!(erased["email"], Value::Null);
    let version = erased["version"].as_u64().expect("version");
    assert_eq!(
        app.event_count().await,
        events_before + 1,
        "one UserErased, nothing deleted"
    );

    let after = user_when(&app, &admin, &user_id, version).await;
    assert_eq!(after["erased"], true);
    assert_eq!(after["email"], Value::Null);
    assert_eq!(after["first_name"], Value::Null);
    assert_eq!(after["last_name"], Value::Null);
    assert_problem(
        app.get("/api/users/me", Some(&token)).await,
        401,
        "session_revoked",
    )
    .await;
    let login = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": EMAIL, "password": PASSWORD}),
        )
        .await;
    assert_problem(login, 401, "invalid_credentials").await;
    let replayed = registration_as_replayed(&app, &user_id).await;
    assert_eq!(
        replayed["email"],
        Value::Null,
        "the key is gone: {replayed}"
    );
    assert_eq!(replayed["last_name"], Value::Null);
    assert_eq!(
        replayed["username"], "zoe",
        "what is not personal stays readable"
    );
    // A repeat is harmless.
    let again = app
        .post(
            &format!("/api/admin/users/{user_id}/erase"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(again.status(), 200);

    // Rebuild every projection from the stream, from the start.
    app.stop().await;
    {
        let client = async_nats::connect(eshop_infra::testing::nats_url())
            .await
            .expect("nats");
        let jetstream = async_nats::jetstream::new(client);
        let subjects = eshop_infra::nats::EventSubjects::new(&app.namespace);
        let stream = jetstream
            .get_stream(subjects.stream_name())
            .await
            .expect("stream");
        for name in [
            "products",
            "users",
            "orders",
            "payments",
            "carts",
            "wishlists",
            "reviews",
        ] {
            let _ = stream
                .delete_consumer(&eshop_infra::projector::consumer_name(name))
                .await;
        }
        sqlx::query(
            "TRUNCATE users, products, orders, payments, carts, wishlists, reviews, projection_status",
        )
        .execute(&app.pool)
        .await
        .expect("read models emptied");
    }
    app.start_again().await;
    let admin = app.admin_token().await;
    let rebuilt = user_when(&app, &admin, &user_id, version).await;
    assert_eq!(rebuilt["erased"], true);
    assert_eq!(rebuilt["email"], Value::Null);
    assert_eq!(rebuilt["last_name"], Value::Null);
    assert_eq!(rebuilt["balance_cents"], 5000 - 1999);
    // Every other read model came back too: the order is still there.
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.pool)
        .await
        .expect("orders");
    assert_eq!(orders, 1);

    for needle in [EMAIL, LAST_NAME] {
        assert_eq!(
            places_holding(&app, needle).await,
            Vec::<String>::new(),
            "{needle}"
        );
        assert!(!stream_mentions(&app, needle).await);
    }
    let listed = app
        .get("/api/users?limit=200", Some(&admin))
        .await
        .text()
        .await
        .expect("text");
    assert!(!listed.contains(EMAIL) && !listed.contains(LAST_NAME));

    // The address is free again: erasure released its claim.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let reused = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": EMAIL, "username": "zoe2", "password": PASSWORD}),
        )
        .await;
    assert_eq!(reused.status(), 201);
    app.shutdown().await;
}

/// Every text, character, JSON and array column of every table (as `information_schema` lists
/// them now, so a table added later is scanned too) whose value mentions `needle`, as
/// `table.column`.
pub async fn columns_holding(pool: &sqlx::PgPool, needle: &str) -> Vec<String> {
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text
           FROM information_schema.columns c
           JOIN information_schema.tables t
             ON t.table_schema = c.table_schema AND t.table_name = c.table_name
          WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
            AND (c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'ARRAY')
                 OR c.udt_name IN ('citext'))
          ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .expect("columns");
    assert!(
        columns
            .iter()
            .any(|(table, column)| table == "email_log" && column == "recipient"),
        "the scan sees the mail log"
    );
    let mut found = Vec::new();
    for (table, column) in columns {
        let hits: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{table}\" WHERE strpos(lower(\"{column}\"::text), lower($1)) > 0"
        ))
        .bind(needle)
        .fetch_one(pool)
        .await
        .expect("scan");
        if hits > 0 {
            found.push(format!("{table}.{column}"));
        }
    }
    found
}

#[tokio::test]
async fn after_an_erasure_no_column_of_any_table_holds_the_users_address_or_names() {
    const EMAIL: &str = "ines.marrow@example.com";
    const FIRST: &str = "Inesquilla";
    const LAST: &str = "Marrowvane";
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let registered = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": EMAIL, "username": "ines", "password": PASSWORD,
                   "first_name": FIRST, "last_name": LAST}),
        )
        .await;
    assert_eq!(registered.status(), 201);
    let user_id: uuid::Uuid = registered.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let token = app.login(EMAIL, PASSWORD).await;
    // A profile change run in the background (its body is kept in `tasks`).
    let queued = app
        .request(reqwest::Method::PATCH, "/api/users/me", Some(&token))
        .header("Prefer", "respond-async")
        .json(&json!({"last_name": LAST, "first_name": FIRST}))
        .send()
        .await
        .expect("sent");
    assert_eq!(queued.status(), 202);
    app.post(
        "/api/users/me/deposits",
        Some(&token),
        json!({"amount_cents": 5000}),
    )
    .await;
    let book = app.add_book(&admin, "Dune", 5).await;
    let bought = app
        .post(
            "/api/purchases",
            Some(&token),
            json!({"product_id": book["id"], "quantity": 1, "payment_method": "balance"}),
        )
        .await;
    assert_eq!(bought.status(), 201);
    // The welcome and the confirmation are in the mail log with the address.
    crate::helpers::eventually(Duration::from_secs(20), "the mails", || async {
        let mails: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM email_log WHERE user_id = $1 AND recipient = $2",
        )
        .bind(user_id)
        .bind(EMAIL)
        .fetch_one(&app.pool)
        .await
        .expect("mails");
        (mails >= 2).then_some(())
    })
    .await;
    assert!(!columns_holding(&app.pool, EMAIL).await.is_empty());

    let erased = app
        .post(
            &format!("/api/admin/users/{user_id}/erase"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(erased.status(), 200);
    let version = erased.json::<Value>().await.expect("json")["version"]
        .as_u64()
        .expect("version");
    // A mailer that read the users read model before it caught up with the erasure records
    // a mail with the address it read: the log must not keep it.
    let late = eshop_infra::mail::outbox::NewMail {
        source_id: uuid::Uuid::new_v4(),
        template: eshop_infra::mail::templates::Template::OrderCancelled,
        position: None,
        source: "OrderCancelled".into(),
        user_id: Some(user_id),
        recipient: Some(EMAIL.into()),
        context: json!({"name": FIRST, "order_id": uuid::Uuid::new_v4()}),
    };
    assert!(app.state().outbox.enqueue(&late).await.expect("recorded"));
    user_when(&app, &admin, &user_id.to_string(), version).await;

    for needle in [EMAIL, FIRST, LAST] {
        assert_eq!(
            columns_holding(&app.pool, needle).await,
            Vec::<String>::new(),
            "{needle}"
        );
    }
    app.shutdown().await;
}
