//! The search index: ranking and matching rules, facets against the read model, highlights,
//! read-your-writes, removed products, the admin listing, one writer per directory, a deleted or
//! corrupt index rebuilt from the stream, and a killed process resuming without loss or duplicates.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use eshop_api::config::SearchConfig;
use eshop_api::server::start;

use crate::helpers::*;

fn book(
    title: &str,
    author: &str,
    price: i64,
    stock: i64,
    category: &str,
    description: &str,
) -> Value {
    json!({"title": title, "author": author, "published_date": "2001-02-03", "price_cents": price,
           "stock": stock, "category": category, "description": description})
}

async fn add(app: &TestApp, admin: &str, body: Value) -> String {
    let response = app.post("/api/products", Some(admin), body).await;
    assert_eq!(response.status(), 201);
    let product: Value = response.json().await.expect("json");
    product["id"].as_str().expect("id").to_string()
}

/// Adds the books and waits until the index holds them.
async fn shelve(app: &TestApp, books: Vec<Value>) -> Vec<String> {
    let admin = app.admin_token().await;
    let mut ids = Vec::new();
    for body in books {
        ids.push(add(app, &admin, body).await);
    }
    for id in &ids {
        let response = app
            .get(&format!("/api/products/{id}?min_version=1"), None)
            .await;
        assert_eq!(response.status(), 200);
    }
    app.search_caught_up().await;
    ids
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let response = app.get(path, None).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.expect("json")
}

fn titles_of(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {page}"))
        .iter()
        .map(|item| item["title"].as_str().expect("title").to_string())
        .collect()
}

async fn searched(app: &TestApp, query: &str) -> Vec<String> {
    titles_of(&get_json(app, &format!("/api/search?{query}")).await)
}

fn dragons() -> Vec<Value> {
    vec![
        book(
            "Dragon Flight",
            "Anne McCaffrey",
            1299,
            3,
            "fantasy",
            "Riders bond with their mounts on Pern.",
        ),
        book(
            "Desert Dragons",
            "Kim Ash",
            899,
            0,
            "fantasy",
            "Sand and scales.",
        ),
        book(
            "Gardens of the Moon",
            "Steven Erikson",
            1599,
            2,
            "epic",
            "A dragon appears, briefly.",
        ),
        book(
            "Drago the Cat",
            "Lou Pratt",
            499,
            5,
            "children",
            "A cat who thinks big.",
        ),
        book(
            "Cooking for One",
            "Ada Brie",
            2599,
            1,
            "food",
            "Recipes, no reptiles.",
        ),
    ]
}

#[tokio::test]
async fn every_word_must_match_with_typos_prefixes_and_exact_matches_first() {
    let app = spawn_app().await;
    shelve(&app, dragons()).await;

    // Exact matches (title above description) rank above one-typo matches ("dragons", "drago").
    let ranked = searched(&app, "q=dragon%20").await;
    assert_eq!(ranked.len(), 4, "{ranked:?}");
    assert_eq!(ranked[..2], ["Dragon Flight", "Gardens of the Moon"]);
    let loose: HashSet<&str> = ranked[2..].iter().map(String::as_str).collect();
    assert_eq!(loose, HashSet::from(["Desert Dragons", "Drago the Cat"]));

    // One typo in a word of 5+ letters; none in shorter words.
    assert!(searched(&app, "q=Dargon%20Flight").await == ["Dragon Flight"]);
    assert!(searched(&app, "q=cta%20").await.is_empty());
    assert_eq!(searched(&app, "q=cat%20").await, ["Drago the Cat"]);
    // Every word must match.
    assert_eq!(
        searched(&app, "q=dragon%20moon").await,
        ["Gardens of the Moon"]
    );
    assert!(searched(&app, "q=dragon%20recipes%20").await.is_empty());
    // The last word is a prefix while it is typed.
    assert_eq!(
        searched(&app, "q=gardens%20of%20the%20mo").await,
        ["Gardens of the Moon"]
    );
    assert_eq!(searched(&app, "q=cook").await, ["Cooking for One"]);
    assert!(searched(&app, "q=cook%20").await.is_empty());

    // The catalog list answers `search` from the index, with its other filters.
    let listed = titles_of(&get_json(&app, "/api/products?search=Dargon").await);
    assert!(listed.contains(&"Dragon Flight".to_string()), "{listed:?}");
    assert_eq!(
        titles_of(
            &get_json(
                &app,
                "/api/products?search=dragon%20&category=fantasy&in_stock=true"
            )
            .await
        ),
        ["Dragon Flight"]
    );
    assert_eq!(
        titles_of(
            &get_json(
                &app,
                "/api/products?search=drag&max_price_cents=899&author=KIM%20ash"
            )
            .await
        ),
        ["Desert Dragons"]
    );
    assert_eq!(
        titles_of(&get_json(&app, "/api/products?search=drag&title=MOON").await),
        ["Gardens of the Moon"]
    );
    let counted = get_json(&app, "/api/products?search=drag&include_total=true").await;
    assert_eq!(counted["total"], 4);

    // Pages follow one another by cursor, without repeats.
    let mut seen = Vec::new();
    let mut path = "/api/search?q=drag&limit=1".to_string();
    loop {
        let page = get_json(&app, &path).await;
        seen.extend(titles_of(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/search?q=drag&limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 4);

    // Suggestions: titles for what is typed so far.
    let suggested = get_json(&app, "/api/search/suggest?q=dra").await;
    let titles: HashSet<&str> = suggested["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["title"].as_str().expect("title"))
        .collect();
    assert_eq!(
        titles,
        HashSet::from(["Dragon Flight", "Desert Dragons", "Drago the Cat"])
    );
    assert_problem(
        app.get("/api/search?q=%20", None).await,
        422,
        "validation_failed",
    )
    .await;
    app.shutdown().await;
}

fn suggested_titles(page: &Value) -> Vec<String> {
    let mut titles = titles_of(page);
    titles.sort();
    titles
}

#[tokio::test]
async fn a_suggestion_kept_in_memory_gives_way_to_the_next_commit() {
    let app = spawn_app().await;
    let harbor = |title: &str| book(title, "Ann Lee", 900, 1, "travel", "Boats.");
    shelve(&app, vec![harbor("Harbor Lights")]).await;
    for _ in 0..2 {
        // Asked twice: the second answer is the one kept.
        let page = get_json(&app, "/api/search/suggest?q=Harb").await;
        assert_eq!(suggested_titles(&page), ["Harbor Lights"]);
    }
    shelve(&app, vec![harbor("Harbor Days")]).await;
    let page = get_json(&app, "/api/search/suggest?q=harb").await;
    assert_eq!(suggested_titles(&page), ["Harbor Days", "Harbor Lights"]);
    app.shutdown().await;
}

#[tokio::test]
async fn facets_equal_the_read_models_counts() {
    let app = spawn_app().await;
    let mut books = Vec::new();
    for n in 0..24i64 {
        let category = ["sea", "sky", "land"][(n % 3) as usize];
        let description = if n % 4 == 0 {
            "no match here"
        } else {
            "a zephyr blows"
        };
        books.push(book(
            &format!("Tale {n}"),
            "Various",
            300 + n * 700,
            n % 2,
            category,
            description,
        ));
    }
    shelve(&app, books).await;
    let everything = get_json(&app, "/api/products?limit=100").await;
    for (query, in_stock) in [
        ("q=zephyr%20&facets=category,price", None),
        (
            "q=zephyr%20&in_stock=true&facets=category,price",
            Some(true),
        ),
    ] {
        let page = get_json(&app, &format!("/api/search?{query}")).await;
        // The same products counted from the read model.
        let mut categories: BTreeMap<String, u64> = BTreeMap::new();
        let mut prices = [0u64; 5];
        let bounds = [0i64, 1000, 2500, 5000, 10000];
        let mut total = 0;
        for product in everything["items"].as_array().expect("items") {
            let matches = product["description"]
                .as_str()
                .unwrap_or_default()
                .contains("zephyr");
            let stocked = product["stock"].as_i64().unwrap_or_default() > 0;
            if !matches || in_stock.is_some_and(|wanted| wanted != stocked) {
                continue;
            }
            total += 1;
            *categories
                .entry(product["category"].as_str().expect("category").into())
                .or_default() += 1;
            let price = product["price_cents"].as_i64().expect("price");
            prices[bounds
                .iter()
                .rposition(|min| price >= *min)
                .expect("bucket")] += 1;
        }
        assert_eq!(page["total"], total, "{query}");
        let faceted: BTreeMap<String, u64> = page["facets"]["category"]
            .as_array()
            .expect("category facet")
            .iter()
            .map(|entry| {
                (
                    entry["value"].as_str().expect("value").to_string(),
                    entry["count"].as_u64().expect("count"),
                )
            })
            .collect();
        assert_eq!(faceted, categories, "{query}");
        let buckets: Vec<u64> = page["facets"]["price"]
            .as_array()
            .expect("price facet")
            .iter()
            .map(|entry| entry["count"].as_u64().expect("count"))
            .collect();
        assert_eq!(buckets, prices, "{query}");
        if in_stock.is_none() {
            // A bucket passed back as a filter counts what it said.
            let bucket = &page["facets"]["price"][1];
            let filtered = get_json(
                &app,
                &format!(
                    "/api/search?q=zephyr%20&min_price_cents={}&max_price_cents={}",
                    bucket["min_cents"], bucket["max_cents"]
                ),
            )
            .await;
            assert_eq!(filtered["total"], bucket["count"]);
            assert!(bucket["count"].as_u64().expect("count") > 0);
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn highlights_mark_matches_and_escape_html() {
    let app = spawn_app().await;
    shelve(
        &app,
        vec![book(
            "<script>alert(1)</script> Dragon & Co",
            "Eve \"Quote\" O'Hara",
            999,
            1,
            "tests",
            "Where <b>dragons</b> & knights meet.",
        )],
    )
    .await;
    let page = get_json(&app, "/api/search?q=dragon").await;
    let item = &page["items"][0];
    assert_eq!(
        item["highlights"]["title"],
        "&lt;script&gt;alert(1)&lt;/script&gt; <mark>Dragon</mark> &amp; Co"
    );
    assert_eq!(
        item["highlights"]["description"],
        "Where &lt;b&gt;<mark>dragons</mark>&lt;/b&gt; &amp; knights meet."
    );
    // The product itself is as stored (JSON carries it safely).
    assert_eq!(item["title"], "<script>alert(1)</script> Dragon & Co");
    assert!(item["score"].as_f64().expect("score") > 0.0);
    app.shutdown().await;
}

#[tokio::test]
async fn min_version_waits_for_the_index_and_the_admin_sees_its_lag() {
    // Commits are rare here, so only waiting makes a change searchable this soon.
    let app = spawn_app_with(|config| config.search.search_commit_ms = 1500).await;
    let ids = shelve(
        &app,
        vec![book("Quiet Harbour", "Ann Lee", 999, 1, "sea", "Boats.")],
    )
    .await;
    let admin = app.admin_token().await;
    let changed = app
        .patch(
            &format!("/api/products/{}", ids[0]),
            Some(&admin),
            json!({"title": "Stormy Harbour"}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let version = changed.json::<Value>().await.expect("json")["version"]
        .as_u64()
        .expect("version");
    let page = get_json(
        &app,
        &format!(
            "/api/search?q=stormy&product_id={}&min_version={version}",
            ids[0]
        ),
    )
    .await;
    assert_eq!(titles_of(&page), ["Stormy Harbour"]);
    assert_problem(
        app.get(
            &format!("/api/search?q=stormy&product_id={}&min_version=99", ids[0]),
            None,
        )
        .await,
        503,
        "not_yet_visible",
    )
    .await;
    assert_problem(
        app.get("/api/search?q=stormy&min_version=2", None).await,
        422,
        "validation_failed",
    )
    .await;

    app.search_caught_up().await;
    let projections = app
        .request(reqwest::Method::GET, "/api/admin/projections", Some(&admin))
        .send()
        .await
        .expect("sent")
        .json::<Value>()
        .await
        .expect("json");
    let search = projections
        .as_array()
        .expect("a list")
        .iter()
        .find(|report| report["name"] == "search")
        .unwrap_or_else(|| panic!("search in {projections}"))
        .clone();
    assert_eq!(search["lag_events"], 0, "{search}");
    assert!(search["position"].as_i64().expect("position") > 0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_removed_product_is_found_no_more_nor_counted() {
    let app = spawn_app().await;
    let ids = shelve(&app, dragons()).await;
    let admin = app.admin_token().await;
    // "Desert Dragons": the second book, at version 1.
    let removed = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/products/{}", ids[1]),
            Some(&admin),
        )
        .header("If-Match", "\"1\"")
        .send()
        .await
        .expect("sent");
    assert_eq!(removed.status(), 200);
    app.search_caught_up().await;

    let page = get_json(&app, "/api/search?q=dragon%20&facets=category,price").await;
    let mut titles = titles_of(&page);
    titles.sort();
    assert_eq!(
        titles,
        ["Drago the Cat", "Dragon Flight", "Gardens of the Moon"]
    );
    assert_eq!(page["total"], 3, "{page}");
    let fantasy = page["facets"]["category"]
        .as_array()
        .expect("categories")
        .iter()
        .find(|facet| facet["value"] == "fantasy")
        .unwrap_or_else(|| panic!("fantasy in {page}"));
    assert_eq!(fantasy["count"], 1, "only Dragon Flight is left: {page}");
    let priced: u64 = page["facets"]["price"]
        .as_array()
        .expect("prices")
        .iter()
        .map(|bucket| bucket["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(priced, 3, "{page}");
    assert_eq!(
        searched(&app, "q=dragon%20&max_price_cents=1000").await,
        ["Drago the Cat"],
        "the removed book cost 8.99"
    );
    let listed = get_json(&app, "/api/products?search=dragon").await;
    assert!(
        titles_of(&listed)
            .iter()
            .all(|title| title != "Desert Dragons"),
        "{listed}"
    );
    app.shutdown().await;
}

fn config_in(app: &TestApp, dir: &Path) -> eshop_api::config::Config {
    let mut config = test_config(&app.database_url, &app.namespace);
    config.search = SearchConfig::in_dir(dir.to_path_buf());
    config
}

#[tokio::test]
async fn one_writer_per_directory_and_a_deleted_or_corrupt_index_rebuilds_itself() {
    let dir = std::env::temp_dir().join(format!(
        "eshop-search-rebuild-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let dir_for_app = dir.clone();
    let mut app =
        spawn_app_with(move |config| config.search = SearchConfig::in_dir(dir_for_app)).await;
    shelve(&app, dragons()).await;

    // A second process on the same directory is refused, with a clear reason.
    let refused = start(&config_in(&app, &dir)).await.err().expect("refused");
    let reason = refused.to_string();
    assert!(
        reason.contains("in use by another eshop process"),
        "{reason}"
    );
    assert!(reason.contains("ESHOP_SEARCH_DIR"), "{reason}");

    app.stop().await;
    std::fs::remove_dir_all(&dir).expect("index deleted");
    let running = start(&config_in(&app, &dir))
        .await
        .expect("starts without an index");
    assert!(running
        .state
        .search
        .as_ref()
        .expect("search")
        .catalog()
        .index
        .rebuilt());
    let replaced = TestApp::around(&app, running);
    replaced.search_caught_up().await;
    assert_eq!(searched(&replaced, "q=drag").await.len(), 4);
    let mut app = replaced;

    app.stop().await;
    std::fs::write(dir.join("meta.json"), b"{ not an index").expect("index damaged");
    let running = start(&config_in(&app, &dir))
        .await
        .expect("starts over a damaged index");
    assert!(running
        .state
        .search
        .as_ref()
        .expect("search")
        .catalog()
        .index
        .rebuilt());
    let replaced = TestApp::around(&app, running);
    replaced.search_caught_up().await;
    assert_eq!(searched(&replaced, "q=drag").await.len(), 4);
    let _ = std::fs::remove_dir_all(&dir);
    replaced.shutdown().await;
}

/// A child process killed when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(app: &TestApp, port: u16, dir: &Path, commit_ms: u64) -> Process {
    let child = Command::new(env!("CARGO_BIN_EXE_eshop"))
        .args(["serve", "--role", "api"])
        .env("DATABASE_URL", &app.database_url)
        .env("NATS_URL", eshop_infra::testing::nats_url())
        .env("ESHOP_NATS_PREFIX", &app.namespace)
        .env(
            "REDIS_URL",
            std::env::var("ESHOP_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        )
        .env("ESHOP_REDIS_PREFIX", format!("{}:", app.namespace))
        .env("ESHOP_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("ESHOP_ENV", "test")
        .env("ESHOP_JWT_SECRET", "test-secret-not-the-default-0123456789")
        .env("ESHOP_THROTTLE", "false")
        .env("ESHOP_SEARCH_DIR", dir)
        .env("ESHOP_SEARCH_COMMIT_MS", commit_ms.to_string())
        .env("ESHOP_SEARCH_BATCH", "3")
        .env("ESHOP_DB_POOL_SIZE", "4")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("eshop starts");
    Process(child)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

async fn search_at(port: u16, query: &str) -> Option<Value> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/api/search?{query}"))
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    response.json().await.ok()
}

#[tokio::test]
async fn a_killed_process_resumes_from_its_last_commit_without_loss_or_duplicates() {
    // The in-process app writes (and builds the read models); the child only serves searches
    // from an index of its own.
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "eshop-search-kill-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let first: Vec<Value> = (0..6)
        .map(|n| {
            book(
                &format!("Kestrel {n}"),
                "Ro Vale",
                100 + n,
                1,
                "birds",
                "wings",
            )
        })
        .collect();
    let ids = shelve(&app, first).await;

    // First run: commits quickly, so these six are committed.
    let port = free_port();
    let child = serve(&app, port, &dir, 50);
    eventually(
        Duration::from_secs(60),
        "the child to index the first six",
        || async move {
            search_at(port, "q=kestrel&limit=100")
                .await
                .filter(|page| page["total"] == 6)
                .map(|_| ())
        },
    )
    .await;
    drop(child);

    // Second run: never commits on its own; it applies more changes and is killed mid-way.
    let port = free_port();
    let mut child = serve(&app, port, &dir, 3_600_000);
    eventually(
        Duration::from_secs(60),
        "the second child to serve",
        || async move { search_at(port, "q=kestrel").await.map(|_| ()) },
    )
    .await;
    for n in 6..12 {
        add(
            &app,
            &admin,
            book(
                &format!("Kestrel {n}"),
                "Ro Vale",
                100 + n,
                1,
                "birds",
                "wings",
            ),
        )
        .await;
    }
    for id in &ids[..3] {
        let changed = app
            .patch(
                &format!("/api/products/{id}"),
                Some(&admin),
                json!({"price_cents": 7777}),
            )
            .await;
        assert_eq!(changed.status(), 200);
    }
    app.search_caught_up().await;
    // Let the child apply what the stream holds, uncommitted; then kill it (SIGKILL).
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.0.kill().expect("killed");
    let _ = child.0.wait();
    drop(child);

    // Third run: resumes from its last commit; nothing lost, nothing twice.
    let port = free_port();
    let _child = serve(&app, port, &dir, 50);
    let page = eventually(
        Duration::from_secs(60),
        "the third child to catch up",
        || async move {
            search_at(port, "q=kestrel&limit=100").await.filter(|page| {
                page["total"] == 12
                    && page["items"].as_array().is_some_and(|items| {
                        items
                            .iter()
                            .filter(|item| item["price_cents"] == 7777)
                            .count()
                            == 3
                    })
            })
        },
    )
    .await;
    let items = page["items"].as_array().expect("items");
    let unique: HashSet<&str> = items
        .iter()
        .map(|item| item["id"].as_str().expect("id"))
        .collect();
    assert_eq!((items.len(), unique.len()), (12, 12));
    let _ = std::fs::remove_dir_all(&dir);
    app.shutdown().await;
}
