//! What the task worker runs: a queued command (replayed through the router as its user), a
//! sales report, or a recompute of the product rating aggregates.

use std::time::Duration;

use axum::http::Method;
use axum::Router;
use chrono::NaiveDate;
use eshop_infra::personal_data::open_text;
use serde::Deserialize;
use serde_json::{json, Value};

use eshop_domain::values::Role;
use eshop_infra::read_models::rebuild::{
    RebuildContext, RebuildError, RebuildProgress, RebuildSettings,
};
use eshop_infra::read_models::registry;
use eshop_infra::reports;
use eshop_infra::tasks::{Outcome, Progress, TaskRecord, TaskRunner};
use tokio::sync::watch;

use crate::background::replay::{self, Replay};
use crate::background::respond_async::{without_credentials, COMMAND_TASK};
use crate::state::AppState;

pub const SALES_REPORT: &str = "sales_report";
pub const RECOMPUTE_RATINGS: &str = "recompute_ratings";
pub const REBUILD_PROJECTION: &str = "rebuild_projection";
/// An admin's calendar feed import (`POST /api/admin/imports/calendar`).
pub const CALENDAR_IMPORT: &str = "calendar_import";
/// A calendar import reports its progress this many times.
const CALENDAR_IMPORT_STEPS: usize = 20;
/// Products per step of the ratings recompute.
const RATINGS_BATCH: i64 = 100;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SalesReportInput {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

#[derive(Debug, Deserialize)]
struct QueuedCommand {
    method: String,
    path: String,
    #[serde(default)]
    headers: std::collections::HashMap<String, String>,
    #[serde(default)]
    /// Sealed with the task body key (see `respond_async`).
    body: String,
    #[serde(default)]
    request_id: Option<String>,
    /// The caller's address, for a request without a token (its Idempotency-Key scope).
    #[serde(default)]
    client_address: Option<String>,
}

pub struct TaskExecutor {
    state: AppState,
    router: Router,
    step_delay: Duration,
}

impl TaskExecutor {
    pub fn new(state: AppState, router: Router, step_delay: Duration) -> Self {
        Self {
            state,
            router,
            step_delay,
        }
    }

    /// Runs the command a task holds. The replay carries an Idempotency-Key (the client's, or
    /// one derived from the task), so running it again after a worker died answers the first
    /// answer instead of applying the command twice.
    pub async fn run_command(&self, task: &TaskRecord, work: Value) -> Outcome {
        let Ok(command) = serde_json::from_value::<QueuedCommand>(work) else {
            return Outcome::Failed(
                json!({"code": "invalid_task", "detail": "the queued request cannot be read"}),
            );
        };
        let Some(body) = open_text(
            &self.state.task_body_key,
            &task.id.to_string(),
            &command.body,
        ) else {
            return Outcome::Failed(json!({"code": "invalid_task",
                "detail": "the queued request cannot be opened (was ESHOP_JWT_SECRET changed?)"}));
        };
        let Ok(method) = command.method.parse::<Method>() else {
            return Outcome::Failed(json!({"code": "invalid_task", "detail": "unknown method"}));
        };
        let mut headers: Vec<(String, String)> = command.headers.into_iter().collect();
        if !headers
            .iter()
            .any(|(name, _)| name == crate::request::IDEMPOTENCY_KEY)
        {
            headers.push((
                crate::request::IDEMPOTENCY_KEY.to_string(),
                format!("task-{}", task.id),
            ));
        }
        let as_user = task
            .owner_id
            .zip(task.owner_session_id)
            .map(|(id, session)| {
                let roles = task
                    .owner_roles
                    .iter()
                    .filter_map(|role| Role::parse(role).ok())
                    .collect();
                (id, session, roles)
            });
        let replay::Answered {
            status,
            body,
            replayed,
        } = replay::run(
            &self.state,
            &self.router,
            Replay {
                method,
                uri: command.path,
                headers,
                body: body.into_bytes(),
                as_user,
                request_id: command
                    .request_id
                    .unwrap_or_else(|| format!("task-{}", task.id)),
                client_address: command
                    .client_address
                    .and_then(|address| address.parse().ok()),
            },
        )
        .await;
        // A task's result is kept in a table: no credential goes there, whatever answered.
        let body = without_credentials(&body);
        // `replayed`: the command had run before (an earlier delivery, or the client's key).
        let answer = json!({"status": status.as_u16(), "body": body, "replayed": replayed});
        if status.is_success() {
            Outcome::Done(answer)
        } else if status.is_server_error() {
            // 503 (a dependency down), 500: worth another go before giving up.
            Outcome::Retry(format!("the command answered {status}"))
        } else {
            Outcome::Failed(match body {
                Value::Object(_) => body,
                _ => answer,
            })
        }
    }

    async fn sales_report(&self, task: &TaskRecord, progress: &Progress) -> Outcome {
        let input: SalesReportInput = match serde_json::from_value(task.input.clone()) {
            Ok(input) => input,
            Err(error) => {
                return Outcome::Failed(
                    json!({"code": "invalid_task", "detail": error.to_string()}),
                )
            }
        };
        match reports::sales_report(
            &self.state.pool,
            input.from,
            input.to,
            self.state.tz,
            progress,
            self.step_delay,
        )
        .await
        {
            Ok(report) => Outcome::Done(json!(report)),
            Err(error) => Outcome::Retry(error.to_string()),
        }
    }

    async fn recompute_ratings(&self, progress: &Progress) -> Outcome {
        match reports::recompute_ratings(
            &self.state.pool,
            Some(&self.state.cache),
            progress,
            RATINGS_BATCH,
            self.step_delay,
        )
        .await
        {
            Ok(summary) => Outcome::Done(json!(summary)),
            Err(error) => Outcome::Retry(error.to_string()),
        }
    }
}

impl TaskExecutor {
    /// Rebuilds one read model (see `read_models::rebuild`), its progress copied to the task.
    async fn rebuild_projection(&self, task: &TaskRecord, progress: &Progress) -> Outcome {
        let Some(name) = task.input.get("name").and_then(Value::as_str) else {
            return Outcome::Failed(
                json!({"code": "invalid_task", "detail": "no read model named"}),
            );
        };
        let models = registry::shop();
        let Some(model) = models.get(name) else {
            return Outcome::Failed(
                json!({"code": "not_found", "detail": format!("no read model is called {name}")}),
            );
        };
        let context = RebuildContext {
            pool: self.state.pool.clone(),
            cache: Some(self.state.cache.clone()),
            settings: RebuildSettings::default(),
        };
        let (sender, mut receiver) = watch::channel(RebuildProgress::START);
        let rebuilding = model.rebuild(context, sender);
        tokio::pin!(rebuilding);
        let mut reported = 0;
        let outcome = loop {
            tokio::select! {
                outcome = &mut rebuilding => break outcome,
                changed = receiver.changed() => {
                    if changed.is_err() {
                        break rebuilding.await;
                    }
                    let percent = receiver.borrow_and_update().percent();
                    if percent > reported {
                        reported = percent;
                        progress.report(percent).await;
                    }
                }
            }
        };
        match outcome {
            Ok(rebuilt) => Outcome::Done(json!(rebuilt)),
            Err(error @ RebuildError::AlreadyRunning(_)) => {
                Outcome::Failed(json!({"code": "rebuild_running", "detail": error.to_string()}))
            }
            Err(error @ (RebuildError::Unknown(_) | RebuildError::Unsupported { .. })) => {
                Outcome::Failed(json!({"code": "rebuild_failed", "detail": error.to_string()}))
            }
            // The live read model is untouched: worth another go (the database was away, say).
            Err(error) => Outcome::Retry(error.to_string()),
        }
    }

    /// Imports the feed the task holds, in steps, reporting progress after each. A run again
    /// after a worker died imports the rest: what was done is found unchanged.
    async fn calendar_import(&self, task: &TaskRecord, progress: &Progress) -> Outcome {
        let Some(text) = task.input["feed"].as_str() else {
            return Outcome::Failed(json!({"code": "invalid_task", "detail": "no feed"}));
        };
        let rows = match eshop_commands::calendar::parse(text, self.state.tz.name()) {
            Ok(rows) => rows,
            Err(error) => {
                return Outcome::Failed(
                    json!({"code": "invalid_feed", "detail": error.to_string()}),
                )
            }
        };
        let total = rows.len().max(1);
        let step = total.div_ceil(CALENDAR_IMPORT_STEPS).max(1);
        let mut report = eshop_commands::calendar::ImportReport::default();
        let mut done = 0;
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<_> = rows.by_ref().take(step).collect();
            done += chunk.len();
            let request_id = format!("task-{}", task.id);
            let actor = task
                .owner_id
                .map_or(eshop_commands::Actor::System, eshop_commands::Actor::User);
            match eshop_commands::calendar::import(
                &self.state.bus,
                chunk,
                actor,
                &request_id,
                |_, _| {},
            )
            .await
            {
                Ok(part) => report.merge(part),
                Err(error) => return Outcome::Retry(error.to_string()),
            }
            progress
                .report(u8::try_from(done * 100 / total).unwrap_or(100))
                .await;
        }
        Outcome::Done(json!(report))
    }
}

impl TaskRunner for TaskExecutor {
    // Never the input or the work: a queued request's body may hold a password.
    #[tracing::instrument(name = "task", skip_all, fields(task_id = %task.id, kind = %task.kind))]
    async fn run(&self, task: TaskRecord, work: Value, progress: Progress) -> Outcome {
        match task.kind.as_str() {
            COMMAND_TASK => self.run_command(&task, work).await,
            SALES_REPORT => self.sales_report(&task, &progress).await,
            RECOMPUTE_RATINGS => self.recompute_ratings(&progress).await,
            REBUILD_PROJECTION => self.rebuild_projection(&task, &progress).await,
            CALENDAR_IMPORT => self.calendar_import(&task, &progress).await,
            other => Outcome::Failed(
                json!({"code": "invalid_task", "detail": format!("unknown task kind {other}")}),
            ),
        }
    }
}
