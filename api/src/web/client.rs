//! The JSON API, called in-process by the pages.
//!
//! A page never reaches a use case itself: it sends the request a browser script would send,
//! with the visitor's token, through the `/api` router. The API's validation, roles,
//! idempotency and answers stay the only ones; a page only renders them.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use tower::ServiceExt;

use crate::request::REQUEST_ID;

/// Marks a request a page made: the throttle counted the page already.
#[derive(Clone, Copy)]
pub struct Internal;

/// What a failed call answered (RFC 9457), for the page to show.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Problem {
    #[serde(skip)]
    pub status: u16,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub errors: Vec<FieldProblem>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

impl Problem {
    /// The sentence a visitor reads: the detail, else the title.
    pub fn message(&self) -> String {
        let mut message = self
            .detail
            .clone()
            .filter(|detail| !detail.is_empty())
            .unwrap_or_else(|| self.title.clone());
        for error in &self.errors {
            message.push_str(&format!(" {}: {}.", error.field, error.message));
        }
        message
    }

    /// The message of one field, when the API named it.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|error| error.field == name)
            .map(|error| error.message.as_str())
    }

    /// The answer's status, for a page that shows the problem.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    /// A field the page itself found invalid before asking the API (422, like the API).
    pub fn invalid_field(field: &str, message: &str) -> Self {
        Self {
            status: 422,
            code: "validation_failed".into(),
            title: "The form has an invalid field.".into(),
            errors: vec![FieldProblem {
                field: field.into(),
                message: message.into(),
            }],
            ..Self::default()
        }
    }

    fn unreadable(status: StatusCode) -> Self {
        Self {
            status: status.as_u16(),
            code: "service_unavailable".into(),
            title: "The shop could not answer; try again in a moment.".into(),
            ..Self::default()
        }
    }
}

/// Who calls, and from where: taken from the page's own request.
#[derive(Clone, Default)]
pub struct Caller {
    pub token: Option<String>,
    pub peer: Option<SocketAddr>,
    /// The page request's headers that the API reads too (request id, the proxy's address
    /// header).
    pub forwarded: HeaderMap,
}

#[derive(Clone)]
pub struct ApiClient {
    api: Router,
}

impl ApiClient {
    pub fn new(api: Router) -> Self {
        Self { api }
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        caller: &Caller,
        path: &str,
    ) -> Result<T, Problem> {
        self.call(caller, Method::GET, path, None::<&()>, None)
            .await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        caller: &Caller,
        path: &str,
        body: &B,
    ) -> Result<T, Problem> {
        self.call(caller, Method::POST, path, Some(body), None)
            .await
    }

    /// A `POST` that a repeated form submission must not run twice.
    pub async fn post_once<B: Serialize, T: DeserializeOwned>(
        &self,
        caller: &Caller,
        path: &str,
        body: &B,
        idempotency_key: &str,
    ) -> Result<T, Problem> {
        self.call(
            caller,
            Method::POST,
            path,
            Some(body),
            Some(idempotency_key),
        )
        .await
    }

    pub async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        caller: &Caller,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Problem> {
        self.call(caller, method, path, body, None).await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        caller: &Caller,
        method: Method,
        path: &str,
        body: Option<&B>,
        idempotency_key: Option<&str>,
    ) -> Result<T, Problem> {
        let (status, bytes) = self
            .raw(caller, method, path, body, idempotency_key)
            .await?;
        // An answer with no body (204) reads as JSON null.
        let bytes = if bytes.is_empty() {
            bytes::Bytes::from_static(b"null")
        } else {
            bytes
        };
        serde_json::from_slice(&bytes).map_err(|error| {
            tracing::error!(%error, path, "a page could not read the API's answer");
            Problem::unreadable(status)
        })
    }

    /// The status and body of a successful call.
    pub async fn raw<B: Serialize>(
        &self,
        caller: &Caller,
        method: Method,
        path: &str,
        body: Option<&B>,
        idempotency_key: Option<&str>,
    ) -> Result<(StatusCode, bytes::Bytes), Problem> {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in &caller.forwarded {
            request = request.header(name, value);
        }
        if let Some(token) = &caller.token {
            if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
                request = request.header(AUTHORIZATION, value);
            }
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let body = match body {
            Some(body) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(body).unwrap_or_default())
            }
            None => Body::empty(),
        };
        let mut request = request
            .body(body)
            .map_err(|_| Problem::unreadable(StatusCode::BAD_REQUEST))?;
        request.extensions_mut().insert(Internal);
        if let Some(peer) = caller.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let response = self
            .api
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(|_| Problem::unreadable(status))?;
        if status.is_success() {
            return Ok((status, bytes));
        }
        let mut problem: Problem =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Problem::unreadable(status));
        problem.status = status.as_u16();
        Err(problem)
    }
}

/// The headers of a page request that its API calls carry on.
pub fn forwarded_headers(headers: &HeaderMap, client_ip_header: Option<&str>) -> HeaderMap {
    let mut forwarded = HeaderMap::new();
    for name in [
        Some(REQUEST_ID),
        client_ip_header,
        Some("x-forwarded-proto"),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(value) = headers.get(name) {
            if let Ok(name) = axum::http::HeaderName::from_bytes(name.as_bytes()) {
                forwarded.insert(name, value.clone());
            }
        }
    }
    forwarded
}
