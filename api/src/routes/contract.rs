//! The API's own description: `GET /api/openapi.json` (the OpenAPI 3.1 document of every route,
//! `crate::docs::openapi`), `GET /api/` (the resources with links), the explorer at `/api/docs`
//! (Swagger UI, its files compiled in), and `GET /api/asyncapi.json`, the AsyncAPI 3.0 document
//! of this instance's NATS channels (its subjects carry `ESHOP_NATS_PREFIX`).

use std::sync::OnceLock;

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::docs::{asyncapi, openapi};
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/asyncapi.json", get(asyncapi_document))
        .route("/api/openapi.json", get(openapi_document))
        .route("/api/", get(index))
        .route("/api/docs", get(explorer))
        .route("/api/docs/{asset}", get(explorer_asset))
}

async fn asyncapi_document(State(state): State<AppState>) -> Json<Value> {
    Json(asyncapi::document(state.subjects.prefix()))
}

/// The document, built once per process (it depends on the code only).
fn openapi_bytes() -> &'static Bytes {
    static DOCUMENT: OnceLock<Bytes> = OnceLock::new();
    DOCUMENT.get_or_init(|| Bytes::from(openapi::document().to_string()))
}

async fn openapi_document() -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        openapi_bytes().clone(),
    )
        .into_response()
}

/// Every path of the document under `/api/`, with its methods and what it is.
fn resources() -> Value {
    let document = openapi::document();
    let mut resources = Vec::new();
    if let Some(paths) = document["paths"].as_object() {
        for (path, item) in paths {
            if !path.starts_with("/api/") || path == "/api/" {
                continue;
            }
            let Some(operations) = item.as_object() else {
                continue;
            };
            let methods: Vec<String> = operations.keys().map(|m| m.to_uppercase()).collect();
            let description = operations
                .get("get")
                .or_else(|| operations.values().next())
                .and_then(|operation| operation["summary"].as_str())
                .unwrap_or_default();
            let name = operations
                .values()
                .next()
                .and_then(|operation| operation["tags"][0].as_str())
                .unwrap_or_default();
            resources.push(json!({
                "name": name,
                "href": path,
                "description": description,
                "methods": methods,
            }));
        }
    }
    json!({
        "links": {
            "self": "/api/",
            "openapi": "/api/openapi.json",
            "docs": "/api/docs",
            "asyncapi": "/api/asyncapi.json",
            "health": "/health",
            "metrics": "/metrics",
        },
        "resources": resources,
    })
}

async fn index() -> Json<Value> {
    static INDEX: OnceLock<Value> = OnceLock::new();
    Json(INDEX.get_or_init(resources).clone())
}

/// The page may run its own scripts and styles, and fetch this origin; nothing else.
const EXPLORER_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' \
     'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

fn explorer_file(content_type: &'static str, body: &'static [u8], cache: bool) -> Response {
    let mut response = (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(EXPLORER_POLICY),
            ),
        ],
        body,
    )
        .into_response();
    if cache {
        response.headers_mut().insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=86400"),
        );
    }
    response
}

async fn explorer() -> Response {
    explorer_file(
        "text/html; charset=utf-8",
        include_bytes!("../../assets/swagger-ui/index.html"),
        false,
    )
}

async fn explorer_asset(Path(asset): Path<String>) -> Result<Response, ApiError> {
    let (content_type, body): (&'static str, &'static [u8]) = match asset.as_str() {
        "swagger-ui-bundle.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js"),
        ),
        "swagger-ui.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../../assets/swagger-ui/swagger-ui.css"),
        ),
        "init.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../assets/swagger-ui/init.js"),
        ),
        "favicon-32x32.png" => (
            "image/png",
            include_bytes!("../../assets/swagger-ui/favicon-32x32.png"),
        ),
        _ => return Err(ApiError::NotFound("file")),
    };
    Ok(explorer_file(content_type, body, true))
}
