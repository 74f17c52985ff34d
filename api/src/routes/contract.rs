//! The contract for downstream consumers of the NATS stream: `GET /api/asyncapi.json`, the
//! AsyncAPI 3.0 document of this instance's channels (its subjects carry `ESHOP_NATS_PREFIX`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use crate::docs::asyncapi;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/asyncapi.json", get(asyncapi_document))
}

async fn asyncapi_document(State(state): State<AppState>) -> Json<Value> {
    Json(asyncapi::document(state.subjects.prefix()))
}
