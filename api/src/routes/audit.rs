//! Read-only views of the event history for auditors (and admins).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use eshop_projections::RelayedEvent;

use crate::auth::AuditReader;
use crate::error::ApiError;
use crate::request::ApiQuery;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/audit/events", get(feed)).route(
        "/api/audit/streams/{aggregate_type}/{aggregate_id}",
        get(stream),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

#[derive(Serialize)]
struct Feed {
    items: Vec<RelayedEvent>,
    /// Pass as `after` for the next page; absent at the end.
    next_after: Option<i64>,
}

/// Every event by global position, as published (secrets removed, personal data sealed).
async fn feed(
    State(state): State<AppState>,
    _reader: AuditReader,
    ApiQuery(query): ApiQuery<FeedQuery>,
) -> Result<Json<Feed>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 1000"));
    }
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::field("after", "must not be negative"));
    }
    let items = state
        .audit_log()
        .feed(after, limit)
        .await
        .map_err(ApiError::unavailable)?;
    let next_after = (items.len() as i64 == limit)
        .then(|| items.last().map(|event| event.position))
        .flatten();
    Ok(Json(Feed { items, next_after }))
}

/// One aggregate's history in sequence; 404 when it has none.
async fn stream(
    State(state): State<AppState>,
    _reader: AuditReader,
    Path((aggregate_type, aggregate_id)): Path<(String, String)>,
) -> Result<Json<Vec<RelayedEvent>>, ApiError> {
    // No stored id holds U+0000 (Postgres text cannot), and Postgres refuses it as a parameter.
    if aggregate_type.contains('\0') || aggregate_id.contains('\0') {
        return Err(ApiError::NotFound("stream"));
    }
    let events = state
        .audit_log()
        .stream(&aggregate_type, &aggregate_id)
        .await
        .map_err(ApiError::unavailable)?;
    if events.is_empty() {
        return Err(ApiError::NotFound("stream"));
    }
    Ok(Json(events))
}
