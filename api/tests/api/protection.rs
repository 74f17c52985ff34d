//! Throttling shared across replicas, login brute-force limits, security headers, CORS, and
//! the start-up refusal of a missing token key.

use eshop_api::config::ThrottleSettings;
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with, test_config, PASSWORD};
use crate::proxy::FlakyProxy;

fn strict() -> ThrottleSettings {
    ThrottleSettings {
        enabled: true,
        anonymous_commands_per_minute: 3,
        user_commands_per_minute: 100,
        reads_per_minute: 5,
        order_burst: 2,
        order_refill_seconds: 60,
        login_attempts_per_account: 3,
        login_attempts_per_address: 100,
    }
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

#[tokio::test]
async fn anonymous_commands_are_limited_per_address_across_every_replica() {
    let app = spawn_app_with(|config| config.throttle = strict()).await;
    let mut second_config = test_config(&app.database_url, &app.namespace);
    second_config.throttle = strict();
    second_config.workers = false;
    let second = eshop_api::server::start(&second_config)
        .await
        .expect("second replica");
    let second_url = format!("http://{}", second.addr);

    let mut statuses = Vec::new();
    for attempt in 0..6 {
        let base = if attempt % 2 == 0 {
            app.url("")
        } else {
            second_url.clone()
        };
        let response = app
            .client
            .post(format!("{base}/api/auth/register"))
            .json(&json!({"email": format!("u{attempt}@example.com"), "username": format!("user{attempt}"), "password": PASSWORD}))
            .send()
            .await
            .expect("sent");
        if attempt == 0 {
            assert_eq!(header(&response, "ratelimit-limit").as_deref(), Some("3"));
            assert_eq!(
                header(&response, "ratelimit-remaining").as_deref(),
                Some("2")
            );
            let reset: u64 = header(&response, "ratelimit-reset")
                .and_then(|value| value.parse().ok())
                .expect("reset");
            assert!((1..=60).contains(&reset), "{reset}");
        }
        if response.status() == 429 {
            let retry_after: u64 = header(&response, "retry-after")
                .and_then(|value| value.parse().ok())
                .expect("Retry-After");
            assert!((1..=60).contains(&retry_after));
            let problem = assert_problem(response, 429, "throttled").await;
            assert_eq!(
                problem["detail"],
                format!("Request was throttled. Expected available in {retry_after} seconds.")
            );
            statuses.push(429);
        } else {
            statuses.push(response.status().as_u16());
        }
    }
    assert_eq!(
        statuses,
        [201, 201, 201, 429, 429, 429],
        "one budget for both replicas"
    );
    second.shutdown().await.expect("stops");
    app.shutdown().await;
}

#[tokio::test]
async fn orders_take_tokens_from_a_bucket_and_reads_have_their_own_budget() {
    // Within the strict anonymous budget of three: the admin's login, a registration, a login.
    let app = spawn_app_with(|config| config.throttle = strict()).await;
    let admin = app.admin_token().await;
    let book_id = app.add_book(&admin, "Dune", 10).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (_, buyer_token) = app.customer("hal").await;
    app.post(
        "/api/users/me/deposits",
        Some(&buyer_token),
        json!({"amount_cents": 10_000}),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = app
            .post(
                "/api/purchases",
                Some(&buyer_token),
                json!({"product_id": book_id, "quantity": 1, "payment_method": "balance"}),
            )
            .await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert_problem(response, 429, "throttled").await;
        }
    }
    assert_eq!(statuses, [201, 201, 429], "a burst of two, then wait");

    let mut reads = Vec::new();
    for _ in 0..7 {
        reads.push(app.get("/api/products", None).await.status().as_u16());
    }
    assert_eq!(reads, [200, 200, 200, 200, 200, 429, 429]);
    app.shutdown().await;
}

#[tokio::test]
async fn logins_are_limited_per_account_even_with_the_right_password() {
    let app = spawn_app_with(|config| {
        config.throttle = ThrottleSettings {
            anonymous_commands_per_minute: 100,
            ..strict()
        }
    })
    .await;
    app.register("ivy@example.com", "ivy").await;
    for _ in 0..3 {
        let wrong = app
            .post(
                "/api/auth/login",
                None,
                json!({"email": "IVY@example.com", "password": "guess-guess-1"}),
            )
            .await;
        assert_problem(wrong, 401, "invalid_credentials").await;
    }
    let right = app
        .post(
            "/api/auth/login",
            None,
            json!({"email": "ivy@example.com", "password": PASSWORD}),
        )
        .await;
    assert_problem(right, 429, "throttled").await;
    // Another account from the same address is not locked out by it.
    app.register("jon@example.com", "jon").await;
    app.login_pair("jon@example.com", PASSWORD).await;
    app.shutdown().await;
}

#[tokio::test]
async fn logins_are_limited_per_client_address() {
    let app = spawn_app_with(|config| {
        config.throttle = ThrottleSettings {
            anonymous_commands_per_minute: 100,
            login_attempts_per_account: 100,
            login_attempts_per_address: 4,
            ..strict()
        }
    })
    .await;
    let mut statuses = Vec::new();
    for n in 0..6 {
        let response = app
            .post(
                "/api/auth/login",
                None,
                json!({"email": format!("nobody{n}@example.com"), "password": "guess-guess-1"}),
            )
            .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 429, 429]);
    app.shutdown().await;
}

#[tokio::test]
async fn with_redis_down_requests_go_through_and_are_counted() {
    let proxy = FlakyProxy::to_redis().await;
    let redis_url = proxy.url.clone();
    let app = spawn_app_with(move |config| {
        config.throttle = strict();
        config.redis_url = redis_url;
    })
    .await;
    proxy.cut();
    for _ in 0..8 {
        assert_eq!(app.get("/api/products", None).await.status(), 200);
    }
    let metrics = app.get("/metrics", None).await.text().await.expect("text");
    let fail_open: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("eshop_throttle_fail_open_total "))
        .and_then(|value| value.trim().parse().ok())
        .expect("the counter");
    assert!(fail_open >= 8, "{fail_open}");
    app.shutdown().await;
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = spawn_app().await;
    for response in [
        app.get("/health", None).await,
        app.get("/api/nothing-here", None).await,
        app.get("/api/users/me", None).await,
    ] {
        assert_eq!(
            header(&response, "x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(
            header(&response, "x-frame-options").as_deref(),
            Some("DENY")
        );
        assert_eq!(
            header(&response, "referrer-policy").as_deref(),
            Some("no-referrer")
        );
        assert!(header(&response, "content-security-policy")
            .is_some_and(|policy| policy.contains("frame-ancestors 'none'")));
        assert_eq!(
            header(&response, "strict-transport-security"),
            None,
            "plain HTTP"
        );
    }
    let over_tls = app
        .client
        .get(app.url("/health"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("sent");
    assert!(header(&over_tls, "strict-transport-security")
        .is_some_and(|value| value.starts_with("max-age=")));
    app.shutdown().await;
}

#[tokio::test]
async fn cors_answers_only_the_allowed_origins() {
    let app = spawn_app_with(|config| {
        config.cors_origins = vec!["https://shop.example".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/products"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://shop.example").await.expect("sent");
    assert_eq!(
        header(&allowed, "access-control-allow-origin").as_deref(),
        Some("https://shop.example")
    );
    let other = preflight("https://evil.example").await.expect("sent");
    assert_eq!(header(&other, "access-control-allow-origin"), None);
    app.shutdown().await;
}

#[tokio::test]
async fn outside_development_the_server_refuses_to_start_without_a_real_token_key() {
    let app = spawn_app().await;
    let mut config = test_config(&app.database_url, &app.namespace);
    config.workers = false;
    config.jwt_secret = eshop_api::config::DEVELOPMENT_JWT_SECRET.into();
    config.environment = "production".into();
    let refused = eshop_api::server::start(&config)
        .await
        .err()
        .expect("refused");
    assert!(
        refused.to_string().contains("ESHOP_JWT_SECRET"),
        "{refused}"
    );
    config.jwt_secret = "too-short".into();
    assert!(eshop_api::server::start(&config).await.is_err());
    config.jwt_secret = eshop_api::config::DEVELOPMENT_JWT_SECRET.into();
    config.environment = "development".into();
    let started = eshop_api::server::start(&config)
        .await
        .expect("starts in development");
    started.shutdown().await.expect("stops");
    app.shutdown().await;
}
