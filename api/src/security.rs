//! Headers every answer carries (`Cache-Control: no-store` unless a route sets its own), and
//! the CORS policy.

use axum::extract::Request;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The API serves JSON only: nothing may frame it, sniff it into another type, or learn where
/// its links came from. HSTS only when the request arrived over TLS (directly, or as the proxy
/// in front says with `X-Forwarded-Proto: https`), as browsers ignore it over plain HTTP.
pub async fn secure_headers(request: Request, next: Next) -> Response {
    let over_tls = request.uri().scheme_str() == Some("https")
        || request
            .headers()
            .get("x-forwarded-proto")
            .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // A route that serves a page (the API explorer) sets its own, as narrow.
    headers
        .entry(CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'",
        ));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Answers carry tokens and personal data (RFC 6749 §5.1): no cache on the way keeps one,
    // unless a route says otherwise.
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    if over_tls {
        headers.insert(
            STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

/// Browsers on these origins may call the API; with none configured, no CORS headers at all.
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .map(|origin| origin.trim())
        .filter(|origin| !origin.is_empty())
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    let header = HeaderName::from_static;
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header("authorization"),
                header("content-type"),
                header("idempotency-key"),
                header("if-match"),
                header("prefer"),
                header("x-request-id"),
                header("x-correlation-id"),
            ])
            .expose_headers([
                header("etag"),
                header("location"),
                header("retry-after"),
                header("ratelimit-limit"),
                header("ratelimit-remaining"),
                header("ratelimit-reset"),
                header("x-request-id"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}
