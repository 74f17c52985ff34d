//! Auditors read; they change nothing. Any command (a method other than GET, HEAD, OPTIONS)
//! from a token whose roles include `auditor` but not `admin` is refused with 403, except
//! managing their own session and password.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use eshop_domain::values::Role;

use crate::auth::extract::bearer_claims;
use crate::error::ApiError;
use crate::state::AppState;

const OWN_ACCOUNT_PATHS: [&str; 4] = [
    "/api/auth/login",
    "/api/auth/refresh",
    "/api/auth/logout",
    "/api/users/me/password",
];

pub async fn auditors_read_only(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let reads = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if reads || OWN_ACCOUNT_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let read_only = bearer_claims(&state, request.headers()).is_some_and(|claims| {
        claims.roles.contains(&Role::Auditor) && !claims.roles.contains(&Role::Admin)
    });
    if read_only {
        return ApiError::Forbidden.into_response();
    }
    next.run(request).await
}
