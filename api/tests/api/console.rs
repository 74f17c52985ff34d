//! The operations console (`/admin`) as a browser without JavaScript sees it: signed in through
//! the sign-in form, cookies carried by hand, forms posted with their CSRF field.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use serde_json::Value;

use crate::helpers::{eventually, spawn_app, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD};

/// Longest wait for the app to do something in the background (a task, a schedule's run).
const WAIT: Duration = Duration::from_secs(30);

/// A cookie jar and a client that does not follow redirects.
struct Browser<'a> {
    app: &'a TestApp,
    client: Client,
    cookies: BTreeMap<String, String>,
}

/// What a page answered.
struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Page {
    fn has(&self, fragment: &str) -> bool {
        self.body.contains(fragment)
    }

    fn assert_has(&self, fragments: &[&str]) {
        for fragment in fragments {
            assert!(self.has(fragment), "no {fragment} in:\n{}", self.body);
        }
    }
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            client: Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("a client"),
            cookies: BTreeMap::new(),
        }
    }

    /// Signs in through the form.
    async fn signed_in(app: &'a TestApp, email: &str, password: &str) -> Self {
        let mut browser = Self::new(app);
        browser.get("/signin").await;
        let page = browser
            .post("/signin", &[("email", email), ("password", password)])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert!(browser.cookies.contains_key("eshop_session"));
        browser
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn read(&mut self, request: reqwest::RequestBuilder) -> Page {
        let response = request
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("the page answers");
        for cookie in response.headers().get_all(SET_COOKIE) {
            let cookie = cookie.to_str().expect("a text cookie");
            let pair = cookie.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_string(), value.to_string());
                }
            }
        }
        Page {
            status: response.status(),
            location: response
                .headers()
                .get(LOCATION)
                .map(|value| value.to_str().expect("a text location").to_string()),
            body: response.text().await.expect("a body"),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(self.app.url(path));
        self.read(request).await
    }

    /// Posts a form with this browser's CSRF token.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.cookies.get("eshop_csrf").cloned().unwrap_or_default();
        let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        form.extend_from_slice(fields);
        let request = self.client.post(self.app.url(path)).form(&form);
        self.read(request).await
    }

    /// Follows a Server-Sent Events stream until a message says `done` (or `until` accepts
    /// one); returns that message.
    async fn follow(&self, path: &str, until: impl Fn(&Value) -> bool) -> Value {
        let mut response = self
            .client
            .get(self.app.url(path))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("the stream answers");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap_or_default();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let mut text = String::new();
        let reading = async {
            loop {
                let chunk = response.chunk().await.expect("a chunk").expect("more");
                text.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = text.find("\n\n") {
                    let message: String = text.drain(..end + 2).collect();
                    let data: String = message
                        .lines()
                        .filter_map(|line| line.strip_prefix("data:"))
                        .map(str::trim_start)
                        .collect();
                    if data.is_empty() {
                        continue;
                    }
                    let update: Value = serde_json::from_str(&data).expect("a JSON message");
                    if update["done"] == true || until(&update) {
                        return update;
                    }
                }
            }
        };
        tokio::time::timeout(WAIT, reading)
            .await
            .unwrap_or_else(|_| panic!("{path} never sent the awaited message"))
    }
}

async fn auditor(app: &TestApp) {
    let (id, _) = app.customer("auditor").await;
    let admin = app.admin_token().await;
    let granted = app
        .post(
            &format!("/api/users/{id}/roles"),
            Some(&admin),
            serde_json::json!({"role": "auditor"}),
        )
        .await;
    assert_eq!(granted.status(), 200);
}

#[tokio::test]
async fn an_admin_sees_every_console_page() {
    let app = spawn_app().await;
    let (shopper_id, _) = app.customer("shopper").await;
    let token = app.admin_token().await;
    // The users page reads the users read model: wait until it holds both accounts.
    eventually(WAIT, "both accounts in the users read model", || async {
        let users: Value = app
            .get("/api/users", Some(&token))
            .await
            .json()
            .await
            .ok()?;
        (users["items"].as_array()?.len() == 2).then_some(())
    })
    .await;
    let mut admin = Browser::signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;

    let overview = admin.get("/admin").await;
    assert_eq!(overview.status, StatusCode::OK);
    overview.assert_has(&[
        r#"class="layout-console""#,
        r#"id="nav-admin""#,
        r#"data-live="/admin/live""#,
        r#"id="chart-requests""#,
        r#"id="chart-purchases""#,
        r#"id="chart-lag""#,
        r#"id="status-projections""#,
    ]);
    let second = admin
        .follow("/admin/live", |update| {
            // Every chart has a value once two samples gave the rates.
            update["html"]
                .as_str()
                .is_some_and(|html| html.matches("<strong").count() == 3)
        })
        .await;
    let charts = second["html"].as_str().expect("html");
    for id in ["chart-requests", "chart-purchases", "chart-lag"] {
        assert!(charts.contains(&format!(r#"id="{id}""#)), "{charts}");
    }

    let pages: [(&str, &[&str]); 6] = [
        ("/admin/events", &[r#"id="events""#, r#"class="event""#]),
        (
            "/admin/events?aggregate_type=user&event_type=UserRegistered",
            &[r#"class="event""#, shopper_id.as_str()],
        ),
        (
            &format!("/admin/streams/user/{shopper_id}"),
            &[r#"id="history""#, r#"id="state""#, "UserRegistered"],
        ),
        (
            "/admin/projections",
            &[
                r#"id="projections""#,
                r#"class="projection""#,
                "form class=\"rebuild",
            ],
        ),
        ("/admin/mail", &[r#"id="mail""#]),
        (
            "/admin/users",
            &[
                r#"id="users""#,
                r#"class="user""#,
                "grant-role",
                "deactivate",
                "erase",
                "data-confirm",
            ],
        ),
    ];
    for (path, fragments) in pages {
        let page = admin.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        page.assert_has(fragments);
    }
    let stream = admin
        .get(&format!("/admin/streams/user/{shopper_id}"))
        .await;
    stream.assert_has(&[r#"<a href="/admin/events" aria-current="page">"#]);
    let tasks = admin.get("/admin/tasks").await;
    tasks.assert_has(&[r#"id="tasks""#, r#"id="sales-report""#]);
    let schedules = admin.get("/admin/schedules").await;
    schedules.assert_has(&[r#"id="schedules""#, r#"id="new-schedule""#]);

    // A rebuild goes to its task's page.
    let rebuild = admin.post("/admin/projections/products/rebuild", &[]).await;
    assert_eq!(rebuild.status, StatusCode::SEE_OTHER, "{}", rebuild.body);
    let task = rebuild.location.expect("the task's page");
    assert!(task.starts_with("/admin/tasks/"), "{task}");
    let page = admin.get(&task).await;
    assert_eq!(page.status, StatusCode::OK);
    page.assert_has(&[
        r#"id="task-progress""#,
        r#"id="task-status""#,
        "The task was queued.",
    ]);

    // Roles through the users page.
    let granted = admin
        .post(
            &format!("/admin/users/{shopper_id}/roles"),
            &[("role", "auditor")],
        )
        .await;
    assert_eq!(
        granted.location.as_deref(),
        Some("/admin/users?notice=granted")
    );
    eventually(WAIT, "the granted role in the read model", || async {
        let users: Value = app
            .get("/api/users", Some(&token))
            .await
            .json()
            .await
            .ok()?;
        users["items"]
            .as_array()?
            .iter()
            .any(|user| {
                user["id"] == shopper_id.as_str() && user["roles"] == serde_json::json!(["auditor"])
            })
            .then_some(())
    })
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn the_console_is_for_admins_and_auditors() {
    let app = spawn_app().await;
    let mut anonymous = Browser::new(&app);
    let page = anonymous.get("/admin/tasks").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location.as_deref(),
        Some("/signin?next=%2Fadmin%2Ftasks")
    );

    app.customer("shopper").await;
    let mut shopper = Browser::signed_in(&app, "shopper@example.com", PASSWORD).await;
    let page = shopper.get("/admin").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(!page.has(r#"id="nav-admin""#), "{}", page.body);

    auditor(&app).await;
    let mut auditor = Browser::signed_in(&app, "auditor@example.com", PASSWORD).await;
    for path in ["/admin", "/admin/events"] {
        let page = auditor.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        page.assert_has(&[r#"id="nav-admin""#]);
    }
    // The sidebar offers auditors only what they may read.
    let overview = auditor.get("/admin").await;
    assert!(!overview.has(r#"href="/admin/users""#), "{}", overview.body);
    // A command is the API's to refuse, with its own words.
    let refused = auditor
        .post("/admin/projections/products/rebuild", &[])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    refused.assert_has(&[
        r#"class="flash error""#,
        "this needs a role you do not have",
    ]);
    // Without the form's token nothing reaches the API.
    let forged = auditor
        .read(
            auditor
                .client
                .post(app.url("/admin/projections/products/rebuild"))
                .form(&[("csrf", "0".repeat(32))]),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.has("Form expired"), "{}", forged.body);

    // A session ended elsewhere no longer reads even the process's own figures.
    let kept = auditor.cookies.clone();
    let signed_out = auditor.post("/signout", &[]).await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    auditor.cookies = kept;
    let page = auditor.get("/admin").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/signin"));
    app.shutdown().await;
}

#[tokio::test]
async fn an_interval_schedule_made_through_the_form_is_listed_paused_and_resumed() {
    let app = spawn_app().await;
    let mut admin = Browser::signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let created = admin
        .post(
            "/admin/schedules",
            &[
                ("name", "Tidy up often"),
                ("job_kind", "housekeeping"),
                ("params", ""),
                ("kind", "interval"),
                ("cron", ""),
                ("every_seconds", "10"),
                ("run_at", ""),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let schedule = created.location.expect("the schedule's page");
    assert!(schedule.ends_with("?notice=created"), "{schedule}");
    let schedule = schedule.trim_end_matches("?notice=created").to_string();

    let list = admin.get("/admin/schedules").await;
    list.assert_has(&[r#"class="schedule""#, "Tidy up often", "every 10 s"]);

    let page = admin.get(&schedule).await;
    page.assert_has(&[
        r#"id="pause""#,
        r#"id="retime""#,
        r#"id="runs""#,
        "data-live=",
    ]);
    let paused = admin.post(&format!("{schedule}/pause"), &[]).await;
    assert_eq!(paused.location, Some(format!("{schedule}?notice=paused")));
    let page = admin.get(&format!("{schedule}?notice=paused")).await;
    page.assert_has(&[
        r#"id="resume""#,
        r#"data-status="paused""#,
        "The schedule is paused.",
    ]);
    let retimed = admin
        .post(
            &format!("{schedule}/retime"),
            &[
                ("kind", "cron"),
                ("cron", "0 0 9 * * *"),
                ("every_seconds", ""),
                ("run_at", ""),
            ],
        )
        .await;
    assert_eq!(retimed.status, StatusCode::SEE_OTHER, "{}", retimed.body);
    admin.get(&schedule).await.assert_has(&["cron 0 0 9 * * *"]);

    // The API's own words when the time does not parse.
    let refused = admin
        .post(
            &format!("{schedule}/retime"),
            &[("kind", "cron"), ("cron", "now and then")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    refused.assert_has(&[r#"class="flash error""#, "cron"]);
    app.shutdown().await;
}

#[tokio::test]
async fn a_schedules_runs_appear_on_its_page_as_they_happen() {
    let app = spawn_app().await;
    let mut admin = Browser::signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let created = admin
        .post(
            "/admin/schedules",
            &[
                ("name", "Every second"),
                ("job_kind", "housekeeping"),
                ("kind", "interval"),
                ("every_seconds", "1"),
            ],
        )
        .await;
    let schedule = created.location.expect("the schedule's page");
    let schedule = schedule.split('?').next().expect("a path").to_string();
    let first = admin
        .follow(&format!("{schedule}/runs/live"), |_| true)
        .await;
    let with_a_run = admin
        .follow(&format!("{schedule}/runs/live"), |update| {
            update["html"]
                .as_str()
                .is_some_and(|html| html.contains(r#"<tr class="run">"#))
        })
        .await;
    assert_eq!(first["done"], false, "{first}");
    assert!(
        with_a_run["html"]
            .as_str()
            .expect("html")
            .contains(r#"id="runs""#),
        "{with_a_run}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_task_page_follows_the_task_until_it_is_done() {
    let app = spawn_app().await;
    let mut admin = Browser::signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let started = admin
        .post(
            "/admin/tasks/sales-report",
            &[("from", "2026-01-01"), ("to", "2026-01-31")],
        )
        .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let task = started.location.expect("the task's page");
    let task = task.split('?').next().expect("a path").to_string();
    let last = admin.follow(&format!("{task}/live"), |_| false).await;
    let html = last["html"].as_str().expect("html");
    assert!(html.contains(r#"data-status="done""#), "{html}");
    assert!(html.contains(r#"value="100""#), "{html}");
    assert!(html.contains(r#"id="task-result""#), "{html}");
    // Once over, the page is no longer live.
    let page = admin.get(&task).await;
    page.assert_has(&[r#"data-status="done""#]);
    assert!(!page.has("data-live"), "{}", page.body);
    app.shutdown().await;
}

#[tokio::test]
async fn the_purchases_chart_counts_the_orders_placed_since_its_last_sample() {
    let app = spawn_app().await;
    let state = app.state();
    let (none, start) = state.orders_placed_after(None).await.expect("a count");
    assert_eq!(none, 0);
    let admin = app.admin_token().await;
    let product = app.add_book(&admin, "Dune", 5).await;
    let (_, shopper) = app.customer("buyer").await;
    let deposit = app
        .post(
            "/api/users/me/deposits",
            Some(&shopper),
            serde_json::json!({"amount_cents": 10_000}),
        )
        .await;
    assert_eq!(deposit.status(), 200);
    for _ in 0..2 {
        let bought = app
            .post(
                "/api/purchases",
                Some(&shopper),
                serde_json::json!({"product_id": product["id"], "quantity": 1, "payment_method": "balance"}),
            )
            .await;
        assert_eq!(bought.status(), 201);
    }
    let (placed, newest) = state
        .orders_placed_after(Some(start))
        .await
        .expect("a count");
    assert_eq!(placed, 2);
    assert!(newest > start);
    let (since, same) = state
        .orders_placed_after(Some(newest))
        .await
        .expect("a count");
    assert_eq!((since, same), (0, newest));
    app.shutdown().await;
}
