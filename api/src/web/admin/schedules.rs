//! Schedules (what django-celery-beat's admin gives): the list, a new one (cron, interval or
//! one time), and one schedule's page: pause, resume, a new time, and its runs as they come.

use std::time::Duration;

use axum::extract::Path;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::background::jobs::JOB_KINDS;
use crate::web::admin::live::{self, Update};
use crate::web::admin::{form_time, pretty, segment, table, when, Console, Empty};
use crate::web::form::Form;
use crate::web::page::csrf_field;

/// How often a schedule's page looks for new runs.
const POLL: Duration = Duration::from_secs(1);
/// Runs a schedule's page shows.
const RUNS: &str = "20";

#[derive(Deserialize)]
pub struct Schedule {
    id: String,
    name: String,
    job_kind: String,
    #[serde(default)]
    params: Value,
    cron: Option<String>,
    every_seconds: Option<i64>,
    run_at: Option<DateTime<Utc>>,
    enabled: bool,
    builtin: bool,
    updated_at: DateTime<Utc>,
}

impl Schedule {
    fn link(&self) -> String {
        format!("/admin/schedules/{}", segment(&self.id))
    }

    /// When it runs, in words.
    fn timing(&self) -> String {
        match (&self.cron, self.every_seconds, &self.run_at) {
            (Some(cron), _, _) => format!("cron {cron}"),
            (_, Some(seconds), _) => format!("every {seconds} s"),
            (_, _, Some(at)) => format!("once at {}", when(at)),
            _ => "never".to_string(),
        }
    }

    fn state(&self) -> &'static str {
        if self.enabled {
            "active"
        } else {
            "paused"
        }
    }
}

#[derive(Deserialize)]
pub struct Schedules {
    items: Vec<Schedule>,
}

#[derive(Deserialize)]
pub struct Run {
    tick: DateTime<Utc>,
    status: String,
    owner: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    error: Option<String>,
    result: Option<Value>,
}

#[derive(Deserialize)]
pub struct Runs {
    items: Vec<Run>,
}

pub async fn list(console: Console) -> Response {
    let answer = console.get::<Schedules>("/api/admin/schedules").await;
    console.render("Schedules", answer, |schedules| {
        html! {
            h1 { "Schedules" }
            (table(
                "schedules",
                "schedule",
                &["Name", "Job", "When", "State", "Changed"],
                &schedules.items,
                |schedule| html! {
                    td { a href=(schedule.link()) { (schedule.name) } @if schedule.builtin { " " span class="muted" { "(built in)" } } }
                    td { code { (schedule.job_kind) } }
                    td { (schedule.timing()) }
                    td { span class="status" data-status=(schedule.state()) { (schedule.state()) } }
                    td { (when(&schedule.updated_at)) }
                },
            ))
            h2 { "New schedule" }
            form id="new-schedule" class="stacked" method="post" action="/admin/schedules" {
                (csrf_field(&console.visitor))
                label for="name" { "Name" }
                input id="name" name="name" required maxlength="100";
                label for="job_kind" { "Job" }
                select id="job_kind" name="job_kind" {
                    @for kind in JOB_KINDS { option value=(kind) { (kind) } }
                }
                label for="params" { "Parameters (JSON, optional)" }
                input id="params" name="params" placeholder="{\"days\": 7}";
                (timing_fields("interval"))
                button type="submit" { "Create" }
            }
        }
    })
}

/// The three ways to say when (`kind` picks one), as the new and the re-time forms ask.
fn timing_fields(checked: &str) -> Markup {
    html! {
        fieldset class="timing" {
            legend { "When" }
            @for (kind, label) in [("cron", "Cron"), ("interval", "Every"), ("once", "Once")] {
                label class="inline" {
                    input type="radio" name="kind" value=(kind) checked[kind == checked];
                    " " (label)
                }
            }
            label for="cron" { "Cron expression (UTC)" }
            input id="cron" name="cron" placeholder="0 0 9 * * Mon";
            label for="every_seconds" { "Every … seconds" }
            input id="every_seconds" name="every_seconds" type="number" min="1" placeholder="10";
            label for="run_at" { "Once at (UTC)" }
            input id="run_at" name="run_at" type="datetime-local";
        }
    }
}

/// A form's time: `kind` says which of the fields counts.
#[derive(Deserialize, Default)]
pub struct Timing {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    cron: String,
    #[serde(default)]
    every_seconds: String,
    #[serde(default)]
    run_at: String,
}

impl Timing {
    /// The API's field for this time; what does not parse goes as typed, for the API to name.
    fn fields(&self) -> Map<String, Value> {
        let mut fields = Map::new();
        match self.kind.as_str() {
            "cron" => {
                fields.insert("cron".into(), json!(self.cron.trim()));
            }
            "once" => {
                fields.insert("run_at".into(), json!(form_time(&self.run_at)));
            }
            _ => {
                let every = self.every_seconds.trim();
                let value = every
                    .parse::<i64>()
                    .map_or_else(|_| json!(every), |n| json!(n));
                fields.insert("every_seconds".into(), value);
            }
        }
        fields
    }
}

#[derive(Deserialize)]
pub struct NewSchedule {
    name: String,
    job_kind: String,
    #[serde(default)]
    params: String,
    #[serde(flatten)]
    timing: Timing,
}

pub async fn create(console: Console, Form(form): Form<NewSchedule>) -> Response {
    let mut body = form.timing.fields();
    body.insert("name".into(), json!(form.name));
    body.insert("job_kind".into(), json!(form.job_kind));
    let params = form.params.trim();
    if !params.is_empty() {
        let value = serde_json::from_str(params).unwrap_or_else(|_| json!(params));
        body.insert("params".into(), value);
    }
    console
        .command(
            Method::POST,
            "/api/admin/schedules",
            Some(&Value::Object(body)),
            "/admin/schedules",
            |schedule| match schedule["id"].as_str() {
                Some(id) => format!("/admin/schedules/{}?notice=created", segment(id)),
                None => "/admin/schedules".to_string(),
            },
        )
        .await
}

pub async fn show(console: Console, Path(id): Path<String>) -> Response {
    let path = format!("/api/admin/schedules/{}", segment(&id));
    let answer = console.get::<Schedule>(&path).await;
    let runs = console
        .get::<Runs>(&format!("{path}/runs?limit={RUNS}"))
        .await
        .map(|runs| runs.items)
        .unwrap_or_default();
    console.render("Schedule", answer, |schedule| {
        let link = schedule.link();
        html! {
            h1 { (schedule.name) }
            dl class="facts" {
                dt { "Job" } dd { code { (schedule.job_kind) } }
                dt { "Parameters" } dd { code { (schedule.params) } }
                dt { "When" } dd id="timing" { (schedule.timing()) }
                dt { "State" } dd { span id="schedule-state" class="status" data-status=(schedule.state()) { (schedule.state()) } }
            }
            @if schedule.enabled {
                form id="pause" class="inline" method="post" action={ (link) "/pause" } {
                    (csrf_field(&console.visitor))
                    button type="submit" class="secondary" { "Pause" }
                }
            } @else {
                form id="resume" class="inline" method="post" action={ (link) "/resume" } {
                    (csrf_field(&console.visitor))
                    button type="submit" { "Resume" }
                }
            }
            h2 { "Runs" }
            div id="runs-live" data-live={ (link) "/runs/live" } { (runs_table(&runs)) }
            h2 { "New time" }
            form id="retime" class="stacked" method="post" action={ (link) "/retime" } {
                (csrf_field(&console.visitor))
                (timing_fields(match (&schedule.cron, schedule.every_seconds) {
                    (Some(_), _) => "cron",
                    (_, Some(_)) => "interval",
                    _ => "once",
                }))
                button type="submit" { "Re-time" }
            }
        }
    })
}

fn runs_table(runs: &[Run]) -> Markup {
    table(
        "runs",
        "run",
        &[
            "Tick", "Status", "Started", "Finished", "Replica", "Outcome",
        ],
        runs,
        |run| {
            html! {
                td { (when(&run.tick)) }
                td { span class="status" data-status=(run.status) { (run.status) } }
                td { (when(&run.started_at)) }
                td { @if let Some(finished) = &run.finished_at { (when(finished)) } }
                td { (run.owner) }
                td {
                    @if let Some(error) = &run.error { span class="field-error" { (error) } }
                    @if let Some(result) = &run.result { code { (pretty(result)) } }
                }
            }
        },
    )
}

/// The runs table each time a run starts or ends.
pub async fn live_runs(console: Console, Path(id): Path<String>) -> impl IntoResponse {
    let path = format!("/api/admin/schedules/{}/runs?limit={RUNS}", segment(&id));
    live::poll(POLL, move || {
        let console = console.clone();
        let path = path.clone();
        async move {
            let runs = console.get::<Runs>(&path).await.ok()?;
            Some(Update::new(runs_table(&runs.items), false))
        }
    })
}

async fn change(console: &Console, id: &str, body: Value, notice: &str) -> Response {
    let link = format!("/admin/schedules/{}", segment(id));
    console
        .command(
            Method::PATCH,
            &format!("/api/admin/schedules/{}", segment(id)),
            Some(&body),
            &link,
            |_| format!("{link}?notice={notice}"),
        )
        .await
}

pub async fn pause(console: Console, Path(id): Path<String>, Form(_): Form<Empty>) -> Response {
    change(&console, &id, json!({"enabled": false}), "paused").await
}

pub async fn resume(console: Console, Path(id): Path<String>, Form(_): Form<Empty>) -> Response {
    change(&console, &id, json!({"enabled": true}), "resumed").await
}

pub async fn retime(
    console: Console,
    Path(id): Path<String>,
    Form(timing): Form<Timing>,
) -> Response {
    change(&console, &id, Value::Object(timing.fields()), "retimed").await
}
