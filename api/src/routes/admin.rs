//! Operations views for admins.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::auth::AdminUser;
use crate::background::tasks::REBUILD_PROJECTION;
use crate::error::ApiError;
use crate::request::ApiQuery;
use crate::state::{AppState, ProjectionReport};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/projections", get(projections))
        .route("/api/admin/projections/{name}/rebuild", post(rebuild))
        .route("/api/admin/emails", get(emails))
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmailParams {
    /// `pending`, `sent`, `failed` or `skipped`.
    status: Option<String>,
    #[schemars(range(min = 1, max = 500))]
    limit: Option<i64>,
    /// Mails recorded before this time (the last `created_at` of the previous page).
    before: Option<chrono::DateTime<chrono::Utc>>,
}

/// The mail sent-log, newest first: `?status=failed` lists what the SMTP server refused.
async fn emails(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(params): ApiQuery<EmailParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if let Some(status) = params.status.as_deref() {
        if !["pending", "sent", "failed", "skipped"].contains(&status) {
            return Err(ApiError::field(
                "status",
                "must be one of: pending, sent, failed, skipped",
            ));
        }
    }
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 500"));
    }
    let items = state
        .outbox
        .list(params.status.as_deref(), limit, params.before)
        .await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

/// Every projection: how far it got, how far behind it is, and whether it is stopped.
async fn projections(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> Result<Json<Vec<ProjectionReport>>, ApiError> {
    state.projection_reports().await.map(Json)
}

/// Rebuilds a read model from the event store beside the live one, then swaps it in: 202 with
/// a task whose progress the task and `GET /api/admin/projections` show. No body needed.
async fn rebuild(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if !state.is_read_model(&name) {
        return Err(ApiError::NotFound("read model"));
    }
    crate::routes::tasks::queue(
        &state,
        &admin,
        REBUILD_PROJECTION,
        serde_json::json!({ "name": name }),
    )
    .await
}
