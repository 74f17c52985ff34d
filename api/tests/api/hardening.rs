//! What an outside probe found (issue 22), one test per finding: credentials in tasks, a task
//! list poisoned by one deep body, personal data left in tasks after an erasure, ignored
//! Idempotency-Keys, client input answered 503, one key space for every anonymous caller,
//! slow clients holding connections, missing `Cache-Control: no-store`, and the small ones.

use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::every_route::{method, EVERY_ROUTE};
use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(30);

fn async_request(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    app.request(method, path, token)
        .header("Prefer", "respond-async")
}

async fn task_rows(app: &TestApp) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT input::text, coalesce(result::text, ''), coalesce(error::text, '') FROM tasks",
    )
    .fetch_all(&app.pool)
    .await
    .expect("tasks")
}

async fn all_tasks_finished(app: &TestApp) {
    eventually(WAIT, "every task to finish", || async {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status NOT IN ('DONE', 'FAILED')")
                .fetch_one(&app.pool)
                .await
                .ok()?;
        (open == 0).then_some(())
    })
    .await;
}

/// A JWT (three base64url parts, the first a JSON header) anywhere in the text.
fn holds_a_jwt(text: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .any(|word| word.starts_with("eyJ") && word.split('.').count() == 3)
}

// 1. A credential must not run as a task, and no task may store one.

#[tokio::test]
async fn login_and_refresh_refuse_to_run_as_tasks() {
    let app = spawn_app().await;
    let (_, _) = app.customer("rita").await;
    let (_, refresh) = app.login_pair("rita@example.com", PASSWORD).await;
    let refused = async_request(&app, Method::POST, "/api/auth/refresh", None)
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .expect("sent");
    assert_problem(refused, 400, "respond_async_not_allowed").await;
    let refused = async_request(&app, Method::POST, "/api/auth/login", None)
        .json(&json!({"email": "rita@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_problem(refused, 400, "respond_async_not_allowed").await;
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(tasks, 0, "nothing was queued");
    // The refresh token was not spent by the refusal.
    let refreshed = app
        .post("/api/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(refreshed.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn no_task_of_any_route_stores_a_credential() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let product = app.add_book(&admin, "Dune", 50).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (customer_id, customer) = app.customer("carl").await;
    let (victim_id, _) = app.customer("vic").await;
    let (_, refresh) = app.login_pair("carl@example.com", PASSWORD).await;
    let (leaving, _) = app.login_pair("carl@example.com", PASSWORD).await;
    let mut issued = vec![
        admin.clone(),
        customer.clone(),
        refresh.clone(),
        leaving.clone(),
    ];
    for (name, path) in EVERY_ROUTE {
        let method = method(name);
        let path = path
            .replace("{id}/erase", &format!("{victim_id}/erase"))
            .replace("/api/users/{id}", &format!("/api/users/{victim_id}"))
            .replace("{role}", "auditor")
            .replace("{product_id}", &product)
            .replace("/api/products/{id}", &format!("/api/products/{product}"))
            .replace("{aggregate_type}", "user")
            .replace("{aggregate_id}", &customer_id)
            .replace("{id}", "00000000-0000-0000-0000-000000000001");
        let (token, body) = match (*name, path.as_str()) {
            (_, "/api/auth/login") => (
                None,
                json!({"email": "carl@example.com", "password": PASSWORD}),
            ),
            (_, "/api/auth/refresh") => (None, json!({"refresh_token": refresh})),
            (_, "/api/auth/register") => (
                None,
                json!({"email": "new@example.com", "username": "newbie", "password": "plum-velvet-42"}),
            ),
            (_, "/api/auth/logout") => (Some(leaving.as_str()), json!({})),
            (_, "/api/users/me/deposits") => {
                (Some(customer.as_str()), json!({"amount_cents": 100}))
            }
            (_, "/api/purchases") => (
                Some(customer.as_str()),
                json!({"product_id": product, "quantity": 1, "payment_method": "balance"}),
            ),
            (_, "/api/users/me/password") => (
                Some(customer.as_str()),
                json!({"current_password": "wrong-password-1", "new_password": "plum-velvet-42"}),
            ),
            (_, path) if path.contains("/roles") => {
                (Some(admin.as_str()), json!({"role": "auditor"}))
            }
            _ => (Some(admin.as_str()), json!({})),
        };
        let response = async_request(&app, method.clone(), &path, token)
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert!(
            response.status().as_u16() < 500,
            "{name} {path}: {}",
            response.status()
        );
        // Whatever answered synchronously may hand out tokens; those must not be in a task.
        if let Ok(answer) = response.json::<Value>().await {
            for field in ["access_token", "refresh_token"] {
                if let Some(token) = answer[field].as_str() {
                    issued.push(token.to_string());
                }
            }
        }
    }
    all_tasks_finished(&app).await;
    let rows = task_rows(&app).await;
    assert!(rows.len() > 10, "most commands were queued: {}", rows.len());
    for (input, result, error) in rows {
        for text in [&input, &result, &error] {
            assert!(!holds_a_jwt(text), "a token in a task: {text}");
            for token in &issued {
                assert!(
                    !text.contains(token.as_str()),
                    "a credential in a task: {text}"
                );
            }
            assert!(
                !text.contains("refresh_token\": \"") || text.contains("[redacted]"),
                "{text}"
            );
        }
    }
    app.shutdown().await;
}

// 2. A body too deep to store is refused; a stored row that cannot be read breaks no list.

#[tokio::test]
async fn a_deep_body_is_refused_before_it_becomes_a_task() {
    let app = spawn_app().await;
    let deep = format!("{}{}", "[".repeat(127), "]".repeat(127));
    let response = async_request(&app, Method::POST, "/api/auth/register", None)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .expect("sent");
    assert_problem(response, 422, "validation_failed").await;
    let broken = async_request(&app, Method::POST, "/api/auth/register", None)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .expect("sent");
    assert_problem(broken, 400, "malformed_json").await;
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(tasks, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn an_unreadable_task_row_breaks_no_list_and_is_purged() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (customer_id, customer) = app.customer("una").await;
    // As an older version stored it: an input nested deeper than JSON decoders accept.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    sqlx::query(
        "INSERT INTO tasks (id, kind, status, input, owner_id, owner_roles)
         VALUES (gen_random_uuid(), 'command', 'PENDING', $1::jsonb, $2, '{}')",
    )
    .bind(format!("{{\"body\": {deep}}}"))
    .bind(uuid::Uuid::parse_str(&customer_id).expect("uuid"))
    .execute(&app.pool)
    .await
    .expect("stored");
    for token in [&customer, &admin] {
        let response = app.get("/api/tasks", Some(token)).await;
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.expect("json");
        let task = &page["items"][0];
        assert_eq!(task["status"], "FAILED", "{page}");
        assert_eq!(task["error"]["code"], "unreadable_task", "{page}");
        let one = app
            .get(
                &format!("/api/tasks/{}", task["id"].as_str().expect("id")),
                Some(token),
            )
            .await;
        assert_eq!(one.status(), 200);
    }
    sqlx::query("UPDATE tasks SET updated_at = now() - interval '8 days'")
        .execute(&app.pool)
        .await
        .expect("aged");
    let purged = app
        .state()
        .tasks
        .purge_finished(Duration::from_secs(7 * 24 * 3600))
        .await
        .expect("purged");
    assert_eq!(purged, 1);
    app.shutdown().await;
}

// 4. Erasure scrubs the user's tasks.

#[tokio::test]
async fn erasure_leaves_no_personal_data_in_tasks() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let email = "erin.tasks@example.com";
    let accepted: Value = async_request(&app, Method::POST, "/api/auth/register", None)
        .json(
            &json!({"email": email, "username": "erin", "password": PASSWORD,
                      "first_name": "Erinna", "last_name": "Quixotic"}),
        )
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let url = accepted["status_url"].as_str().expect("url").to_string();
    let task = eventually(WAIT, "the registration", || async {
        let task: Value = app.get(&url, None).await.json().await.ok()?;
        (task["status"] == "DONE").then_some(task)
    })
    .await;
    let user_id = task["result"]["body"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let token = app.login(email, PASSWORD).await;
    let response = async_request(&app, Method::PATCH, "/api/users/me", Some(&token))
        .json(&json!({"first_name": "Ermengarde"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    all_tasks_finished(&app).await;
    let before = task_rows(&app).await;
    assert!(before
        .iter()
        .any(|(input, _, _)| input.contains("Quixotic")));
    let erased = app
        .post(
            &format!("/api/admin/users/{user_id}/erase"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(erased.status(), 200);
    for (input, result, error) in task_rows(&app).await {
        for text in [&input, &result, &error] {
            for personal in [email, "Erinna", "Quixotic", "Ermengarde"] {
                assert!(!text.contains(personal), "{personal} in a task: {text}");
            }
        }
    }
    app.shutdown().await;
}

// 5. A non-ASCII Idempotency-Key is refused, not ignored.

#[tokio::test]
async fn a_non_ascii_idempotency_key_is_refused() {
    let app = spawn_app().await;
    let (_, token) = app.customer("ike").await;
    let key = HeaderValue::from_bytes("clé-1".as_bytes()).expect("a header value");
    for prefer in [false, true] {
        let mut request = app
            .request(Method::POST, "/api/users/me/deposits", Some(&token))
            .header("idempotency-key", key.clone())
            .json(&json!({"amount_cents": 100}));
        if prefer {
            request = request.header("Prefer", "respond-async");
        }
        let response = request.send().await.expect("sent");
        assert_problem(response, 400, "invalid_header").await;
    }
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'MoneyDeposited'")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(events, 0);
    app.shutdown().await;
}

// 6. Client input is answered 4xx, always.

fn cursor(value: Value, key: &str) -> String {
    use base64::Engine;
    let cursor = json!({"ordering": {"key": key, "descending": false}, "value": value,
                        "id": "00000000-0000-0000-0000-000000000001"});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cursor.to_string())
}

#[tokio::test]
async fn odd_cursors_and_nul_in_paths_are_client_errors() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.add_book(&admin, "Dune", 1).await;
    let auditor_token = admin.clone();
    for (value, key, ordering) in [
        (json!("abc"), "price_cents", "price_cents"),
        (json!(5), "title", "title"),
        (json!("a\u{0}b"), "title", "title"),
        (json!(1.5), "author", "author"),
        (json!("not a date"), "published_date", "published_date"),
    ] {
        let response = app
            .request(Method::GET, "/api/products", None)
            .query(&[
                ("cursor", cursor(value.clone(), key)),
                ("ordering", ordering.to_string()),
            ])
            .send()
            .await
            .expect("sent");
        assert_problem(response, 422, "validation_failed").await;
    }
    let response = app
        .get("/api/audit/streams/user/%00", Some(&auditor_token))
        .await;
    assert_problem(response, 404, "not_found").await;
    let response = app
        .get("/api/audit/streams/us%00er/x", Some(&auditor_token))
        .await;
    assert_problem(response, 404, "not_found").await;
    app.shutdown().await;
}

// 7. Anonymous callers do not share one Idempotency-Key space.

#[tokio::test]
async fn anonymous_callers_each_have_their_own_idempotency_keys() {
    let app = spawn_app_with(|config| config.client_ip_header = Some("x-real-ip".into())).await;
    for (n, address) in ["203.0.113.7", "198.51.100.9"].into_iter().enumerate() {
        let response = app
            .request(Method::POST, "/api/auth/register", None)
            .header("x-real-ip", address)
            .header("idempotency-key", "signup-1")
            .json(&json!({"email": format!("anon{n}@example.com"), "username": format!("anon{n}"), "password": PASSWORD}))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 201, "caller {address}");
        assert!(!response.headers().contains_key("idempotent-replayed"));
    }
    // The same caller repeating itself still gets its first answer.
    let again = app
        .request(Method::POST, "/api/auth/register", None)
        .header("x-real-ip", "203.0.113.7")
        .header("idempotency-key", "signup-1")
        .json(&json!({"email": "anon0@example.com", "username": "anon0", "password": PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(again.status(), 201);
    assert!(again.headers().contains_key("idempotent-replayed"));
    app.shutdown().await;
}

// 8. Slow clients: a header-read timeout and a cap on connections.

async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn clients_that_never_finish_their_headers_are_cut_off() {
    let app = spawn_app_with(|config| config.http.header_read_timeout_ms = 500).await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(app.addr).await.expect("connected");
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: eshop\r\nX-Slow: a")
            .await
            .expect("written");
        slow.push(stream);
    }
    let silent = TcpStream::connect(app.addr).await.expect("connected");
    slow.push(silent);
    // Keep trickling header bytes: a slowloris client never finishes.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for stream in &mut slow {
            let _ = stream.write_all(b"a").await;
        }
    }
    for stream in &mut slow {
        assert!(
            closed_within(stream, Duration::from_secs(10)).await,
            "the server closed it"
        );
    }
    assert_eq!(app.get("/health", None).await.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    let app = spawn_app_with(|config| {
        config.http.max_connections = 2;
        config.http.header_read_timeout_ms = 60_000;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let stream = TcpStream::connect(app.addr).await.expect("connected");
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(app.addr)
        .await
        .expect("connected (backlog)");
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: eshop\r\nConnection: close\r\n\r\n")
        .await
        .expect("written");
    let mut answer = Vec::new();
    let early =
        tokio::time::timeout(Duration::from_millis(700), third.read_to_end(&mut answer)).await;
    assert!(
        early.is_err() && answer.is_empty(),
        "answered beyond the cap: {}",
        String::from_utf8_lossy(&answer)
    );
    drop(held.pop());
    tokio::time::timeout(Duration::from_secs(10), third.read_to_end(&mut answer))
        .await
        .expect("answered once a connection ended")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held);
    app.shutdown().await;
}

// 10. Answers carrying tokens or personal data are not stored by caches.

#[tokio::test]
async fn tokens_and_personal_data_are_not_cached() {
    let app = spawn_app().await;
    let (_, token) = app.customer("cora").await;
    let login = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "cora@example.com", "password": PASSWORD}),
        )
        .await;
    let refresh: Value;
    {
        assert_eq!(login.headers()["cache-control"], "no-store");
        refresh = login.json().await.expect("json");
    }
    let refreshed = app
        .post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": refresh["refresh_token"]}),
        )
        .await;
    assert_eq!(refreshed.status(), 200);
    assert_eq!(refreshed.headers()["cache-control"], "no-store");
    let me = app.get("/api/users/me", Some(&token)).await;
    assert_eq!(me.headers()["cache-control"], "no-store");
    app.shutdown().await;
}

// 11. The small ones.

#[tokio::test]
async fn a_request_that_runs_out_of_time_gets_a_problem_408() {
    let app = spawn_app_with(|config| config.http.request_timeout_ms = 500).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connected");
    // The body never arrives in full.
    let head = "POST /api/auth/register HTTP/1.1\r\nHost: eshop\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"email\"";
    stream.write_all(head.as_bytes()).await.expect("written");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 408"), "{answer}");
    assert!(
        answer.contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_wrong_method_is_a_problem_405() {
    let app = spawn_app().await;
    let response = app
        .request(Method::DELETE, "/api/auth/login", None)
        .send()
        .await
        .expect("sent");
    let allow = response
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_problem(response, 405, "method_not_allowed").await;
    assert!(allow.contains("POST"), "Allow: {allow}");
    app.shutdown().await;
}

#[tokio::test]
async fn duplicate_json_keys_are_refused() {
    let app = spawn_app().await;
    let (_, token) = app.customer("dupe").await;
    for prefer in [false, true] {
        let mut request = app
            .request(Method::POST, "/api/users/me/deposits", Some(&token))
            .header("content-type", "application/json")
            .body(r#"{"amount_cents": 1, "amount_cents": 100000}"#);
        if prefer {
            request = request.header("Prefer", "respond-async");
        }
        let problem = assert_problem(
            request.send().await.expect("sent"),
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], "amount_cents", "{problem}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = spawn_app().await;
    let (_, token) = app.customer("lower").await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let response = app
            .client
            .get(app.url("/api/users/me"))
            .header(AUTHORIZATION, format!("{scheme} {token}"))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200, "{scheme}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn an_unfit_request_id_is_replaced() {
    let app = spawn_app().await;
    let (_, token) = app.customer("reqid").await;
    let long = "r".repeat(16 * 1024);
    let with_tab = "id\twith-tab".to_string();
    let non_ascii = HeaderValue::from_bytes("idé".as_bytes()).expect("value");
    for sent in [
        HeaderValue::from_str(&long).expect("value"),
        HeaderValue::from_str(&with_tab).expect("value"),
        non_ascii,
    ] {
        let response = app
            .request(Method::POST, "/api/users/me/deposits", Some(&token))
            .header("x-request-id", sent.clone())
            .json(&json!({"amount_cents": 1}))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200);
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(
            echoed.as_bytes() != sent.as_bytes(),
            "the unfit id was echoed"
        );
        assert!(!echoed.is_empty() && echoed.len() <= 128, "{echoed}");
    }
    let longest: i32 =
        sqlx::query_scalar("SELECT max(length(metadata->>'request_id'))::int FROM events")
            .fetch_one(&app.pool)
            .await
            .expect("metadata");
    assert!(
        longest <= 128,
        "a request id of {longest} characters was stored"
    );
    let kept = app
        .request(Method::POST, "/api/users/me/deposits", Some(&token))
        .header("x-request-id", "client-chosen-id-42")
        .json(&json!({"amount_cents": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(kept.headers()["x-request-id"], "client-chosen-id-42");
    app.shutdown().await;
}
