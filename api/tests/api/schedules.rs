//! Schedules over HTTP: the built-in ones, admin-defined ones that take effect without a
//! restart, validation, and run history.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(30);

async fn runs(app: &TestApp, admin: &str, id: &str) -> Vec<Value> {
    let page: Value = app
        .get(
            &format!("/api/admin/schedules/{id}/runs?limit=100"),
            Some(admin),
        )
        .await
        .json()
        .await
        .expect("json");
    page["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn admins_define_schedules_that_run_without_a_restart() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;

    let listed: Value = app
        .get("/api/admin/schedules", Some(&admin))
        .await
        .json()
        .await
        .expect("json");
    let builtins: Vec<(&str, &str)> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|schedule| {
            (
                schedule["job_kind"].as_str().expect("kind"),
                schedule["cron"].as_str().expect("cron"),
            )
        })
        .collect();
    assert_eq!(
        builtins,
        [
            ("sales_summary", "0 0 22 * * *"),
            ("book_fair_announcement", "0 0 10 1 2 *"),
            ("catalog_import", "0 0 23 L * *"),
            ("housekeeping", "0 */3 * * * *"),
            ("calendar_import", "0 0 23 L * *"),
        ]
    );

    // Invalid input names its field.
    for (body, field) in [
        (
            json!({"name": "x", "job_kind": "housekeeping", "cron": "every day"}),
            "cron",
        ),
        (
            json!({"name": "x", "job_kind": "mine_bitcoin", "every_seconds": 5}),
            "job_kind",
        ),
        (
            json!({"name": "x", "job_kind": "housekeeping", "every_seconds": 0}),
            "every_seconds",
        ),
        (
            json!({"name": "x", "job_kind": "housekeeping", "cron": "* * * * * *", "every_seconds": 5}),
            "cron",
        ),
        (
            json!({"name": "x", "job_kind": "sales_report", "every_seconds": 5, "params": {"days": 0}}),
            "params",
        ),
        (
            json!({"name": "x", "job_kind": "housekeeping", "every_seconds": 5, "params": {"x": 1}}),
            "params",
        ),
    ] {
        let response = app
            .post("/api/admin/schedules", Some(&admin), body.clone())
            .await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    let (_, customer) = app.customer("cleo").await;
    let forbidden = app
        .post(
            "/api/admin/schedules",
            Some(&customer),
            json!({"name": "x", "job_kind": "housekeeping", "every_seconds": 1}),
        )
        .await;
    assert_problem(forbidden, 403, "forbidden").await;

    // An every-second housekeeping schedule starts running at once.
    let created = app
        .post(
            "/api/admin/schedules",
            Some(&admin),
            json!({"name": "tidy up", "job_kind": "housekeeping", "every_seconds": 1}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let schedule: Value = created.json().await.expect("json");
    let id = schedule["id"].as_str().expect("id").to_string();
    assert_eq!(schedule["every_seconds"], 1);
    assert_eq!(schedule["enabled"], true);
    let history = eventually(WAIT, "two runs", || async {
        let history = runs(&app, &admin, &id).await;
        (history
            .iter()
            .filter(|run| run["status"] == "succeeded")
            .count()
            >= 2)
            .then_some(history)
    })
    .await;
    let run = history
        .iter()
        .find(|run| run["status"] == "succeeded")
        .expect("a run");
    assert!(run["started_at"].is_string() && run["finished_at"].is_string());
    assert!(run["error"].is_null());
    assert_eq!(run["result"]["stalled_orders"], 0);
    assert_eq!(run["result"]["tasks_purged"], 0);

    // Paused: no new runs.
    let paused = app
        .patch(
            &format!("/api/admin/schedules/{id}"),
            Some(&admin),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(paused.status(), 200);
    assert_eq!(paused.json::<Value>().await.expect("json")["version"], 2);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let count = runs(&app, &admin, &id).await.len();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        runs(&app, &admin, &id).await.len(),
        count,
        "a paused schedule does not run"
    );

    // A stale If-Match is refused; a wrong spec on PATCH too.
    let stale = app
        .request(
            reqwest::Method::PATCH,
            &format!("/api/admin/schedules/{id}"),
            Some(&admin),
        )
        .header("If-Match", "\"1\"")
        .json(&json!({"name": "renamed"}))
        .send()
        .await
        .expect("sent");
    assert_problem(stale, 412, "version_mismatch").await;
    let bad = app
        .patch(
            &format!("/api/admin/schedules/{id}"),
            Some(&admin),
            json!({"cron": "61 * * * * *"}),
        )
        .await;
    assert_problem(bad, 422, "validation_failed").await;
    let retimed = app
        .patch(
            &format!("/api/admin/schedules/{id}"),
            Some(&admin),
            json!({"cron": "0 0 4 * * *"}),
        )
        .await;
    let retimed: Value = retimed.json().await.expect("json");
    assert_eq!(
        (retimed["cron"].as_str(), retimed["every_seconds"].as_i64()),
        (Some("0 0 4 * * *"), None)
    );

    // Built-in schedules can be paused but not deleted; others can.
    let builtin = listed["items"][0]["id"].as_str().expect("id");
    let refused = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/admin/schedules/{builtin}"),
            Some(&admin),
        )
        .send()
        .await
        .expect("sent");
    assert_problem(refused, 409, "builtin_schedule").await;
    let deleted = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/admin/schedules/{id}"),
            Some(&admin),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(deleted.status(), 200);
    let gone = app
        .get(&format!("/api/admin/schedules/{id}"), Some(&admin))
        .await;
    assert_problem(gone, 404, "not_found").await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_one_off_schedule_queues_a_task_once() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let at = chrono::Utc::now() + chrono::Duration::seconds(1);
    let created = app
        .post(
            "/api/admin/schedules",
            Some(&admin),
            json!({"name": "one report", "job_kind": "sales_report", "run_at": at, "params": {"days": 3}}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let history = eventually(WAIT, "the one run", || async {
        let history = runs(&app, &admin, &id).await;
        history
            .iter()
            .any(|run| run["status"] == "succeeded")
            .then_some(history)
    })
    .await;
    let task_id = history[0]["result"]["task_id"]
        .as_str()
        .expect("a task")
        .to_string();
    let task = eventually(WAIT, "the queued report", || async {
        let task: Value = app
            .get(&format!("/api/tasks/{task_id}"), Some(&admin))
            .await
            .json()
            .await
            .ok()?;
        (task["status"] == "DONE").then_some(task)
    })
    .await;
    assert_eq!(task["kind"], "sales_report");
    assert_eq!(task["result"]["days"].as_array().expect("days").len(), 3);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(runs(&app, &admin, &id).await.len(), 1, "once");
    app.shutdown().await;
}

async fn one_off(app: &TestApp, admin: &str, job_kind: &str, params: Value) -> String {
    let created = app
        .post(
            "/api/admin/schedules",
            Some(admin),
            json!({"name": job_kind, "job_kind": job_kind, "params": params,
                   "run_at": chrono::Utc::now()}),
        )
        .await;
    assert_eq!(created.status(), 201);
    created.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string()
}

async fn finished_run(app: &TestApp, admin: &str, id: &str) -> Value {
    eventually(WAIT, "the run to finish", || async {
        runs(app, admin, id)
            .await
            .into_iter()
            .find(|run| run["status"] == "succeeded" || run["status"] == "failed")
    })
    .await
}

#[tokio::test]
async fn the_catalog_import_adds_a_feed_once_and_does_nothing_without_one() {
    let feed = std::env::temp_dir().join(format!("eshop-feed-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(
        &feed,
        json!([
            {"title": "Persuasion", "author": "Jane Austen", "published_date": "1817-12-20",
             "price_cents": 899, "stock": 4, "category": "classics"},
            {"title": "", "author": "Nobody", "published_date": "2000-01-01",
             "price_cents": 100, "stock": 1, "category": "x"}
        ])
        .to_string(),
    )
    .expect("feed written");
    let app = spawn_app_with(|config| config.import_feed = Some(feed.clone())).await;
    let admin = app.admin_token().await;
    let first = finished_run(
        &app,
        &admin,
        &one_off(&app, &admin, "catalog_import", json!({})).await,
    )
    .await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["result"]["added"], 1);
    assert_eq!(
        first["result"]["rejected"]
            .as_array()
            .expect("rejected")
            .len(),
        1
    );
    let again = finished_run(
        &app,
        &admin,
        &one_off(&app, &admin, "catalog_import", json!({})).await,
    )
    .await;
    assert_eq!(
        (
            again["result"]["added"].as_i64(),
            again["result"]["existing"].as_i64()
        ),
        (Some(0), Some(1))
    );
    let added: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'ProductAdded'")
            .fetch_one(&app.pool)
            .await
            .expect("counts");
    assert_eq!(added, 1);
    app.shutdown().await;
    let _ = std::fs::remove_file(feed);

    let without = spawn_app().await;
    let admin = without.admin_token().await;
    let run = finished_run(
        &without,
        &admin,
        &one_off(&without, &admin, "catalog_import", json!({})).await,
    )
    .await;
    assert_eq!(run["result"]["skipped"], "no feed configured");
    without.shutdown().await;
}
