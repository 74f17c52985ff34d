//! `Prefer: respond-async` on any command endpoint: the request is queued as a task and
//! answered at once with 202 `{task_id, status_url}`; a task worker later runs it through the
//! router as the same user (`tasks`). No handler has to know.

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, LOCATION};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use eshop_infra::personal_data::seal_text;
use eshop_infra::tasks::TaskRecord;

use crate::auth::CurrentUser;
use crate::background::replay::KEPT_HEADERS;
use crate::error::ApiError;
use crate::state::AppState;

pub const COMMAND_TASK: &str = "command";
const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// Paths that never run in the background: reading tasks, endpoints that are background
/// tasks already, and logging in (its answer is a token, which must not sit in a table).
const EXCLUDED: [&str; 4] = [
    "/api/tasks",
    "/api/auth/login",
    "/api/admin/reports/",
    "/api/admin/products/ratings/",
];

fn prefers_async(request: &Request) -> bool {
    request
        .headers()
        .get_all("prefer")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|preference| preference.trim().eq_ignore_ascii_case("respond-async"))
}

fn is_command(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Field names whose values stay out of the `tasks` table (the request itself, secrets
/// included, travels only in the work-queue message).
const SECRET_FIELDS: [&str; 8] = [
    "password",
    "card",
    "card_number",
    "cvc",
    "cvv",
    "bank_account",
    "token",
    "secret",
];

pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, value)| {
                    let secret = SECRET_FIELDS
                        .iter()
                        .any(|secret| name.to_ascii_lowercase().contains(secret));
                    let value = if secret && !value.is_null() {
                        json!("[redacted]")
                    } else {
                        redact(value)
                    };
                    (name.clone(), value)
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

pub async fn respond_async(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if !prefers_async(&request)
        || !is_command(request.method())
        || EXCLUDED.iter().any(|excluded| path.starts_with(excluded))
    {
        return next.run(request).await;
    }
    match enqueue(&state, request).await {
        Ok(task) => accepted(&task),
        Err(error) => error.into_response(),
    }
}

/// 202 with where to watch the task.
pub fn accepted(task: &TaskRecord) -> Response {
    let status_url = format!("/api/tasks/{}", task.id);
    let mut response = (
        StatusCode::ACCEPTED,
        axum::Json(json!({"task_id": task.id, "status": task.status, "status_url": status_url})),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&status_url) {
        headers.insert(LOCATION, location);
    }
    headers.insert(
        "preference-applied",
        HeaderValue::from_static("respond-async"),
    );
    response
}

async fn enqueue(state: &AppState, request: Request) -> Result<TaskRecord, ApiError> {
    let (mut parts, body) = request.into_parts();
    // Who asks is settled now: a bad token fails at once, not in the background.
    let user = if parts.headers.contains_key(AUTHORIZATION) {
        Some(
            <CurrentUser as axum::extract::FromRequestParts<AppState>>::from_request_parts(
                &mut parts, state,
            )
            .await?,
        )
    } else {
        None
    };
    let body = to_bytes(body, BODY_LIMIT_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    let headers: Map<String, Value> = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = parts.headers.get(*name)?.to_str().ok()?;
            Some(((*name).to_string(), json!(value)))
        })
        .collect();
    let uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), ToString::to_string);
    let json_body: Option<Value> = serde_json::from_slice(&body).ok();
    let input = json!({
        "method": parts.method.as_str(),
        "path": uri,
        "headers": redact(&Value::Object(headers.clone())),
        "body": json_body.as_ref().map(redact),
    });
    let owner = user.as_ref().map(CurrentUser::task_owner);
    let task = state
        .tasks
        .create(COMMAND_TASK, &input, owner.as_ref())
        .await?;
    let work = json!({
        "method": parts.method.as_str(),
        "path": uri,
        "headers": headers,
        // Sealed: a body may hold a password or a card number, and the message sits in
        // JetStream (on disk) until a worker is done with it.
        "body": seal_text(&state.task_body_key, &task.id.to_string(), &String::from_utf8_lossy(&body)),
        // The events the command appends name the request that asked for it.
        "request_id": parts.headers.get(crate::request::REQUEST_ID).and_then(|id| id.to_str().ok()),
    });
    if let Err(error) = state.task_queue.publish(&task, work).await {
        let problem = ApiError::Unavailable(error);
        let _ = state
            .tasks
            .finish(
                task.id,
                &eshop_infra::tasks::Outcome::Failed(problem.problem()),
            )
            .await;
        return Err(problem);
    }
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let redacted = redact(&json!({
            "email": "ann@example.com", "password": "correct-horse-9",
            "payment": {"method": "card", "card_number": "4242424242424242"},
            "lines": [{"product_id": "p", "quantity": 1}],
        }));
        assert_eq!(redacted["password"], "[redacted]");
        assert_eq!(redacted["payment"]["card_number"], "[redacted]");
        assert_eq!(redacted["payment"]["method"], "card");
        assert_eq!(redacted["email"], "ann@example.com");
        assert_eq!(redacted["lines"][0]["quantity"], 1);
    }
}
