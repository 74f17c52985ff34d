//! `GET /health` (liveness) and `GET /ready` (readiness).

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
}

/// 200 when the event store answers within a second, 503 otherwise.
async fn health(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let ping = sqlx::query("SELECT 1").execute(&state.pool);
    match tokio::time::timeout(Duration::from_secs(1), ping).await {
        Ok(Ok(_)) => Ok(Json(json!({"status": "ok"}))),
        Ok(Err(error)) => Err(ApiError::Unavailable(Box::new(error))),
        Err(elapsed) => Err(ApiError::Unavailable(Box::new(elapsed))),
    }
}

/// 200 when this replica should take traffic; 503 `not_ready` with the reasons while Postgres
/// or NATS does not answer or a projection lags more than `ESHOP_READY_MAX_LAG_SECONDS`.
async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let reasons = state.unreadiness().await;
    if reasons.is_empty() {
        Ok(Json(json!({"status": "ready"})))
    } else {
        Err(ApiError::NotReady { reasons })
    }
}
