//! Reading the catalog through the read model and the cache.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::proxy::FlakyProxy;

async fn add(app: &TestApp, admin: &str, body: Value) -> String {
    let response = app.post("/api/products", Some(admin), body).await;
    assert_eq!(response.status(), 201);
    let product: Value = response.json().await.expect("json");
    product["id"].as_str().expect("id").to_string()
}

fn book(
    title: &str,
    author: &str,
    date: &str,
    price: i64,
    stock: i64,
    category: &str,
    description: &str,
) -> Value {
    json!({"title": title, "author": author, "published_date": date, "price_cents": price,
           "stock": stock, "category": category, "description": description})
}

/// Waits until the read model shows the product at `version`.
async fn visible(app: &TestApp, id: &str, version: u64) -> Value {
    let response = app
        .get(&format!("/api/products/{id}?min_version={version}"), None)
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

async fn titles(app: &TestApp, query: &str) -> Vec<String> {
    let page: Value = app
        .get(&format!("/api/products?{query}"), None)
        .await
        .json()
        .await
        .expect("json");
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {page}"))
        .iter()
        .map(|item| item["title"].as_str().expect("title").to_string())
        .collect()
}

async fn shelf(app: &TestApp) {
    let admin = app.admin_token().await;
    let books = [
        book(
            "Dune",
            "Frank Herbert",
            "1965-08-01",
            1999,
            5,
            "science-fiction",
            "Spice and sand worms on a desert planet.",
        ),
        book(
            "Emma",
            "Jane Austen",
            "1815-12-23",
            899,
            0,
            "classics",
            "A matchmaker in Highbury.",
        ),
        book(
            "Persuasion",
            "Jane Austen",
            "1817-12-20",
            999,
            2,
            "classics",
            "Second chances at sea.",
        ),
        book(
            "Neuromancer",
            "William Gibson",
            "1984-07-01",
            1499,
            1,
            "science-fiction",
            "Cyberspace heist.",
        ),
        book(
            "The Dispossessed",
            "Ursula K. Le Guin",
            "1974-05-01",
            1299,
            4,
            "science-fiction",
            "An anarchist moon and a desert world.",
        ),
    ];
    let mut ids = Vec::new();
    for body in books {
        ids.push(add(app, &admin, body).await);
    }
    for id in &ids {
        visible(app, id, 1).await;
    }
    // Searches are answered by the search index, which follows the stream on its own.
    app.search_caught_up().await;
}

#[tokio::test]
async fn filters_ordering_and_search() {
    let app = spawn_app().await;
    shelf(&app).await;
    assert_eq!(
        titles(&app, "").await,
        [
            "Dune",
            "Emma",
            "Neuromancer",
            "Persuasion",
            "The Dispossessed"
        ]
    );
    assert_eq!(
        titles(&app, "author=JANE%20austen&ordering=-published_date").await,
        ["Persuasion", "Emma"]
    );
    assert_eq!(titles(&app, "title=UNE").await, ["Dune"]);
    assert_eq!(
        titles(&app, "category=classics&in_stock=true").await,
        ["Persuasion"]
    );
    assert_eq!(
        titles(
            &app,
            "min_price_cents=1000&max_price_cents=1500&ordering=price_cents"
        )
        .await,
        ["The Dispossessed", "Neuromancer"]
    );
    assert_eq!(
        titles(
            &app,
            "published_after=1900-01-01&published_before=1980-01-01&ordering=published_date"
        )
        .await,
        ["Dune", "The Dispossessed"]
    );
    assert_eq!(titles(&app, "published_date=1815-12-23").await, ["Emma"]);
    // Full text over title, author and description, most relevant first.
    assert_eq!(titles(&app, "search=desert").await.len(), 2);
    assert_eq!(titles(&app, "search=desert%20planet").await, ["Dune"]);
    // Wildcards and SQL in the input are just text.
    assert!(titles(&app, "title=%25").await.is_empty());
    assert!(titles(&app, "search=%27%3B%20drop%20table%20products%3B--")
        .await
        .is_empty());
}

#[tokio::test]
async fn cursor_pagination_walks_every_item_once_and_totals_on_request() {
    let app = spawn_app().await;
    shelf(&app).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = "limit=2&ordering=-price_cents&include_total=true".to_string();
        if let Some(cursor) = &cursor {
            query.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = app
            .get(&format!("/api/products?{query}"), None)
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(page["total"], 5);
        for item in page["items"].as_array().expect("items") {
            seen.push(item["price_cents"].as_i64().expect("price"));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, [1999, 1499, 1299, 999, 899]);
    let without_total: Value = app
        .get("/api/products?limit=2", None)
        .await
        .json()
        .await
        .expect("json");
    assert!(without_total.get("total").is_none());
}

#[tokio::test]
async fn bad_list_parameters_are_422() {
    let app = spawn_app().await;
    for (query, field) in [
        ("ordering=password", "ordering"),
        ("ordering=relevance", "ordering"),
        ("limit=0", "limit"),
        ("limit=1000", "limit"),
        ("min_price_cents=cheap", "min_price_cents"),
        ("published_after=yesterday", "published_after"),
        ("cursor=garbage", "cursor"),
        ("in_stock=maybe", "in_stock"),
        ("colour=red", "colour"),
    ] {
        let response = app.get(&format!("/api/products?{query}"), None).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }
}

#[tokio::test]
async fn after_a_change_is_applied_no_read_shows_the_old_value() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = add(
        &app,
        &admin,
        book(
            "Solaris",
            "Stanislaw Lem",
            "1961-01-01",
            1000,
            1,
            "science-fiction",
            "An ocean.",
        ),
    )
    .await;
    visible(&app, &id, 1).await;
    for round in 1..=10_i64 {
        // Warm the cache with the current value, detail and list alike.
        app.get(&format!("/api/products/{id}"), None).await;
        app.get("/api/products?title=solaris", None).await;
        let price = 1000 + round;
        let changed = app
            .patch(
                &format!("/api/products/{id}"),
                Some(&admin),
                json!({"price_cents": price}),
            )
            .await;
        assert_eq!(changed.status(), 200);
        let version = changed.json::<Value>().await.expect("json")["version"]
            .as_u64()
            .expect("version");
        // Applied means: the read table has it.
        let row = app
            .state()
            .products
            .wait_for_version(
                id.parse().expect("uuid"),
                version,
                std::time::Duration::from_secs(5),
            )
            .await
            .expect("reads");
        assert!(row.is_some());
        let detail: Value = app
            .get(&format!("/api/products/{id}"), None)
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(detail["price_cents"], price, "round {round}: detail");
        let list: Value = app
            .get("/api/products?title=solaris", None)
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(
            list["items"][0]["price_cents"], price,
            "round {round}: list"
        );
    }
    let stats = &app.state().cache.stats;
    assert!(
        stats.hits.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the cache was used"
    );
}

#[tokio::test]
async fn a_version_not_reached_in_time_is_503_with_retry_after() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = add(
        &app,
        &admin,
        book(
            "Ubik",
            "Philip K. Dick",
            "1969-05-01",
            700,
            1,
            "science-fiction",
            "",
        ),
    )
    .await;
    let response = app
        .get(&format!("/api/products/{id}?min_version=99"), None)
        .await;
    assert_eq!(response.headers()["retry-after"], "1");
    assert_problem(response, 503, "not_yet_visible").await;
}

#[tokio::test]
async fn with_redis_down_every_read_still_answers() {
    let proxy = FlakyProxy::to_redis().await;
    let url = proxy.url.clone();
    let app = spawn_app_with(|config| config.redis_url = url).await;
    shelf(&app).await;
    let reads = [
        "/api/products",
        // A search ordered otherwise than by relevance is Postgres's (and cached).
        "/api/products?search=desert&ordering=title",
        "/api/products?author=jane%20austen",
    ];
    for path in reads {
        assert_eq!(app.get(path, None).await.status(), 200);
    }
    proxy.cut();
    for _ in 0..5 {
        for path in reads {
            let response = app.get(path, None).await;
            assert_eq!(response.status(), 200, "{path} with Redis down");
        }
    }
    let stats = &app.state().cache.stats;
    assert!(stats.fallbacks.load(std::sync::atomic::Ordering::Relaxed) >= 15);
    proxy.restore();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let hits_before = stats.hits.load(std::sync::atomic::Ordering::Relaxed);
    for _ in 0..3 {
        assert_eq!(app.get("/api/products", None).await.status(), 200);
    }
    assert!(
        stats.hits.load(std::sync::atomic::Ordering::Relaxed) > hits_before,
        "caching resumed by itself"
    );
}

#[tokio::test]
async fn admins_see_the_projections() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, customer) = app.customer("uma").await;
    assert_problem(
        app.get("/api/admin/projections", Some(&customer)).await,
        403,
        "forbidden",
    )
    .await;
    app.get("/api/users/me?min_version=1", Some(&customer))
        .await;
    let reports: Value = app
        .get("/api/admin/projections", Some(&admin))
        .await
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = reports
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "products",
            "users",
            "orders",
            "payments",
            "carts",
            "wishlists",
            "reviews",
            "movies",
            "calendar_events",
            "categories",
            // Each process's own search index.
            "search",
        ]
    );
    let users = &reports[1];
    assert_eq!(users["status"], "running");
    assert!(users["position"].as_i64().expect("position") >= 3);
    for field in ["lag_events", "lag_seconds", "last_error"] {
        assert!(users.get(field).is_some(), "{field}");
    }
    // No movie was ever stored: its builder runs with nothing to apply, and says so (its
    // consumer can take a moment to be made at start).
    eventually(
        std::time::Duration::from_secs(10),
        "the movies builder running",
        || async {
            let reports: Value = app
                .get("/api/admin/projections", Some(&admin))
                .await
                .json()
                .await
                .ok()?;
            let movies = reports.as_array()?.iter().find(|r| r["name"] == "movies")?;
            (movies["status"] == "running" && movies["position"] == 0).then_some(())
        },
    )
    .await;
    let metrics = app
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("eshop_relay_horizon_blocked_seconds"));
    assert!(metrics.contains("eshop_relay_leading 1"));
}
