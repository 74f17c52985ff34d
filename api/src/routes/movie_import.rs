//! `POST /api/admin/imports/movielens`: the MovieLens files as a multipart upload (parts named
//! `movies`, `ratings`, `tags`, `links`, or by their file names), imported in the background;
//! 202 with the task, whose progress and report `GET /api/tasks/{id}` shows.
//!
//! The files are too large for a task message on NATS (1 MiB), so the import runs in this
//! process, recording its progress in the task. A process that dies mid-import leaves the task
//! PROCESSING; importing the same files again is safe (it appends only what is missing).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::response::Response;
use serde_json::json;

use eshop_commands::movies::movielens::{self, MovieLensFiles};
use eshop_commands::movies::{ImportError, Movies};

use crate::auth::AdminUser;
use crate::background::respond_async::accepted;
use crate::error::ApiError;
use crate::request::RequestMeta;
use crate::state::AppState;

pub const MOVIELENS_IMPORT: &str = "movielens_import";
/// The largest upload taken (all files together).
pub const MAX_UPLOAD_BYTES: usize = 256 * 1024 * 1024;

async fn files(mut multipart: Multipart) -> Result<MovieLensFiles, ApiError> {
    let mut movies = None;
    let mut files = MovieLensFiles::default();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|error| ApiError::field("body", error.body_text()))?
    {
        let name = field
            .name()
            .or(field.file_name())
            .unwrap_or_default()
            .trim_end_matches(".csv")
            .to_string();
        let text = field
            .text()
            .await
            .map_err(|error| ApiError::field(&name, error.body_text()))?;
        match name.as_str() {
            "movies" => movies = Some(text),
            "ratings" => files.ratings = Some(text),
            "tags" => files.tags = Some(text),
            "links" => files.links = Some(text),
            other => {
                return Err(ApiError::field(
                    other,
                    "is not one of movies, ratings, tags, links",
                ))
            }
        }
    }
    files.movies = movies.ok_or_else(|| ApiError::field("movies", "movies.csv is required"))?;
    Ok(files)
}

pub async fn start(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    // Not `multipart/form-data` (or without a boundary): a problem, not axum's plain text.
    let multipart = multipart.map_err(|_| ApiError::UnsupportedMediaType)?;
    let files = files(multipart).await?;
    // A file that cannot be read at all is refused now; bad rows are reported by the task.
    let plan =
        movielens::plan(&files).map_err(|error| ApiError::field("files", error.to_string()))?;
    let input = json!({"rows": plan.rows});
    let task = state
        .tasks
        .create(MOVIELENS_IMPORT, &input, Some(&admin.task_owner()))
        .await?;
    let response = accepted(&task);
    let actor = admin.actor();
    let request_id = meta.request_id.clone();
    tokio::spawn(async move {
        let id = task.id;
        if let Err(error) = state.tasks.start(id).await {
            tracing::warn!(task = %id, error = %error, "cannot start the import task");
        }
        let percent = Arc::new(AtomicU8::new(0));
        let reporter = {
            let percent = percent.clone();
            let tasks = state.tasks.clone();
            tokio::spawn(async move {
                let mut last = 0;
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let now = percent.load(Ordering::Relaxed);
                    if now != last {
                        last = now;
                        let _ = tasks.set_progress(id, now).await;
                    }
                }
            })
        };
        let outcome = Movies::new(&state.bus)
            .import(plan, state.bus.store(), actor, &request_id, |progress| {
                let done = progress.done.saturating_mul(100) / progress.total.max(1);
                percent.store(u8::try_from(done.min(99)).unwrap_or(99), Ordering::Relaxed);
            })
            .await;
        reporter.abort();
        let outcome = match outcome {
            Ok(report) => outcome::done(serde_json::to_value(report).unwrap_or_default()),
            Err(error) => outcome::failed(&error),
        };
        if let Err(error) = state.tasks.finish(id, &outcome).await {
            tracing::warn!(task = %id, error = %error, "cannot finish the import task");
        }
    });
    Ok(response)
}

/// The task's outcome, as the task worker records them.
mod outcome {
    use super::ImportError;
    use crate::state::TaskOutcome;
    use serde_json::{json, Value};

    pub fn done(report: Value) -> TaskOutcome {
        TaskOutcome::Done(report)
    }

    pub fn failed(error: &ImportError) -> TaskOutcome {
        let code = match error {
            ImportError::File(_) => "invalid_file",
            ImportError::Busy => "conflict",
            ImportError::Store(_) => "unavailable",
        };
        TaskOutcome::Failed(json!({"code": code, "detail": error.to_string()}))
    }
}
