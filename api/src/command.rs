//! Running a command on behalf of a request: its metadata on the events, its
//! `Idempotency-Key` honoured, its answer rendered with the new version as `ETag`.

use std::future::Future;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use eshop_commands::idempotency::{fingerprint, IdempotencyRecord};
use eshop_commands::own_writes;
use eshop_commands::{Actor, CommandContext, PriorRequest, StoredResponse};

use crate::error::{problem_response, ApiError};
use crate::request::RequestMeta;
use crate::state::AppState;

/// A successful command's answer.
pub struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    pub fn ok(view: impl Serialize) -> Result<Self, ApiError> {
        Self::with_status(StatusCode::OK, view)
    }

    pub fn created(view: impl Serialize) -> Result<Self, ApiError> {
        Self::with_status(StatusCode::CREATED, view)
    }

    pub fn accepted(view: impl Serialize) -> Result<Self, ApiError> {
        Self::with_status(StatusCode::ACCEPTED, view)
    }

    pub fn into_response(self) -> Response {
        json_response(self.status, self.body)
    }

    fn with_status(status: StatusCode, view: impl Serialize) -> Result<Self, ApiError> {
        Ok(Self {
            status,
            body: serde_json::to_value(view).map_err(ApiError::internal)?,
        })
    }
}

/// A JSON answer, with `ETag: "<version>"` when the body carries a version.
pub fn json_response(status: StatusCode, body: Value) -> Response {
    let etag = body
        .get("version")
        .and_then(Value::as_u64)
        .and_then(|version| HeaderValue::from_str(&format!("\"{version}\"")).ok());
    let mut response = if status.is_client_error() || status.is_server_error() {
        problem_response(status, body)
    } else {
        (status, axum::Json(body)).into_response()
    };
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = json_response(status, stored.body);
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// Runs `run` with a context built from the request. `scope` names whose key space an
/// `Idempotency-Key` lives in (the user id, or `anonymous`); `body` is the request as sent.
pub async fn execute<F, Fut>(
    state: &AppState,
    meta: &RequestMeta,
    scope: &str,
    actor: Actor,
    body: &Value,
    run: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(CommandContext) -> Fut,
    Fut: Future<Output = Result<Answer, ApiError>>,
{
    let Some(key) = meta.idempotency_key.as_deref() else {
        let mut context = CommandContext::new(actor, &meta.request_id);
        if let Some(correlation_id) = meta.correlation_id {
            context = context.correlated_with(correlation_id);
        }
        let answer = remembering_writes(state, actor, run(context)).await?;
        return Ok(json_response(answer.status, answer.body));
    };

    let fingerprint = fingerprint(meta.method.as_str(), &meta.path, body);
    match state.idempotency.prior(scope, key, &fingerprint).await? {
        PriorRequest::Answered(stored) => return Ok(replay(stored)),
        PriorRequest::DifferentRequest => return Err(ApiError::IdempotencyKeyReused),
        PriorRequest::None => {}
    }
    let mut context = CommandContext::repeatable(actor, &meta.request_id, &[scope, key]);
    if let Some(correlation_id) = meta.correlation_id {
        context = context.correlated_with(correlation_id);
    }
    let response = match remembering_writes(state, actor, run(context)).await {
        Ok(answer) => StoredResponse {
            status: answer.status.as_u16(),
            body: answer.body,
        },
        Err(error) if error.is_transient() => return Err(error),
        Err(error) => StoredResponse {
            status: error.status().as_u16(),
            body: error.problem(),
        },
    };
    let first = state
        .idempotency
        .remember(IdempotencyRecord {
            scope: scope.to_string(),
            key: key.to_string(),
            fingerprint,
            response,
        })
        .await?;
    let status = StatusCode::from_u16(first.status).unwrap_or(StatusCode::OK);
    Ok(json_response(status, first.body))
}

/// Runs a command and, before it is answered, remembers for the user who asked what it wrote
/// and at which versions, so that their list reads reflect it (see `RecentWrites`). Also when
/// it then failed: an order refused for want of stock was written, and lists show it failed.
async fn remembering_writes(
    state: &AppState,
    actor: Actor,
    command: impl Future<Output = Result<Answer, ApiError>>,
) -> Result<Answer, ApiError> {
    // Boxed: the command's future is deep already, and the recording scope nests it deeper.
    let (outcome, written) = own_writes::recording(Box::pin(command)).await;
    if let Actor::User(user_id) = actor {
        state.recent_writes.remember(user_id, &written).await;
    }
    outcome
}
