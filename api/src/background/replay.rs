//! Running a request in-process through the same router the server uses, so a background run
//! goes through exactly the validation, auth, idempotency and error mapping of the endpoint.

use std::net::SocketAddr;

use axum::body::{to_bytes, Body};
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;
use uuid::Uuid;

use eshop_domain::values::Role;

use crate::request::{CORRELATION_ID, IDEMPOTENCY_KEY, REQUEST_ID};
use crate::state::AppState;

/// Answers bigger than this are cut (a task's result lives in a table row).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Headers a background run keeps from the original request.
pub const KEPT_HEADERS: [&str; 4] = ["content-type", IDEMPOTENCY_KEY, "if-match", CORRELATION_ID];

/// A request to run as someone.
#[derive(Debug, Clone)]
pub struct Replay {
    pub method: Method,
    /// Path and query.
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Who runs it, in which session, with which roles; `None`: anonymously.
    pub as_user: Option<(Uuid, Uuid, Vec<Role>)>,
    pub request_id: String,
    /// The address of the client that asked (stands in for the connection's peer).
    pub client_address: Option<std::net::IpAddr>,
}

/// Marks a request the task worker runs in-process: its client was counted by the throttle
/// when it asked, so the run is not counted again.
#[derive(Debug, Clone, Copy)]
pub struct BackgroundRun;

/// What the endpoint answered.
#[derive(Debug, Clone)]
pub struct Answered {
    pub status: StatusCode,
    /// The JSON body (`null` when there was none).
    pub body: Value,
    /// The first answer to this Idempotency-Key, given again (the command did not run again).
    pub replayed: bool,
}

/// Runs the request.
pub async fn run(state: &AppState, router: &Router, replay: Replay) -> Answered {
    let mut builder = Request::builder()
        .method(replay.method)
        .uri(replay.uri.as_str());
    for (name, value) in &replay.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder = builder.header(REQUEST_ID, replay.request_id.as_str());
    if let Some((user_id, session_id, roles)) = replay.as_user {
        // A fresh token for the user: the one they sent may have expired while the task waited.
        // It names their session, so a task whose session ended (logout, password change,
        // erasure) is refused like any request of that session.
        let token = state
            .tokens
            .issue(user_id, session_id, roles, chrono::Utc::now().timestamp());
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
            builder = builder.header(header::AUTHORIZATION, value);
        }
    }
    let request = match builder.body(Body::from(replay.body)) {
        Ok(mut request) => {
            request.extensions_mut().insert(BackgroundRun);
            if let Some(address) = replay.client_address {
                request
                    .extensions_mut()
                    .insert(ConnectInfo(SocketAddr::new(address, 0)));
            }
            request
        }
        Err(error) => {
            return Answered {
                status: StatusCode::BAD_REQUEST,
                body: serde_json::json!({"code": "bad_request", "detail": error.to_string()}),
                replayed: false,
            }
        }
    };
    let response = match router.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let body = to_bytes(response.into_body(), MAX_ANSWER_BYTES)
        .await
        .unwrap_or_default();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    Answered {
        status,
        body,
        replayed,
    }
}
