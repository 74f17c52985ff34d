//! Routes whose answer carries a credential (an access or refresh token today; a password-reset
//! or one-time token endpoint later). They declare it where they are routed, by wrapping their
//! handler in `issues_credentials` and naming their path in `ISSUES_CREDENTIALS`:
//!
//! - `Prefer: respond-async` is refused on them up front with 400 `respond_async_not_allowed`
//!   (a task's result sits in a table, readable by admins and by whoever holds its id);
//! - should one be run in the background anyway, the wrapper refuses the run, so the task
//!   stores that refusal and not a credential;
//! - their answers carry `Cache-Control: no-store` (RFC 6749 §5.1).

use axum::extract::Request;
use axum::http::header::CACHE_CONTROL;
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use crate::background::replay::BackgroundRun;
use crate::error::ApiError;
use crate::state::AppState;

/// The paths of every route wrapped in `issues_credentials`.
pub const ISSUES_CREDENTIALS: [&str; 2] = ["/api/auth/login", "/api/auth/refresh"];

pub fn issues_credentials(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.layer(middleware::from_fn(guard))
}

/// The answer to a request that asks to run such a route in the background.
pub fn not_as_a_task() -> ApiError {
    ApiError::BadRequest {
        code: "respond_async_not_allowed",
        detail: "this endpoint answers with a credential, which must not be kept as a task's \
                 result: send the request without Prefer: respond-async"
            .into(),
    }
}

async fn guard(request: Request, next: Next) -> Response {
    if request.extensions().get::<BackgroundRun>().is_some() {
        return not_as_a_task().into_response();
    }
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
