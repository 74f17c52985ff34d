//! Operations views for admins.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use eshop_infra::projector::{report, ProjectionReport};
use eshop_infra::read_models::registry;

use crate::auth::AdminUser;
use crate::error::ApiError;
use crate::request::ApiQuery;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/projections", get(projections))
        .route("/api/admin/emails", get(emails))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailParams {
    /// `pending`, `sent`, `failed` or `skipped`.
    status: Option<String>,
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
    let names = registry::shop().names();
    let mut reports = report(&state.pool, &state.jetstream, &state.subjects, &names)
        .await
        .map_err(ApiError::Unavailable)?;
    // This process's own search index (each replica keeps one).
    if let Some(search) = &state.search {
        reports.push(
            search
                .report(&state.jetstream, &state.subjects)
                .await
                .map_err(ApiError::Unavailable)?,
        );
    }
    Ok(Json(reports))
}
