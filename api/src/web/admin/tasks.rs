//! Background tasks (what Flower shows for Celery): the list, one task with its progress
//! following it live until it ends, its result; and a sales report to start.

use std::time::Duration;

use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::web::admin::live::{self, Update};
use crate::web::admin::{pretty, query, segment, table, task_page, when, Console};
use crate::web::form::Form;
use crate::web::page::csrf_field;

/// How often a task's page asks where it stands.
const POLL: Duration = Duration::from_millis(500);

#[derive(Deserialize)]
pub struct Task {
    id: String,
    kind: String,
    status: String,
    progress: i16,
    #[serde(default)]
    input: Value,
    result: Option<Value>,
    error: Option<Value>,
    attempts: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Task {
    /// `done` or `failed`: nothing changes any more.
    fn is_over(&self) -> bool {
        matches!(self.status.as_str(), "DONE" | "FAILED")
    }

    /// The status as the page names it (`pending`, `processing`, `done`, `failed`).
    fn status(&self) -> String {
        self.status.to_lowercase()
    }

    fn link(&self) -> String {
        format!("/admin/tasks/{}", segment(&self.id))
    }
}

#[derive(Deserialize)]
pub struct TaskPage {
    items: Vec<Task>,
    next_cursor: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct Cursor {
    #[serde(default)]
    cursor: String,
}

pub async fn list(console: Console, Query(page): Query<Cursor>) -> Response {
    let answer = console
        .get::<TaskPage>(&format!(
            "/api/tasks{}",
            query(&[("limit", "50"), ("cursor", &page.cursor)])
        ))
        .await;
    let today = Utc::now().date_naive().to_string();
    console.render("Tasks", answer, |tasks| {
        html! {
            h1 { "Tasks" }
            form id="sales-report" class="filters" method="post" action="/admin/tasks/sales-report" {
                (csrf_field(&console.visitor))
                label { "From" input type="date" name="from" value=(today) required; }
                label { "To" input type="date" name="to" value=(today) required; }
                button type="submit" { "Start a sales report" }
            }
            (table(
                "tasks",
                "task",
                &["Task", "Kind", "Status", "Progress", "Attempts", "Queued", "Updated"],
                &tasks.items,
                |task| html! {
                    td { a href=(task.link()) { code { (task.id.get(..8).unwrap_or(&task.id)) } } }
                    td { (task.kind) }
                    td { span class="status" data-status=(task.status()) { (task.status()) } }
                    td { progress value=(task.progress) max="100" { (task.progress) "%" } }
                    td { (task.attempts) }
                    td { (when(&task.created_at)) }
                    td { (when(&task.updated_at)) }
                },
            ))
            @if let Some(next) = &tasks.next_cursor {
                nav class="pagination" { a rel="next" href={ "/admin/tasks" (query(&[("cursor", next)])) } { "Older →" } }
            }
        }
    })
}

pub async fn show(console: Console, Path(id): Path<String>) -> Response {
    let answer = console
        .get::<Task>(&format!("/api/tasks/{}", segment(&id)))
        .await;
    console.render("Task", answer, |task| {
        html! {
            h1 { "Task " code { (task.id) } }
            dl class="facts" {
                dt { "Kind" } dd { (task.kind) }
                dt { "Queued" } dd { (when(&task.created_at)) }
                dt { "Attempts" } dd { (task.attempts) }
            }
            h2 { "Input" }
            pre id="task-input" { (pretty(&task.input)) }
            @if task.is_over() {
                section id="task-live" { (standing(&task)) }
            } @else {
                section id="task-live" data-live={ (task.link()) "/live" } { (standing(&task)) }
            }
        }
    })
}

/// Where the task stands: its progress bar and status, and once it ended its result.
fn standing(task: &Task) -> Markup {
    html! {
        p {
            progress id="task-progress" value=(task.progress) max="100" { (task.progress) "%" }
            " "
            span id="task-status" class="status" data-status=(task.status()) { (task.status()) }
        }
        @if let Some(result) = &task.result {
            h2 { "Result" }
            pre id="task-result" { (pretty(result)) }
        }
        @if let Some(error) = &task.error {
            h2 { "Error" }
            pre id="task-error" { (pretty(error)) }
        }
    }
}

/// The task's standing each time it changes, until it is over.
pub async fn live(console: Console, Path(id): Path<String>) -> impl IntoResponse {
    let path = format!("/api/tasks/{}", segment(&id));
    live::poll(POLL, move || {
        let console = console.clone();
        let path = path.clone();
        async move {
            let task = console.get::<Task>(&path).await.ok()?;
            Some(Update::new(standing(&task), task.is_over()))
        }
    })
}

#[derive(Deserialize, Serialize)]
pub struct ReportDates {
    from: String,
    to: String,
}

/// Queues a sales report over the dates, then shows its task.
pub async fn sales_report(console: Console, Form(dates): Form<ReportDates>) -> Response {
    console
        .command(
            Method::POST,
            "/api/admin/reports/sales",
            Some(&dates),
            "/admin/tasks",
            task_page,
        )
        .await
}
