//! `Prefer: respond-async` on any command endpoint: the request is queued as a task and
//! answered at once with 202 `{task_id, status_url}`; a task worker later runs it through the
//! router as the same user (`tasks`). No handler has to know.

use axum::body::to_bytes;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, LOCATION};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use eshop_infra::personal_data::seal_text;
use eshop_infra::tasks::TaskRecord;

use crate::auth::credentials::{not_as_a_task, ISSUES_CREDENTIALS};
use crate::auth::CurrentUser;
use crate::background::replay::KEPT_HEADERS;
use crate::docs::openapi;
use crate::error::ApiError;
use crate::request::{parse_body, RequestMeta};
use crate::state::AppState;
use crate::throttle::ClientAddress;

pub const COMMAND_TASK: &str = "command";
const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// Paths that run as they are even when asked to run in the background: reading tasks, and
/// endpoints that are background tasks already. (Routes whose answer is a credential refuse
/// to: `crate::auth::credentials`.)
const EXCLUDED: [&str; 3] = [
    "/api/tasks",
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

/// Field names that hold a credential.
const CREDENTIAL_FIELDS: [&str; 3] = ["token", "secret", "password"];

/// An answer as a task may keep it: every value under a credential's name, and every string
/// that looks like a signed token (a JWT), replaced with `[redacted]`. Routes that answer with
/// credentials do not run as tasks at all; this keeps any later one from leaking through.
pub fn without_credentials(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, value)| {
                    let name_lower = name.to_ascii_lowercase();
                    let credential = CREDENTIAL_FIELDS
                        .iter()
                        .any(|field| name_lower.contains(field));
                    let value = if credential && !value.is_null() {
                        json!("[redacted]")
                    } else {
                        without_credentials(value)
                    };
                    (name.clone(), value)
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_credentials).collect()),
        Value::String(text) if looks_like_a_jwt(text) => json!("[redacted]"),
        other => other.clone(),
    }
}

fn looks_like_a_jwt(text: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .any(|word| word.starts_with("eyJ") && word.split('.').count() == 3)
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
    let issues_credentials = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|route| ISSUES_CREDENTIALS.contains(&route.as_str()));
    if issues_credentials {
        return not_as_a_task().into_response();
    }
    match enqueue(&state, request).await {
        Ok(task) => accepted(&task),
        Err(error) => error.into_response(),
    }
}

/// Whether the OpenAPI document says the route takes a bearer token and cannot go without.
fn needs_a_token(parts: &axum::http::request::Parts) -> bool {
    parts
        .extensions
        .get::<MatchedPath>()
        .is_some_and(|route| openapi::needs_a_token(parts.method.as_str(), route.as_str()))
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
    } else if needs_a_token(&parts) {
        // A route that needs a token refuses an anonymous request now, as it would in the
        // foreground, rather than queue a task that can only fail.
        return Err(ApiError::Unauthorized);
    } else {
        None
    };
    // The headers and body are checked as the endpoint will check them, before anything is
    // stored: a task row must always be readable, and a retry must find its Idempotency-Key.
    RequestMeta::from_request_parts(&mut parts, state).await?;
    let ClientAddress(client_address) =
        match ClientAddress::from_request_parts(&mut parts, state).await {
            Ok(address) => address,
            Err(never) => match never {},
        };
    let body = to_bytes(body, BODY_LIMIT_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    let json_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(parse_body(&body)?)
    };
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
        // Anonymous Idempotency-Keys are scoped by the caller's address (kept only then).
        "client_address": user.is_none().then_some(client_address),
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

    #[test]
    fn answers_keep_no_credential() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let kept = without_credentials(&json!({
            "access_token": jwt, "refresh_token": "opaque", "card_last4": "4242",
            "nested": [{"note": format!("Bearer {jwt}")}], "balance_cents": 5,
        }));
        assert_eq!(kept["access_token"], "[redacted]");
        assert_eq!(kept["refresh_token"], "[redacted]");
        assert_eq!(kept["nested"][0]["note"], "[redacted]");
        assert_eq!(kept["card_last4"], "4242");
        assert_eq!(kept["balance_cents"], 5);
    }
}
