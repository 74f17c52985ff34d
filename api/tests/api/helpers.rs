use std::net::SocketAddr;

use eshop_api::config::{Config, HttpSettings, SearchConfig, ThrottleSettings};
use eshop_api::server::{start, Running};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};
use sqlx::PgPool;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const PASSWORD: &str = "correct-horse-9";

pub struct TestApp {
    pub addr: SocketAddr,
    pub pool: PgPool,
    pub database_url: String,
    pub namespace: String,
    pub client: reqwest::Client,
    running: Option<Running>,
}

/// Where a test's mails go as files when it points SMTP nowhere (removed at the end).
pub fn default_mail_dir(namespace: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("eshop-mail-{namespace}"))
}

/// A configuration of this test's own: its database, NATS prefix and Redis key prefix.
pub fn test_config(database_url: &str, namespace: &str) -> Config {
    Config {
        database_url: database_url.to_string(),
        nats_url: eshop_infra::testing::nats_url(),
        nats_prefix: namespace.to_string(),
        redis_url: std::env::var("ESHOP_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        redis_prefix: format!("{namespace}:"),
        cache_ttl_seconds: 60,
        own_writes_ttl_seconds: 120,
        workers: true,
        gateway_latency_ms: 0,
        db_listing_pool_size: 8,
        db_pool_size: 20,
        http_addr: "127.0.0.1:0".parse().expect("address"),
        environment: "test".into(),
        session_ttl_seconds: 3600,
        cors_origins: Vec::new(),
        client_ip_header: None,
        throttle: ThrottleSettings::off(),
        http: HttpSettings::default(),
        search: SearchConfig::temporary(),
        jwt_secret: "test-secret-not-the-default-0123456789".into(),
        access_token_ttl_seconds: 600,
        admin_email: Some(ADMIN_EMAIL.into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        command_attempts: 10,
        log_json: false,
        // Tests that look at mail point this at their own SMTP server.
        smtp_url: None,
        mail_from: "eshop <no-reply@eshop.test>".into(),
        mail_dir: default_mail_dir(namespace),
        mail_horizon_hours: 24,
        mail_retry_max_seconds: 2,
        tz: "UTC".into(),
        import_feed: None,
        task_concurrency: 4,
        task_ack_wait_seconds: 30,
        task_step_delay_ms: 0,
        schedule_poll_ms: 200,
        background: Default::default(),
        operations: Default::default(),
        web: Default::default(),
        movies: Default::default(),
        calendar: Default::default(),
        accounts: Default::default(),
        events_max_age: None,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let (database_url, pool) = eshop_infra::testing::fresh_database().await;
    let namespace = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut config = test_config(&database_url, &namespace);
    adjust(&mut config);
    let running = start(&config).await.expect("app starts");
    TestApp {
        addr: running.addr,
        pool,
        database_url,
        namespace,
        client: reqwest::Client::new(),
        running: Some(running),
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `within`.
pub async fn eventually<T, F, Fut>(within: std::time::Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

impl TestApp {
    /// Another replica over this app's database, stream and Redis prefix.
    pub async fn replica(&self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = test_config(&self.database_url, &self.namespace);
        adjust(&mut config);
        let running = start(&config).await.expect("replica starts");
        TestApp {
            addr: running.addr,
            pool: self.pool.clone(),
            database_url: self.database_url.clone(),
            namespace: self.namespace.clone(),
            client: reqwest::Client::new(),
            running: Some(running),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(Method::POST, path, token)
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(Method::PATCH, path, token)
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn register(&self, email: &str, username: &str) -> Value {
        let response = self
            .post(
                "/api/auth/register",
                None,
                json!({"email": email, "username": username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(response.status(), 201, "registering {email}");
        response.json().await.expect("json")
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        self.login_pair(email, password).await.0
    }

    /// The whole login answer: access and refresh token.
    pub async fn login_pair(&self, email: &str, password: &str) -> (String, String) {
        let response = self
            .post(
                "/api/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(response.status(), 200, "logging in {email}");
        let body: Value = response.json().await.expect("json");
        (
            body["access_token"].as_str().expect("access").to_string(),
            body["refresh_token"].as_str().expect("refresh").to_string(),
        )
    }

    /// Registers a customer and returns their id and token.
    pub async fn customer(&self, name: &str) -> (String, String) {
        let email = format!("{name}@example.com");
        let user = self.register(&email, name).await;
        let token = self.login(&email, PASSWORD).await;
        (user["id"].as_str().expect("id").to_string(), token)
    }

    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    pub async fn add_book(&self, admin: &str, title: &str, stock: i64) -> Value {
        let response = self
            .post(
                "/api/products",
                Some(admin),
                json!({
                    "title": title,
                    "author": "Frank Herbert",
                    "published_date": "1965-08-01",
                    "description": "A desert planet.",
                    "price_cents": 1999,
                    "stock": stock,
                    "category": "science-fiction",
                }),
            )
            .await;
        assert_eq!(response.status(), 201, "adding {title}");
        response.json().await.expect("json")
    }

    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .expect("counts")
    }

    pub fn state(&self) -> &eshop_api::state::AppState {
        &self.running.as_ref().expect("running").state
    }

    /// This app's database and stream, served by `running` (started by the test itself).
    pub fn around(&self, running: Running) -> TestApp {
        TestApp {
            addr: running.addr,
            pool: self.pool.clone(),
            database_url: self.database_url.clone(),
            namespace: self.namespace.clone(),
            client: reqwest::Client::new(),
            running: Some(running),
        }
    }

    /// Waits until the relay has published every event the store holds now: a write answered
    /// by the API is in the store at once but reaches the stream only when the relay runs.
    pub async fn relay_caught_up(&self) {
        eventually(
            std::time::Duration::from_secs(15),
            "the relay to publish every stored event",
            || async {
                let unpublished: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM events, relay_checkpoint relayed
                                     WHERE (events.xid, events.position)
                                         > (relayed.xid, relayed.position))",
                )
                .fetch_one(&self.pool)
                .await
                .ok()?;
                (!unpublished).then_some(())
            },
        )
        .await;
    }

    /// Waits until this app's search index holds every event the store holds now.
    pub async fn search_caught_up(&self) {
        self.relay_caught_up().await;
        let state = self.state();
        let mut stream = state
            .jetstream
            .get_stream(state.subjects.stream_name())
            .await
            .expect("the event stream");
        let target = stream
            .info()
            .await
            .expect("stream info")
            .state
            .last_sequence;
        let search = state.search.clone().expect("a search index");
        eventually(
            std::time::Duration::from_secs(15),
            "the search index to catch up",
            || {
                let search = search.clone();
                async move { (search.catalog().index.committed_sequence() >= target).then_some(()) }
            },
        )
        .await;
    }

    /// Stops the app but keeps its database and stream, to start it again.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.expect("clean shutdown");
        }
    }

    /// Starts the app again over the same database and stream (after `stop`).
    pub async fn start_again(&mut self) {
        let running = start(&test_config(&self.database_url, &self.namespace))
            .await
            .expect("app starts again");
        self.addr = running.addr;
        self.running = Some(running);
    }

    /// Stops the app and removes its streams (events and tasks) and mail files.
    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            let jetstream = running.state.jetstream.clone();
            let subjects = running.state.subjects.clone();
            running.shutdown().await.expect("clean shutdown");
            let _ = jetstream.delete_stream(subjects.stream_name()).await;
            let _ = jetstream.delete_stream(subjects.tasks_stream_name()).await;
            let _ = jetstream.delete_stream(subjects.seals_stream_name()).await;
            let _ = std::fs::remove_dir_all(default_mail_dir(&self.namespace));
        }
    }
}

/// Asserts a problem+json answer with this status and code; returns the problem.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(content_type, "application/problem+json");
    let problem: Value = response.json().await.expect("json");
    assert_eq!(problem["code"], code, "{problem}");
    assert_eq!(problem["status"], status);
    problem
}

impl Drop for TestApp {
    /// A test that did not call `shutdown` still leaves no stream behind.
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let streams = [
                running.state.subjects.stream_name(),
                running.state.subjects.tasks_stream_name(),
                running.state.subjects.seals_stream_name(),
            ];
            let _ = std::fs::remove_dir_all(default_mail_dir(&self.namespace));
            std::thread::spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async {
                    if let Ok(client) = async_nats::connect(eshop_infra::testing::nats_url()).await
                    {
                        let jetstream = async_nats::jetstream::new(client);
                        for stream in streams {
                            let _ = jetstream.delete_stream(stream).await;
                        }
                    }
                });
            })
            .join()
            .ok();
        }
    }
}

/// The `Server-Timing` header of an answer (empty when absent).
pub fn server_timing(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}
