//! Bad input, generated: every command endpoint and the catalog query get bodies and
//! parameters built from nasty strings (NUL, lone control characters, right-to-left marks,
//! SQL, very long text, arbitrary Unicode), wrong types and unknown fields. Whatever arrives,
//! the answer is never a 5xx; a 4xx is problem+json and appends nothing.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use reqwest::Method;
use serde_json::{Map, Value};

use crate::helpers::{spawn_app, TestApp};

fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_string()),
        Just("\u{0}".to_string()),
        Just("nul\u{0}inside".to_string()),
        Just("\u{7}\u{1b}[31m".to_string()),
        Just("\u{202e}txt.exe".to_string()),
        Just("'; DROP TABLE events; --".to_string()),
        Just("\" OR 1=1 --".to_string()),
        Just("%' OR '%'='".to_string()),
        Just("\\".to_string()),
        Just("a:b & !c | d <-> e".to_string()),
        Just("😀👍🏽‍".to_string()),
        Just("x".repeat(3000)),
        Just("ann@example.com".to_string()),
        Just("4242424242424242".to_string()),
        any::<String>(),
        "\\PC{0,40}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![Just(0i64), Just(1), Just(-1), Just(i64::MAX)].prop_map(Value::from),
        (-1.0e12f64..1.0e12).prop_map(Value::from),
        nasty_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(nasty_string(), inner, 0..3)
                .prop_map(|map| Value::Object(map.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A body with some of the endpoint's own fields (so validation, not just parsing, is
/// reached), each holding anything, and now and then a field it does not know.
fn body_for(fields: &'static [&'static str]) -> impl Strategy<Value = Value> {
    (
        prop::collection::vec((prop::sample::select(fields), json_value()), 0..6),
        prop::option::of((nasty_string(), json_value())),
    )
        .prop_map(|(known, unknown)| {
            let mut body = Map::new();
            for (field, value) in known {
                body.insert(field.to_string(), value);
            }
            if let Some((field, value)) = unknown {
                body.insert(field, value);
            }
            Value::Object(body)
        })
}

/// Cases per property; `BAD_INPUT_CASES=500` digs deeper.
fn cases() -> u32 {
    std::env::var("BAD_INPUT_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(24)
}

#[derive(Clone, Copy)]
enum Caller {
    Anonymous,
    Customer,
    Admin,
}

struct Target {
    method: Method,
    path: String,
    caller: Caller,
    fields: &'static [&'static str],
}

/// A well-formed body per endpoint: mutating one field of it reaches the deeper checks (a
/// body of random shape mostly stops at parsing).
fn template(target: &Target) -> Value {
    let value = match (target.method.as_str(), target.path.as_str()) {
        ("POST", "/api/auth/register") => {
            serde_json::json!({"email": "new@example.com", "username": "newbie", "password": "plum-velvet-42", "first_name": "New", "last_name": "Bie"})
        }
        ("POST", "/api/auth/login") => {
            serde_json::json!({"email": "fuzz@example.com", "password": "plum-velvet-42"})
        }
        ("POST", "/api/auth/refresh") => serde_json::json!({"refresh_token": "0"}),
        ("PATCH", "/api/users/me") => {
            serde_json::json!({"first_name": "Fuzz", "last_name": "Er", "email": "fuzz2@example.com"})
        }
        ("POST", "/api/users/me/deposits") => serde_json::json!({"amount_cents": 100}),
        ("POST", "/api/users/me/password") => {
            serde_json::json!({"current_password": "not-the-password-1", "new_password": "plum-velvet-42"})
        }
        ("POST", "/api/purchases") => {
            serde_json::json!({"product_id": "00000000-0000-0000-0000-000000000000", "quantity": 1, "payment_method": "balance"})
        }
        ("POST", "/api/orders") | ("POST", "/api/cart/checkout") => {
            serde_json::json!({"lines": [], "payment": {"method": "card", "card": "4242 4242 4242 4242"}})
        }
        (_, path) if path.starts_with("/api/admin/schedules") => {
            serde_json::json!({"name": "n", "job_kind": "housekeeping", "params": {}, "every_seconds": 3600, "enabled": true})
        }
        (_, "/api/admin/reports/sales") => {
            serde_json::json!({"from": "2026-01-01", "to": "2026-01-31"})
        }
        ("POST", "/api/products") | ("PATCH", _) => {
            serde_json::json!({"title": "T", "author": "A", "published_date": "2000-01-01", "description": "D", "price_cents": 100, "stock": 1, "category": "c"})
        }
        _ if target.fields.contains(&"rating") => {
            serde_json::json!({"rating": 5, "comment": "fine"})
        }
        _ => serde_json::json!({"quantity": 1}),
    };
    let mut body: Map<String, Value> = value.as_object().cloned().unwrap_or_default();
    body.retain(|field, _| target.fields.contains(&field.as_str()));
    Value::Object(body)
}

fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => nasty_string().prop_map(Value::from),
        1 => prop_oneof![Just(i64::MIN), Just(-1i64), Just(0), Just(i64::MAX), Just(9_007_199_254_740_993)].prop_map(Value::from),
        1 => Just(Value::from(0.5)),
        1 => json_value(),
    ]
}

/// The template with one or two of its fields replaced by something odd.
fn mutated(template: Value) -> impl Strategy<Value = Value> {
    let fields: Vec<String> = template
        .as_object()
        .map(|body| body.keys().cloned().collect())
        .unwrap_or_default();
    prop::collection::vec((prop::sample::select(fields), odd_value()), 1..3).prop_map(
        move |changes| {
            let mut body = template.clone();
            for (field, value) in changes {
                body[field.as_str()] = value;
            }
            body
        },
    )
}

fn targets(product: &str, schedule: &str) -> Vec<Target> {
    let target = |method: Method, path: String, caller, fields| Target {
        method,
        path,
        caller,
        fields,
    };
    vec![
        target(
            Method::POST,
            "/api/auth/register".into(),
            Caller::Anonymous,
            &["email", "username", "password", "first_name", "last_name"],
        ),
        target(
            Method::POST,
            "/api/auth/login".into(),
            Caller::Anonymous,
            &["email", "password"],
        ),
        target(
            Method::POST,
            "/api/auth/refresh".into(),
            Caller::Anonymous,
            &["refresh_token"],
        ),
        target(
            Method::PATCH,
            "/api/users/me".into(),
            Caller::Customer,
            &["first_name", "last_name", "email"],
        ),
        target(
            Method::POST,
            "/api/users/me/deposits".into(),
            Caller::Customer,
            &["amount_cents"],
        ),
        target(
            Method::POST,
            "/api/users/me/password".into(),
            Caller::Customer,
            &["current_password", "new_password"],
        ),
        target(
            Method::POST,
            "/api/purchases".into(),
            Caller::Customer,
            &["product_id", "quantity", "payment_method"],
        ),
        target(
            Method::POST,
            "/api/orders".into(),
            Caller::Customer,
            &["lines", "payment"],
        ),
        target(
            Method::PUT,
            format!("/api/cart/items/{product}"),
            Caller::Customer,
            &["quantity"],
        ),
        target(
            Method::POST,
            "/api/cart/checkout".into(),
            Caller::Customer,
            &["payment"],
        ),
        target(
            Method::POST,
            format!("/api/products/{product}/reviews"),
            Caller::Customer,
            &["rating", "comment"],
        ),
        target(
            Method::POST,
            "/api/products".into(),
            Caller::Admin,
            &[
                "title",
                "author",
                "published_date",
                "description",
                "price_cents",
                "stock",
                "category",
            ],
        ),
        target(
            Method::PATCH,
            format!("/api/products/{product}"),
            Caller::Admin,
            &[
                "title",
                "author",
                "published_date",
                "description",
                "price_cents",
                "category",
            ],
        ),
        target(
            Method::POST,
            "/api/admin/schedules".into(),
            Caller::Admin,
            &[
                "name",
                "job_kind",
                "params",
                "cron",
                "every_seconds",
                "run_at",
                "enabled",
            ],
        ),
        target(
            Method::PATCH,
            format!("/api/admin/schedules/{schedule}"),
            Caller::Admin,
            &[
                "name",
                "job_kind",
                "params",
                "cron",
                "every_seconds",
                "run_at",
                "enabled",
            ],
        ),
        target(
            Method::POST,
            "/api/admin/reports/sales".into(),
            Caller::Admin,
            &["from", "to"],
        ),
        target(
            Method::POST,
            format!("/api/products/{product}/restock"),
            Caller::Admin,
            &["quantity"],
        ),
    ]
}

static ANSWERED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

async fn check(app: &TestApp, request: reqwest::RequestBuilder, what: &str) -> Result<(), String> {
    let events_before = app.event_count().await;
    let response = request.send().await.map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    ANSWERED
        .lock()
        .map(|mut answered| answered.push(status))
        .ok();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response.text().await.unwrap_or_default();
    if status >= 500 {
        return Err(format!("{what}: {status} {body}"));
    }
    if status >= 400 {
        if content_type != "application/problem+json" {
            return Err(format!("{what}: {status} as {content_type}"));
        }
        let events_after = app.event_count().await;
        if events_after != events_before {
            return Err(format!(
                "{what}: {status}, yet {} events appended",
                events_after - events_before
            ));
        }
    }
    Ok(())
}

#[test]
fn generated_bad_input_never_fails_the_server_nor_persists() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (app, customer, admin, product, schedule) = runtime.block_on(async {
        let app = spawn_app().await;
        let admin = app.admin_token().await;
        let product = app.add_book(&admin, "Dune", 100).await["id"]
            .as_str()
            .expect("id")
            .to_string();
        let (_, customer) = app.customer("fuzz").await;
        let schedule: Value = app
            .post(
                "/api/admin/schedules",
                Some(&admin),
                serde_json::json!({"name": "fuzzed", "job_kind": "housekeeping", "params": {}, "every_seconds": 3600}),
            )
            .await
            .json()
            .await
            .expect("json");
        let schedule = schedule["id"].as_str().expect("id").to_string();
        (app, customer, admin, product, schedule)
    });
    let targets = targets(&product, &schedule);
    // A runner counts its cases over every `run`: one runner per property.
    let runner = || {
        TestRunner::new(ProptestConfig {
            cases: cases(),
            failure_persistence: None,
            ..ProptestConfig::default()
        })
    };
    for target in &targets {
        let token = match target.caller {
            Caller::Anonymous => None,
            Caller::Customer => Some(customer.as_str()),
            Caller::Admin => Some(admin.as_str()),
        };
        let shapes = [
            body_for(target.fields).boxed(),
            mutated(template(target)).boxed(),
        ];
        for bodies in shapes {
            runner()
                .run(&bodies, |body| {
                    let what = format!("{} {} {body}", target.method, target.path);
                    let request = app
                        .request(target.method.clone(), &target.path, token)
                        .json(&body);
                    runtime
                        .block_on(check(&app, request, &what))
                        .map_err(TestCaseError::fail)
                })
                .unwrap_or_else(|failure| panic!("{failure}"));
        }
    }
    let queries = (
        nasty_string(),
        nasty_string(),
        prop::sample::select(
            &[
                "search",
                "title",
                "author",
                "category",
                "ordering",
                "cursor",
                "limit",
                "min_price_cents",
                "published_after",
                "in_stock",
            ][..],
        ),
    );
    runner()
        .run(&queries, |(search, value, parameter)| {
            let what = format!("GET /api/products search={search:?} {parameter}={value:?}");
            let request = app
                .request(Method::GET, "/api/products", None)
                .query(&[("search", search.as_str()), (parameter, value.as_str())]);
            runtime
                .block_on(check(&app, request, &what))
                .map_err(TestCaseError::fail)
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    let answered = ANSWERED
        .lock()
        .map(|answered| answered.clone())
        .unwrap_or_default();
    let mut by_status = std::collections::BTreeMap::new();
    for status in &answered {
        *by_status.entry(*status).or_insert(0) += 1;
    }
    eprintln!(
        "{} generated requests, answers by status: {by_status:?}",
        answered.len()
    );
    assert_eq!(answered.len(), runner_cases(&targets), "every case sent");
    runtime.block_on(app.shutdown());
}

fn runner_cases(targets: &[Target]) -> usize {
    (2 * targets.len() + 1) * cases() as usize
}

#[tokio::test]
async fn sql_in_a_search_is_just_text() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.add_book(&admin, "Dune", 1).await;
    for search in [
        "'; DROP TABLE products; --",
        "dune' OR '1'='1",
        "dune:* | !x",
    ] {
        let response = app
            .request(Method::GET, "/api/products", None)
            .query(&[("search", search)])
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200, "{search}");
        let page: Value = response.json().await.expect("json");
        assert!(page["items"].as_array().is_some(), "{search}");
    }
    // The table is still there and still searchable (the book shows once projected).
    let mut found = 0;
    for _ in 0..100 {
        let page: Value = app
            .get("/api/products?search=dune", None)
            .await
            .json()
            .await
            .expect("json");
        found = page["items"].as_array().map_or(0, Vec::len);
        if found == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(found, 1);
    app.shutdown().await;
}

/// Cases of the every-route fuzz test; `FUZZ_CASES=5000` digs deeper.
fn fuzz_cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(5000)
}

/// A segment to put where a route takes an id: a real one, or anything.
fn path_segment(real: Vec<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(real),
        1 => Just("not-a-uuid".to_string()),
        1 => Just("%00".to_string()),
        1 => Just("00000000-0000-0000-0000-000000000000".to_string()),
        1 => Just("x".repeat(300)),
        1 => "\\PC{0,12}".prop_map(|text| {
            text.bytes().map(|byte| format!("%{byte:02X}")).collect::<String>()
        }),
    ]
}

/// Header values that have broken something somewhere: too long, not ASCII, a tab, empty.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(b"respond-async".to_vec()),
        Just(b"respond-async, wait=1".to_vec()),
        Just("clé".as_bytes().to_vec()),
        Just(b"with\ttab".to_vec()),
        Just(vec![b'k'; 300]),
        Just(vec![b'r'; 16 * 1024]),
        Just(b"\"3\"".to_vec()),
        Just(b"W/\"x\"".to_vec()),
        Just(b"*".to_vec()),
        Just(b"application/json".to_vec()),
        Just(b"application/merge-patch+json; charset=utf-8".to_vec()),
        Just(b"text/plain".to_vec()),
        Just(b"https".to_vec()),
        Just(b"203.0.113.9, 10.0.0.1".to_vec()),
        Just(b"00000000-0000-0000-0000-000000000000".to_vec()),
        prop::collection::vec(0x20u8..0x7f, 0..40),
        prop::collection::vec(any::<u8>(), 0..40),
    ]
}

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"];

const FUZZED_HEADERS: [&str; 9] = [
    "prefer",
    "idempotency-key",
    "if-match",
    "x-request-id",
    "x-correlation-id",
    "content-type",
    "x-forwarded-proto",
    "x-real-ip",
    "accept",
];

/// A body of any kind: JSON of the wrong shape, nested too deep, a key twice, cut short,
/// bytes that are not text, too large.
fn any_body() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        2 => Just(None),
        3 => json_value().prop_map(|value| Some(value.to_string().into_bytes())),
        1 => (1usize..300).prop_map(|depth| Some(format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes())),
        1 => (1usize..200).prop_map(|depth| Some(format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)).into_bytes())),
        1 => Just(Some(br#"{"amount_cents": 1, "amount_cents": 2, "quantity": 1, "quantity": 2}"#.to_vec())),
        1 => Just(Some(br#"{"email": "#.to_vec())),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Some),
        1 => Just(Some(vec![b' '; 70 * 1024])),
    ]
}

#[test]
fn every_route_with_adversarial_headers_and_bodies_never_answers_5xx() {
    use crate::every_route::EVERY_ROUTE;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (app, tokens, ids) = runtime.block_on(async {
        let app = crate::helpers::spawn_app().await;
        let admin = app.admin_token().await;
        let product = app.add_book(&admin, "Dune", 100).await["id"]
            .as_str()
            .expect("id")
            .to_string();
        let (customer_id, customer) = app.customer("fuzzy").await;
        let (victim_id, _) = app.customer("victim").await;
        let tokens = vec![
            None,
            Some(format!("Bearer {admin}")),
            Some(format!("Bearer {customer}")),
            Some(format!("bearer {customer}")),
            Some("Bearer not.a.token".to_string()),
            Some("Basic YWRtaW46YWRtaW4=".to_string()),
            Some(format!("Bearer {}", "a".repeat(5000))),
        ];
        (
            app,
            tokens,
            vec![product, customer_id, victim_id, "user".to_string()],
        )
    });
    let case = (
        prop::sample::select(EVERY_ROUTE),
        prop::option::weighted(0.2, prop::sample::select(&METHODS[..])),
        prop::collection::vec(path_segment(ids), 2),
        prop::sample::select(tokens),
        prop::collection::vec(
            (prop::sample::select(&FUZZED_HEADERS[..]), header_value()),
            0..5,
        ),
        any_body(),
        prop::option::of(("\\PC{0,8}", "\\PC{0,20}")),
    );
    let mut runner = TestRunner::new(ProptestConfig {
        cases: fuzz_cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let answered = std::sync::atomic::AtomicUsize::new(0);
    // One pooled client, as real ones are: an answer given before the body was read (401,
    // 405, 413) must leave its connection fit for the next request (`http::drain_unread_body`).
    runner
        .run(
            &case,
            |((method, template), other_method, segments, token, headers, body, query)| {
                let method = other_method.unwrap_or(method);
                let mut path = template.to_string();
                for segment in &segments {
                    if let (Some(open), Some(close)) = (path.find('{'), path.find('}')) {
                        path.replace_range(open..=close, segment);
                    }
                }
                let path = path.replace(['{', '}'], "");
                let mut request = app
                    .client
                    .request(method.parse().expect("method"), app.url(&path));
                if let Some(token) = &token {
                    request = request.header("authorization", token.as_str());
                }
                for (name, value) in &headers {
                    if let Ok(value) = reqwest::header::HeaderValue::from_bytes(value) {
                        request = request.header(*name, value);
                    }
                }
                let body_length = body.as_ref().map(Vec::len);
                if let Some(body) = body {
                    request = request.body(body);
                }
                if let Some((key, value)) = &query {
                    request = request.query(&[(key.as_str(), value.as_str())]);
                }
                let what =
                    format!("{method} {path} headers={headers:?} body length={body_length:?}");
                let outcome = runtime.block_on(async {
                    let response = request.send().await.map_err(|error| {
                        let mut chain = error.to_string();
                        let mut source = std::error::Error::source(&error);
                        while let Some(cause) = source {
                            chain.push_str(&format!(": {cause}"));
                            source = cause.source();
                        }
                        format!("{what}: {chain}")
                    })?;
                    let status = response.status().as_u16();
                    let content_type = response
                        .headers()
                        .get("content-type")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let text = response.text().await.unwrap_or_default();
                    if status >= 500 {
                        return Err(format!("{what}: {status} {text}"));
                    }
                    if status >= 400
                        && method != "HEAD"
                        && content_type != "application/problem+json"
                    {
                        return Err(format!("{what}: {status} as {content_type:?}"));
                    }
                    Ok(())
                });
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                outcome.map_err(TestCaseError::fail)
            },
        )
        .unwrap_or_else(|failure| panic!("{failure}"));
    eprintln!("{} requests to every route", answered.into_inner());
    // What was queued in the background ran, and the task lists still read.
    runtime.block_on(async {
        let admin = app.admin_token().await;
        crate::helpers::eventually(std::time::Duration::from_secs(60), "the tasks to finish", || async {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM tasks WHERE status NOT IN ('DONE', 'FAILED')",
            )
            .fetch_one(&app.pool)
            .await
            .ok()?;
            (open == 0).then_some(())
        })
        .await;
        let response = app.get("/api/tasks?limit=100", Some(&admin)).await;
        assert_eq!(response.status(), 200);
        let failed_5xx: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tasks WHERE error ->> 'status' LIKE '5%' OR error ->> 'code' = 'service_unavailable'",
        )
        .fetch_one(&app.pool)
        .await
        .expect("count");
        assert_eq!(failed_5xx, 0, "a queued request failed with a 5xx");
    });
    runtime.block_on(app.shutdown());
}
