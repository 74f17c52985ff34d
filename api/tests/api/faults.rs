//! Faults, each on a private server this test starts and kills (never the machine's shared
//! ones): Redis stops answering, NATS dies for five seconds under writes, Postgres restarts,
//! one of two eshop processes is killed with SIGKILL during purchases.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use eshop_infra::embedded::PrivatePostgres;

use crate::helpers::{eventually, spawn_app_with};
use crate::ledger::{assert_books_balance, outstanding, rows_behind, seed_buyers, seed_products};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// A server process of this test's own, killed when the test ends however it ends.
struct Private {
    child: Child,
    port: u16,
}

impl Private {
    fn signal(&self, name: &str) {
        Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for_port(port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "port {port} opens"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn redis_server(port: u16) -> Private {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    wait_for_port(port);
    Private { child, port }
}

fn nats_server(port: u16, store: &std::path::Path) -> Private {
    let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .unwrap_or("nats-server");
    let child = Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts");
    wait_for_port(port);
    Private { child, port }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing"))
        .trim()
        .parse()
        .expect("number")
}

#[tokio::test]
async fn while_redis_is_paused_or_killed_reads_come_from_postgres_and_no_stale_entry_follows() {
    let redis = redis_server(free_port());
    let app = spawn_app_with(|config| {
        config.redis_url = format!("redis://127.0.0.1:{}", redis.port);
        // Rate limits on, with room for this test: they count in the same Redis.
        config.throttle.enabled = true;
        config.throttle.reads_per_minute = 10_000;
    })
    .await;
    let admin = app.admin_token().await;
    let book = app.add_book(&admin, "Before the outage", 5).await;
    let id = book["id"].as_str().expect("id").to_string();
    let path = format!("/api/products/{id}");
    let read_title = |min_version: Option<u64>| {
        let path = match min_version {
            Some(version) => format!("{path}?min_version={version}"),
            None => path.clone(),
        };
        let app = &app;
        async move {
            let response = app.get(&path, None).await;
            let status = response.status();
            let body: Value = response.json().await.expect("json");
            assert_eq!(status, 200, "{path}: {body}");
            body["title"].as_str().expect("title").to_string()
        }
    };
    assert_eq!(read_title(Some(1)).await, "Before the outage");
    // Cached now.
    assert_eq!(read_title(None).await, "Before the outage");

    // Redis stops answering (paused: connections stay open and nothing comes back, the worst
    // kind of outage for a client).
    redis.signal("STOP");
    let changed = app
        .patch(&path, Some(&admin), json!({"title": "After the outage"}))
        .await;
    assert_eq!(changed.status(), 200);
    let started = Instant::now();
    assert_eq!(read_title(Some(2)).await, "After the outage");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a read without Redis answers promptly: {:?}",
        started.elapsed()
    );
    let text = app.get("/metrics", None).await.text().await.expect("text");
    assert!(
        metric(&text, "eshop_cache_fallbacks_total") >= 1.0,
        "{text}"
    );
    assert!(
        metric(&text, "eshop_throttle_fail_open_total") >= 1.0,
        "{text}"
    );

    // Redis answers again, still holding the entry cached before the change: it must never be
    // served again.
    redis.signal("CONT");
    for _ in 0..20 {
        assert_eq!(read_title(None).await, "After the outage");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Redis killed (SIGKILL: the port refuses connections), then a new one on the same port:
    // reads and a change go on from Postgres meanwhile, and afterwards show the change.
    let mut redis = redis;
    let port = redis.port;
    redis.kill();
    let fallbacks_before = metric(
        &app.get("/metrics", None).await.text().await.expect("text"),
        "eshop_cache_fallbacks_total",
    );
    let changed = app
        .patch(
            &path,
            Some(&admin),
            json!({"title": "While Redis was dead"}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let started = Instant::now();
    assert_eq!(read_title(Some(3)).await, "While Redis was dead");
    assert_eq!(read_title(None).await, "While Redis was dead");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "reads without Redis answer promptly: {:?}",
        started.elapsed()
    );
    let text = app.get("/metrics", None).await.text().await.expect("text");
    assert!(
        metric(&text, "eshop_cache_fallbacks_total") > fallbacks_before,
        "{text}"
    );
    let _redis = redis_server(port);
    for _ in 0..20 {
        assert_eq!(read_title(None).await, "While Redis was dead");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn nats_down_for_5_s_under_writes_loses_and_repeats_nothing() {
    let store = std::env::temp_dir().join(format!("eshop-nats-{}", uuid::Uuid::new_v4()));
    let port = free_port();
    let mut nats = nats_server(port, &store);
    let app = spawn_app_with(|config| config.nats_url = format!("nats://127.0.0.1:{port}")).await;
    let admin = app.admin_token().await;
    let (_, customer) = app.customer("outage").await;

    // Deposits and new books every 100 ms for about 9 s; NATS is down for 5 s in the middle.
    let writes = {
        let client = app.client.clone();
        let base = app.url("");
        let customer = customer.clone();
        let admin = admin.clone();
        tokio::spawn(async move {
            let mut books = Vec::new();
            for round in 0..90 {
                let deposit = client
                    .post(format!("{base}/api/users/me/deposits"))
                    .bearer_auth(&customer)
                    .json(&json!({"amount_cents": 100}))
                    .send()
                    .await
                    .expect("sent");
                assert_eq!(deposit.status(), 200, "deposit {round}");
                if round % 10 == 0 {
                    let book = client
                        .post(format!("{base}/api/products"))
                        .bearer_auth(&admin)
                        .json(&json!({
                            "title": format!("Written during round {round}"),
                            "author": "Outage", "published_date": "2020-01-01",
                            "price_cents": 100, "stock": 1, "category": "test",
                        }))
                        .send()
                        .await
                        .expect("sent");
                    assert_eq!(book.status(), 201, "book {round}");
                    let book: Value = book.json().await.expect("json");
                    books.push(book["id"].as_str().expect("id").to_string());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            books
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats.kill();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _nats = nats_server(port, &store);
    let books = writes.await.expect("writes");

    // Every deposit reached the users read model once: the balance and the version (register,
    // then 90 deposits) say so.
    let me: Value = eventually(Duration::from_secs(30), "the deposits", || async {
        let me: Value = app
            .get("/api/users/me", Some(&customer))
            .await
            .json()
            .await
            .ok()?;
        (me["version"] == 91).then_some(me)
    })
    .await;
    assert_eq!(me["balance_cents"], 9_000, "{me}");
    for id in &books {
        let response = app
            .get(&format!("/api/products/{id}?min_version=1"), None)
            .await;
        assert_eq!(response.status(), 200, "book {id} reached the read model");
    }
    let listed: Value = app
        .get("/api/products?author=Outage&limit=100", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        listed["items"].as_array().expect("items").len(),
        books.len()
    );
    // And every projection catches up by itself, with no one restarting anything.
    eventually(
        Duration::from_secs(30),
        "every projection caught up",
        || async {
            let text = app.get("/metrics", None).await.text().await.ok()?;
            text.lines()
                .filter(|line| line.starts_with("eshop_projection_lag_events{"))
                .all(|line| line.ends_with(" 0"))
                .then_some(())
        },
    )
    .await;
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(&store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_answers_503_promptly_and_recovers_without_losing_what_was_acknowledged()
{
    let dir = std::env::temp_dir().join(format!("eshop-pg-{}", uuid::Uuid::new_v4()));
    let mut postgres = PrivatePostgres::start(&dir.join("pg")).expect("private Postgres");
    let url = postgres.url("eshop");
    let app = spawn_app_with(|config| config.database_url = url).await;
    let (_, customer) = app.customer("restart").await;
    for _ in 0..10 {
        let deposit = app
            .post(
                "/api/users/me/deposits",
                Some(&customer),
                json!({"amount_cents": 100}),
            )
            .await;
        assert_eq!(deposit.status(), 200);
    }

    tokio::task::block_in_place(|| postgres.stop());
    for (method, path, body) in [
        ("GET", "/api/users/me", None),
        (
            "POST",
            "/api/users/me/deposits",
            Some(json!({"amount_cents": 100})),
        ),
    ] {
        let started = Instant::now();
        let response = match body {
            Some(body) => app.post(path, Some(&customer), body).await,
            None => app.get(path, Some(&customer)).await,
        };
        assert_eq!(
            response.status(),
            503,
            "{method} {path} while Postgres is down"
        );
        let problem: Value = response.json().await.expect("problem");
        assert_eq!(problem["code"], "service_unavailable");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{method} {path} answered in {:?}",
            started.elapsed()
        );
    }

    tokio::task::block_in_place(|| postgres.start_again()).expect("Postgres again");
    // The same process recovers: every acknowledged deposit is there, and new ones work.
    let deposit: Value = eventually(Duration::from_secs(30), "a deposit after", || async {
        let response = app
            .post(
                "/api/users/me/deposits",
                Some(&customer),
                json!({"amount_cents": 100}),
            )
            .await;
        (response.status() == 200).then_some(())?;
        response.json().await.ok()
    })
    .await;
    assert_eq!(deposit["balance_cents"], 1_100, "{deposit}");
    app.shutdown().await;
    drop(postgres);
    let _ = std::fs::remove_dir_all(&dir);
}

const PROCESS_SECRET: &str = "test-secret-of-the-fault-tests-0123456789";

/// The built `eshop serve` on the test's database, stream and key prefix, with every worker,
/// its own search index and no rate limits; its log goes to `dir`.
fn eshop_process(database_url: &str, namespace: &str, dir: &std::path::Path) -> Private {
    let port = free_port();
    let log = std::fs::File::create(dir.join(format!("eshop-{port}.log"))).expect("a log file");
    let child = Command::new(env!("CARGO_BIN_EXE_eshop"))
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("NATS_URL", eshop_infra::testing::nats_url())
        .env("ESHOP_NATS_PREFIX", namespace)
        .env("ESHOP_REDIS_PREFIX", format!("{namespace}:"))
        .env("ESHOP_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("ESHOP_ENV", "test")
        .env("ESHOP_JWT_SECRET", PROCESS_SECRET)
        .env("ESHOP_THROTTLE", "false")
        .env("ESHOP_SEARCH_DIR", dir.join(format!("search-{port}")))
        .env("ESHOP_MAIL_DIR", dir.join("mail"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("eshop starts");
    wait_for_port(port);
    Private { child, port }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_of_two_processes_during_200_purchases_loses_doubles_and_oversells_nothing() {
    const PRODUCTS: i64 = 10;
    const STOCK: i64 = 15;
    const BUYERS: i64 = 40;
    const BALANCE_CENTS: i64 = 2_000;
    const PURCHASES: usize = 200;

    let (database_url, pool) = eshop_infra::testing::fresh_database().await;
    let namespace = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let dir = std::env::temp_dir().join(format!("eshop-kill-{namespace}"));
    std::fs::create_dir_all(&dir).expect("a test directory");
    // The first one migrates the database before the second starts.
    let mut doomed = eshop_process(&database_url, &namespace, &dir);
    let survivor = eshop_process(&database_url, &namespace, &dir);

    let prices = seed_products(&pool, PRODUCTS, STOCK).await;
    let buyers = seed_buyers(&pool, BUYERS, BALANCE_CENTS).await;
    let keys = eshop_api::auth::TokenKeys::new(PROCESS_SECRET, Duration::from_secs(3600));
    let sessions = eshop_infra::sessions::PgSessions::new(pool.clone(), Duration::from_secs(3600));
    let now = chrono::Utc::now().timestamp();
    let mut tokens = Vec::new();
    for buyer in &buyers {
        let session = sessions.start(*buyer).await.expect("a session");
        tokens.push(keys.issue(*buyer, session.session_id, Vec::new(), now));
    }
    eventually(
        Duration::from_secs(60),
        "the seeds in the read models",
        || async { (rows_behind(&pool).await == 0).then_some(()) },
    )
    .await;

    // 200 purchases, half to each process, sent 3 ms apart (faster than either answers, so
    // many are in flight); the first process is killed (SIGKILL: no shutdown of any kind) when
    // half of them are out.
    let client = reqwest::Client::new();
    let product_ids: Vec<uuid::Uuid> = prices.keys().copied().collect();
    let mut sent = tokio::task::JoinSet::new();
    for n in 0..PURCHASES {
        if n == PURCHASES / 2 {
            doomed.signal("KILL");
        }
        let port = if n % 2 == 0 {
            doomed.port
        } else {
            survivor.port
        };
        let request = client
            .post(format!("http://127.0.0.1:{port}/api/purchases"))
            .bearer_auth(&tokens[n % tokens.len()])
            .json(&json!({
                "product_id": product_ids[n % product_ids.len()],
                "quantity": 1 + n % 2,
                "payment_method": "balance",
            }));
        sent.spawn(async move {
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    Some((status, body))
                }
                // Sent to the killed process: no answer, whatever it did.
                Err(_) => None,
            }
        });
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut confirmed_ids = Vec::new();
    let mut unanswered: usize = 0;
    while let Some(answer) = sent.join_next().await {
        match answer.expect("a purchase") {
            Some((201, body)) => {
                confirmed_ids.push(body["order_id"].as_str().expect("an id").to_string())
            }
            // Not settled within the answer's wait: it settles below like the rest.
            Some((202, _)) => {}
            Some((409, body)) => assert!(
                matches!(
                    body["code"].as_str(),
                    Some("out_of_stock" | "insufficient_balance")
                ),
                "refused for stock or money only: {body}"
            ),
            Some((status, body)) => panic!("unexpected answer {status}: {body}"),
            None => unanswered += 1,
        }
    }
    // Those sent after the kill found no one; the others were cut off in flight.
    let cut_in_flight = unanswered.saturating_sub(PURCHASES / 4);
    println!(
        "{} confirmed answers, {unanswered} purchases unanswered, {cut_in_flight} of them cut off in flight",
        confirmed_ids.len()
    );

    // The killed process comes back; together they settle everything.
    doomed.kill();
    let _restarted = eshop_process(&database_url, &namespace, &dir);
    eventually(
        Duration::from_secs(90),
        "every order settled and every read model caught up",
        || async {
            let (behind, unfinished, _, _) = outstanding(&pool).await;
            (behind == 0 && unfinished == 0).then_some(())
        },
    )
    .await;

    let books = assert_books_balance(&pool, &prices, STOCK, &buyers, BALANCE_CENTS).await;
    assert!(books.confirmed >= confirmed_ids.len() as i64);
    for id in &confirmed_ids {
        let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE id::text = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("the order");
        assert_eq!(status, "confirmed", "order {id} was answered 201");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
