//! The economic calendar over HTTP: admin create/revise/delete with revision history, imports
//! (update or create, as tasks with progress, concurrent and overlapping), every list filter,
//! and the monthly schedule's run.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use eshop_commands::calendar::{import, parse, ImportReport};
use eshop_commands::{Actor, CommandBus, RetryPolicy};
use eshop_infra::PgEventStore;

use crate::feed_server::serve_feed;
use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(30);

fn gdp() -> Value {
    json!({"date": "2026-10-20", "time": "14:30", "time_zone": "America/New_York",
           "name": "GDP Report", "country": "us", "importance": "high",
           "forecast": "2.1%", "previous": "1.9%"})
}

pub async fn list(app: &TestApp, query: &str) -> Value {
    let response = app
        .get(&format!("/api/calendar/events?{query}"), None)
        .await;
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.expect("json")
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {page}"))
        .iter()
        .map(|item| item["name"].as_str().expect("name").to_string())
        .collect()
}

async fn finished_task(app: &TestApp, token: &str, accepted: Value) -> Value {
    let url = accepted["status_url"]
        .as_str()
        .expect("status_url")
        .to_string();
    eventually(WAIT, "the import task to finish", || async {
        let task: Value = app.get(&url, Some(token)).await.json().await.ok()?;
        matches!(task["status"].as_str(), Some("DONE" | "FAILED")).then_some(task)
    })
    .await
}

async fn import_over_http(app: &TestApp, admin: &str, body: String, csv: bool) -> Value {
    let response = app
        .request(
            reqwest::Method::POST,
            "/api/admin/imports/calendar",
            Some(admin),
        )
        .header(
            "content-type",
            if csv { "text/csv" } else { "application/json" },
        )
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let task = finished_task(app, admin, response.json().await.expect("json")).await;
    assert_eq!(task["status"], "DONE", "{task}");
    task
}

/// Waits until the list shows `count` entries (the read model caught up).
pub async fn listed(app: &TestApp, count: usize) {
    eventually(WAIT, "the entries in the read model", || async {
        let page: Value = app
            .get("/api/calendar/events?limit=200", None)
            .await
            .json()
            .await
            .ok()?;
        (page["items"].as_array()?.len() == count).then_some(())
    })
    .await;
}

#[tokio::test]
async fn admins_create_revise_and_delete_entries_and_each_revision_is_kept() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, customer) = app.customer("cora").await;

    assert_problem(
        app.post("/api/calendar/events", Some(&customer), gdp())
            .await,
        403,
        "forbidden",
    )
    .await;
    let created = app.post("/api/calendar/events", Some(&admin), gdp()).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(created["country"], "US");
    assert_eq!(created["time"], "14:30:00");
    assert_eq!(created["version"], 1);

    // The same date, time and name (in any case) is the same entry.
    let mut again = gdp();
    again["name"] = json!("gdp   report");
    assert_problem(
        app.post("/api/calendar/events", Some(&admin), again).await,
        409,
        "already_exists",
    )
    .await;
    let mut bad = gdp();
    bad["country"] = json!("USA");
    bad["importance"] = json!("urgent");
    bad["time_zone"] = json!("Mars/Olympus");
    let problem = assert_problem(
        app.post("/api/calendar/events", Some(&admin), bad).await,
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|error| error["field"].as_str())
        .collect();
    assert_eq!(fields, ["time_zone", "country", "importance"]);

    // Read through the cache once, so the revision must invalidate it.
    let first = app
        .get(&format!("/api/calendar/events/{id}?min_version=1"), None)
        .await;
    assert_eq!(first.status(), 200);
    assert_eq!(list(&app, "").await["items"][0]["actual"], Value::Null);

    let revised = app
        .patch(
            &format!("/api/calendar/events/{id}"),
            Some(&admin),
            json!({"actual": "2.3%", "forecast": null, "previous": "1.9%"}),
        )
        .await;
    assert_eq!(revised.status(), 200);
    let revised: Value = revised.json().await.expect("json");
    assert_eq!(revised["version"], 2);
    assert_eq!(revised["forecast"], Value::Null);
    let unchanged = app
        .patch(
            &format!("/api/calendar/events/{id}"),
            Some(&admin),
            json!({"actual": "2.3%"}),
        )
        .await;
    assert_eq!(unchanged.json::<Value>().await.expect("json")["version"], 2);
    assert_problem(
        app.patch(
            &format!("/api/calendar/events/{id}"),
            Some(&admin),
            json!({"name": "Renamed"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;

    let shown: Value = app
        .get(&format!("/api/calendar/events/{id}?min_version=2"), None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(shown["actual"], "2.3%");
    let revisions = shown["revisions"].as_array().expect("revisions");
    assert_eq!(revisions.len(), 1, "{shown}");
    assert_eq!(
        revisions[0]["changes"],
        json!({"actual": "2.3%", "forecast": null})
    );
    assert!(revisions[0]["recorded_at"].is_string());
    eventually(WAIT, "the list page to show the revision", || async {
        (list(&app, "").await["items"][0]["actual"] == "2.3%").then_some(())
    })
    .await;

    let deleted = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/calendar/events/{id}"),
            Some(&admin),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(deleted.status(), 200);
    eventually(WAIT, "the entry to be gone", || async {
        let gone = app.get(&format!("/api/calendar/events/{id}"), None).await;
        (gone.status() == 404 && names(&list(&app, "").await).is_empty()).then_some(())
    })
    .await;
    app.shutdown().await;
}

/// A week of entries, out of order, for the filters.
fn week() -> Value {
    json!([
        {"date": "2026-10-21", "time": "08:00", "name": "Ifo Business Climate", "country": "DE", "importance": "medium"},
        {"date": "2026-10-20", "time": "14:30", "name": "GDP Report", "country": "US", "importance": "high", "forecast": "2.1%"},
        {"date": "2026-10-20", "time": "14:30", "name": "Durable Goods", "country": "US", "importance": "low"},
        {"date": "2026-10-20", "time": "09:00", "name": "CPI", "country": "GB", "importance": "high", "actual": 3.2},
        {"date": "2026-10-22", "time": "13:45", "name": "Rate Decision", "country": "EU", "importance": "high"},
        {"date": "2026-10-23", "time": "01:30", "name": "Tankan", "country": "JP", "importance": "medium"}
    ])
}

/// A list page is one statement however many entries it holds (`Server-Timing` counts them),
/// and none once the page is cached.
#[tokio::test]
async fn a_list_page_is_one_statement_whatever_it_holds() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    import_over_http(&app, &admin, week().to_string(), false).await;
    listed(&app, 6).await;
    for query in [
        "limit=1",
        "limit=5",
        "limit=100&importance=high",
        "country=US&country=GB",
    ] {
        let response = app
            .get(&format!("/api/calendar/events?{query}"), None)
            .await;
        assert_eq!(response.status(), 200);
        let timing = server_timing(&response);
        assert!(timing.contains("desc=\"1 query\""), "{query}: {timing}");
        assert!(timing.contains("desc=\"miss\""), "{query}: {timing}");
        let again = app
            .get(&format!("/api/calendar/events?{query}"), None)
            .await;
        let timing = server_timing(&again);
        assert!(
            timing.contains("desc=\"0 queries\""),
            "{query} cached: {timing}"
        );
    }
}

#[tokio::test]
async fn every_filter_narrows_the_list_ordered_by_date_then_time_then_name() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let task = import_over_http(&app, &admin, week().to_string(), false).await;
    assert_eq!(task["progress"], 100);
    assert_eq!(
        task["result"],
        json!({"created": 6, "revised": 0, "unchanged": 0, "skipped": []})
    );
    listed(&app, 6).await;

    let all = list(&app, "").await;
    assert_eq!(
        names(&all),
        [
            "CPI",
            "Durable Goods",
            "GDP Report",
            "Ifo Business Climate",
            "Rate Decision",
            "Tankan"
        ]
    );
    assert_eq!(all["items"][0]["actual"], "3.2");
    assert_eq!(all["items"][0]["time_zone"], "UTC", "ESHOP_TZ by default");
    assert!(all["items"][0].get("revisions").is_none());
    assert_eq!(all["next_cursor"], Value::Null);

    let cases = [
        ("country=US", vec!["Durable Goods", "GDP Report"]),
        (
            "country=us&country=DE",
            vec!["Durable Goods", "GDP Report", "Ifo Business Climate"],
        ),
        ("country=GB,JP", vec!["CPI", "Tankan"]),
        (
            "importance=high",
            vec!["CPI", "GDP Report", "Rate Decision"],
        ),
        (
            "importance=low&importance=medium",
            vec!["Durable Goods", "Ifo Business Climate", "Tankan"],
        ),
        (
            "date=2026-10-20",
            vec!["CPI", "Durable Goods", "GDP Report"],
        ),
        (
            "from=2026-10-21&to=2026-10-22",
            vec!["Ifo Business Climate", "Rate Decision"],
        ),
        ("from=2026-10-22", vec!["Rate Decision", "Tankan"]),
        ("to=2026-10-20", vec!["CPI", "Durable Goods", "GDP Report"]),
        (
            "country=US&importance=high&date=2026-10-20",
            vec!["GDP Report"],
        ),
        ("country=FR", vec![]),
    ];
    for (query, expected) in cases {
        assert_eq!(names(&list(&app, query).await), expected, "{query}");
    }

    // Pages follow each other with the cursor, in order.
    let mut seen = Vec::new();
    let mut query = "limit=4".to_string();
    loop {
        let page = list(&app, &query).await;
        seen.extend(names(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=4&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, names(&all));

    for (query, field) in [
        ("country=USA", "country"),
        ("importance=urgent", "importance"),
        ("date=yesterday", "date"),
        ("from=2026-10-22&to=2026-10-20", "to"),
        ("date=2026-10-20&from=2026-10-20", "date"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=nope", "cursor"),
        ("colour=red", "colour"),
        ("date=2026-10-20&date=2026-10-21", "date"),
    ] {
        let problem = assert_problem(
            app.get(&format!("/api/calendar/events?{query}"), None)
                .await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn an_import_creates_revises_or_leaves_alone_and_names_the_lines_it_skipped() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let first = "date,time,name,country,importance,actual,forecast,previous\n\
                 2026-11-05,14:30,Nonfarm Payrolls,US,high,,180K,150K\n\
                 2026-11-06,10:00,\"Retail Sales, m/m\",DE,medium,,0.3%,0.1%\n\
                 2026-11-07,09:00,Trade Balance,XYZ,low,,,\n";
    let task = import_over_http(&app, &admin, first.to_string(), true).await;
    assert_eq!(
        task["result"],
        json!({"created": 2, "revised": 0, "unchanged": 0,
               "skipped": [{"line": 4, "reason": "country: must be a two-letter ISO 3166-1 country code like US"}]})
    );
    listed(&app, 2).await;

    // The figures come out: one entry changes, the other does not.
    let second = "date,time,name,country,importance,actual,forecast,previous\n\
                  2026-11-05,14:30,Nonfarm Payrolls,US,high,210K,180K,150K\n\
                  2026-11-06,10:00,\"Retail Sales, m/m\",DE,medium,,0.3%,0.1%\n";
    let task = import_over_http(&app, &admin, second.to_string(), true).await;
    assert_eq!(
        task["result"],
        json!({"created": 0, "revised": 1, "unchanged": 1, "skipped": []})
    );
    let revised: Vec<(String, Value)> = sqlx::query_as(
        "SELECT event_type, payload FROM events
          WHERE aggregate_type = 'calendar_event' ORDER BY position",
    )
    .fetch_all(&app.pool)
    .await
    .expect("events");
    assert_eq!(revised.len(), 3, "two scheduled, one revised: {revised:?}");
    assert_eq!(revised[2].0, "CalendarEventRevised");
    assert_eq!(revised[2].1["data"], json!({"actual": "210K"}));

    let payrolls = eventually(WAIT, "the revision in the read model", || async {
        let page = list(&app, "country=US").await;
        let item = page["items"][0].clone();
        (item["actual"] == "210K").then_some(item)
    })
    .await;
    let shown: Value = app
        .get(
            &format!(
                "/api/calendar/events/{}",
                payrolls["id"].as_str().expect("id")
            ),
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(shown["revisions"][0]["changes"], json!({"actual": "210K"}));

    // A feed that cannot be read at all is refused before any task starts.
    let refused = app
        .request(
            reqwest::Method::POST,
            "/api/admin/imports/calendar",
            Some(&admin),
        )
        .body("date,when\n2026-01-01,now\n")
        .send()
        .await
        .expect("sent");
    assert_problem(refused, 422, "invalid_feed").await;
    let (_, customer) = app.customer("cyril").await;
    let forbidden = app
        .request(
            reqwest::Method::POST,
            "/api/admin/imports/calendar",
            Some(&customer),
        )
        .body(first)
        .send()
        .await
        .expect("sent");
    assert_problem(forbidden, 403, "forbidden").await;
    app.shutdown().await;
}

/// Two imports of overlapping feeds at once, through two command buses (as two processes: each
/// keeps its own in-memory aggregates), then two over HTTP: every entry exists once, with one
/// `CalendarEventScheduled` and one claim, and the reports add up.
#[tokio::test]
async fn two_concurrent_overlapping_imports_leave_each_event_once() {
    let app = spawn_app().await;
    let entry = |day: u32, name: &str| {
        json!({"date": format!("2026-12-{day:02}"), "time": "10:00", "name": name,
               "country": "US", "importance": "low"})
    };
    // Days 1..=30 and 11..=40 (wrapping names): rows 11..=30 are in both.
    let first: Vec<Value> = (1..=30)
        .map(|n| entry(n % 28 + 1, &format!("E{n}")))
        .collect();
    let second: Vec<Value> = (11..=40)
        .map(|n| entry(n % 28 + 1, &format!("e{n}")))
        .collect();
    let rows =
        |feed: &Vec<Value>| parse(&Value::from(feed.clone()).to_string(), "UTC").expect("feed");
    let bus = |pool| {
        Arc::new(CommandBus::new(
            PgEventStore::new(pool),
            RetryPolicy::default(),
        ))
    };
    let (one, two) = (bus(app.pool.clone()), bus(app.pool.clone()));
    let (a, b) = tokio::join!(
        import(&one, rows(&first), Actor::System, "import-a", |_, _| {}),
        import(&two, rows(&second), Actor::System, "import-b", |_, _| {}),
    );
    let (a, b): (ImportReport, ImportReport) = (a.expect("a"), b.expect("b"));
    assert!(a.skipped.is_empty() && b.skipped.is_empty(), "{a:?} {b:?}");
    assert_eq!(a.created + a.unchanged + a.revised, 30);
    assert_eq!(b.created + b.unchanged + b.revised, 30);
    // Names differ only in case: the overlap is the same entries, unchanged but for spelling.
    assert_eq!(a.created + b.created, 40, "{a:?} {b:?}");

    let once = |app: &TestApp| {
        let pool = app.pool.clone();
        async move {
            let scheduled: Vec<(String, i64)> = sqlx::query_as(
                "SELECT aggregate_id, count(*) FROM events
                  WHERE event_type = 'CalendarEventScheduled' GROUP BY aggregate_id",
            )
            .fetch_all(&pool)
            .await
            .expect("counts");
            let claims: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM unique_claims WHERE kind = 'calendar_event_key'",
            )
            .fetch_one(&pool)
            .await
            .expect("claims");
            (scheduled, claims)
        }
    };
    let (scheduled, claims) = once(&app).await;
    assert_eq!(scheduled.len(), 40);
    assert!(
        scheduled.iter().all(|(_, count)| *count == 1),
        "{scheduled:?}"
    );
    assert_eq!(claims, 40);

    // Over HTTP, both tasks at once, with new overlapping rows.
    let admin = app.admin_token().await;
    let third: Vec<Value> = (41..=60)
        .map(|n| entry(n % 28 + 1, &format!("F{n}")))
        .collect();
    let fourth: Vec<Value> = (51..=70)
        .map(|n| entry(n % 28 + 1, &format!("F{n}")))
        .collect();
    let (c, d) = tokio::join!(
        import_over_http(&app, &admin, Value::from(third).to_string(), false),
        import_over_http(&app, &admin, Value::from(fourth).to_string(), false),
    );
    let created =
        c["result"]["created"].as_i64().expect("c") + d["result"]["created"].as_i64().expect("d");
    assert_eq!(created, 30, "{c} {d}");
    let (scheduled, claims) = once(&app).await;
    assert_eq!(scheduled.len(), 70);
    assert!(scheduled.iter().all(|(_, count)| *count == 1));
    assert_eq!(claims, 70);
    listed(&app, 70).await;
    app.shutdown().await;
}

#[tokio::test]
async fn the_monthly_calendar_import_reads_its_feed_and_can_be_retimed_or_paused() {
    let feed = std::env::temp_dir().join(format!("eshop-calendar-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(
        &feed,
        "date,time,name,country,importance\n2026-12-31,23:00,Year End,US,low\n",
    )
    .expect("feed written");
    let path = feed.to_string_lossy().to_string();
    let app = spawn_app_with(|config| {
        config.tz = "Europe/Berlin".into();
        config.calendar.calendar_feed = Some(path);
    })
    .await;
    let admin = app.admin_token().await;
    let schedules: Value = app
        .get("/api/admin/schedules", Some(&admin))
        .await
        .json()
        .await
        .expect("json");
    let builtin = schedules["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|schedule| schedule["name"] == "calendar import")
        .expect("the built-in calendar import")
        .clone();
    assert_eq!(builtin["cron"], "0 0 23 L * *");
    assert_eq!(builtin["job_kind"], "calendar_import");
    assert_eq!(builtin["builtin"], true);
    let id = builtin["id"].as_str().expect("id");
    let paused = app
        .patch(
            &format!("/api/admin/schedules/{id}"),
            Some(&admin),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(paused.status(), 200);
    let retimed = app
        .patch(
            &format!("/api/admin/schedules/{id}"),
            Some(&admin),
            json!({"cron": "0 30 22 L * *", "enabled": true}),
        )
        .await;
    assert_eq!(retimed.status(), 200);
    assert_eq!(
        retimed.json::<Value>().await.expect("json")["cron"],
        "0 30 22 L * *"
    );

    // A one-off run of the same job kind imports the feed, in the shop's zone.
    let run = run_calendar_import_now(&app, &admin).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["result"]["created"], 1);
    listed(&app, 1).await;
    assert_eq!(
        list(&app, "").await["items"][0]["time_zone"],
        "Europe/Berlin"
    );
    app.shutdown().await;
    let _ = std::fs::remove_file(feed);
}

/// Runs the scheduled calendar import once, now (a one-off schedule of its job kind), and
/// answers the finished run: `status` `succeeded` with the import's `result`, or `failed` with
/// its `error`.
pub async fn run_calendar_import_now(app: &TestApp, admin: &str) -> Value {
    let created = app
        .post(
            "/api/admin/schedules",
            Some(admin),
            json!({"name": "now", "job_kind": "calendar_import", "params": {},
                   "run_at": chrono::Utc::now()}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let one_off = created.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    eventually(WAIT, "the run to finish", || async {
        let page: Value = app
            .get(&format!("/api/admin/schedules/{one_off}/runs"), Some(admin))
            .await
            .json()
            .await
            .ok()?;
        page["items"]
            .as_array()?
            .iter()
            .find(|run| run["status"] == "succeeded" || run["status"] == "failed")
            .cloned()
    })
    .await
}

/// `eshop import calendar SOURCE [ARGS]` as a separate process against the test's database.
pub async fn eshop_import_calendar(
    app: &TestApp,
    source: &str,
    args: &[&str],
) -> std::process::Output {
    let database_url = app.database_url.clone();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_eshop"));
    command
        .args(["import", "calendar", source, "--tz", "Europe/Berlin"])
        .args(["--database-url", &database_url])
        .args(args);
    tokio::task::spawn_blocking(move || command.output().expect("eshop runs"))
        .await
        .expect("joined")
}

/// `eshop import calendar SOURCE`, its standard output as JSON.
async fn import_cli(app: &TestApp, source: &str) -> Value {
    let output = eshop_import_calendar(app, source, &[]).await;
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("the answer as JSON")
}

#[tokio::test]
async fn the_command_line_imports_a_file_or_a_url_into_the_running_shop() {
    let app = spawn_app().await;
    let file = std::env::temp_dir().join(format!("eshop-calendar-{}.csv", app.namespace));
    std::fs::write(
        &file,
        "date,time,name,country,importance,forecast\n\
         2026-11-05,14:30,Nonfarm Payrolls,US,high,180K\n\
         2026-11-06,25:00,Broken,DE,low,\n\
         2026-11-06,10:00,Ifo,DE,medium,\n",
    )
    .expect("feed written");
    let path = file.to_string_lossy().to_string();
    assert_eq!(
        import_cli(&app, &path).await,
        json!({"created": 2, "revised": 0, "unchanged": 0,
               "skipped": [{"line": 3, "reason": "time: must be a time of day like 14:30"}]})
    );
    assert_eq!(
        import_cli(&app, &path).await,
        json!({"created": 0, "revised": 0, "unchanged": 2,
               "skipped": [{"line": 3, "reason": "time: must be a time of day like 14:30"}]})
    );

    let url = serve_feed(
        json!([{"date": "2026-11-05", "time": "14:30", "name": "Nonfarm Payrolls",
                "country": "US", "importance": "high", "forecast": "180K", "actual": "210K"},
               {"date": "2026-11-07", "time": "08:00", "name": "Trade Balance",
                "country": "DE", "importance": "low"}])
        .to_string(),
    )
    .await;
    assert_eq!(
        import_cli(&app, &url).await,
        json!({"created": 1, "revised": 1, "unchanged": 0, "skipped": []})
    );
    // The relay carries what the command line appended to the running shop's read model.
    listed(&app, 3).await;
    let page = list(&app, "country=US").await;
    assert_eq!(page["items"][0]["actual"], "210K");
    assert_eq!(page["items"][0]["time_zone"], "Europe/Berlin");
    let _ = std::fs::remove_file(file);
    app.shutdown().await;
}
