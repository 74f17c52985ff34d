//! The one error type of the API, and its RFC 9457 problem+json rendering.
//!
//! Every error answer has a stable `code` that clients can branch on; `detail` is for people.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

use eshop_commands::orders::{FailureReason, InvalidPayment, OrderingError, ProcessError};
use eshop_commands::{CommandError, StoreError};
use eshop_domain::calendar::{CalendarError, KEY_CLAIM};
use eshop_domain::cart::CartError;
use eshop_domain::category::{CategoryError, SLUG_CLAIM};
use eshop_domain::movie::MovieError;
use eshop_domain::order::OrderError;
use eshop_domain::product::ProductError;
use eshop_domain::review::ReviewError;
use eshop_domain::user::{UserError, EMAIL_CLAIM, USERNAME_CLAIM};
use eshop_domain::wishlist::WishlistError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("this method is not allowed on this resource")]
    MethodNotAllowed,
    #[error("the request took too long (its body arrived too slowly, or the answer did)")]
    RequestTimeout,
    #[error("authentication is required")]
    Unauthorized,
    #[error("the e-mail or password is wrong")]
    InvalidCredentials,
    #[error("the refresh token is unknown or expired; sign in again")]
    InvalidRefreshToken,
    #[error("this session was ended; sign in again")]
    SessionRevoked,
    #[error("this needs a role you do not have")]
    Forbidden,
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("expected version {expected}, but it is at version {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    #[error("version {version} is not visible yet; try again")]
    NotYetVisible { version: u64 },
    #[error("Request was throttled. Expected available in {retry_after_seconds} seconds.")]
    Throttled { retry_after_seconds: u64 },
    #[error("a dependency is unavailable; try again")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("this replica is not ready to take traffic")]
    NotReady { reasons: Vec<String> },
    #[error("an unexpected error occurred")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    pub fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(error))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::IdempotencyKeyReused | Self::Unprocessable { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Unauthorized
            | Self::InvalidCredentials
            | Self::InvalidRefreshToken
            | Self::SessionRevoked => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::VersionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
            Self::Unavailable(_) | Self::NotYetVisible { .. } | Self::NotReady { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_failed",
            Self::BadRequest { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unprocessable { code, .. } => code,
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout => "request_timeout",
            Self::Unauthorized => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidRefreshToken => "invalid_refresh_token",
            Self::SessionRevoked => "session_revoked",
            Self::Forbidden => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::VersionMismatch { .. } => "version_mismatch",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::Unavailable(_) => "service_unavailable",
            Self::NotYetVisible { .. } => "not_yet_visible",
            Self::NotReady { .. } => "not_ready",
            Self::Throttled { .. } => "throttled",
            Self::Internal(_) => "internal",
        }
    }

    /// Whether a repeat of the request could succeed: such answers are not remembered for an
    /// Idempotency-Key, so a retry really retries.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_)
                | Self::NotReady { .. }
                | Self::RequestTimeout
                | Self::Throttled { .. }
                | Self::Internal(_)
                | Self::Conflict {
                    code: "conflict",
                    ..
                }
        )
    }

    /// The problem document (RFC 9457).
    pub fn problem(&self) -> Value {
        let status = self.status();
        let mut problem = json!({
            "type": format!("urn:eshop:problem:{}", self.code()),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.to_string(),
            "code": self.code(),
        });
        match self {
            Self::Validation(errors) => problem["errors"] = json!(errors),
            Self::VersionMismatch { expected, actual } => {
                problem["expected_version"] = json!(expected);
                problem["current_version"] = json!(actual);
            }
            Self::Throttled {
                retry_after_seconds,
            } => problem["retry_after_seconds"] = json!(retry_after_seconds),
            Self::NotReady { reasons } => problem["reasons"] = json!(reasons),
            _ => {}
        }
        problem
    }
}

pub fn problem_response(status: StatusCode, problem: Value) -> Response {
    let mut response = (status, axum::Json(problem)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(source) => tracing::error!(error = %source, "internal error"),
            Self::Unavailable(source) => tracing::warn!(error = %source, "dependency unavailable"),
            _ => {}
        }
        let mut response = problem_response(self.status(), self.problem());
        if matches!(self, Self::Unauthorized | Self::SessionRevoked) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, Self::Unavailable(_) | Self::NotYetVisible { .. }) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Self::Throttled {
            retry_after_seconds,
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(source) => Self::Unavailable(source),
            other => Self::internal(other),
        }
    }
}

impl From<ProcessError> for ApiError {
    fn from(error: ProcessError) -> Self {
        match error {
            ProcessError::NotFound => Self::NotFound("order"),
            ProcessError::Store(StoreError::Conflict) => Self::Conflict {
                code: "conflict",
                detail: "the order kept colliding with other changes; try again".into(),
            },
            ProcessError::Store(store) => store.into(),
            ProcessError::Gateway(unavailable) => Self::Unavailable(Box::new(unavailable)),
            ProcessError::Step(_) => Self::internal(error),
        }
    }
}

impl From<OrderingError> for ApiError {
    fn from(error: OrderingError) -> Self {
        match error {
            OrderingError::CartEmpty => Self::Unprocessable {
                code: "cart_empty",
                detail: "the cart is empty".into(),
            },
            OrderingError::NotSold(not_sold) => Self::Validation(
                not_sold
                    .0
                    .iter()
                    .map(|index| {
                        FieldError::new(format!("lines[{index}].product_id"), "no such product")
                    })
                    .collect(),
            ),
            OrderingError::ProductUnavailable => Self::NotFound("product"),
            OrderingError::Failed { reason } => order_failed(reason),
            OrderingError::OrderNotFound => Self::NotFound("order"),
            OrderingError::Order(error) => error.into(),
            OrderingError::Cart(error) => error.into(),
            OrderingError::Process(error) => error.into(),
            OrderingError::Store(error) => error.into(),
        }
    }
}

/// Why an order failed, as the error a buyer sees.
fn order_failed(reason: Option<FailureReason>) -> ApiError {
    let (code, detail) = order_failure(reason);
    ApiError::Conflict {
        code,
        detail: detail.into(),
    }
}

/// The code and sentence of a failed order's reason (the API's answer and the order page).
pub fn order_failure(reason: Option<FailureReason>) -> (&'static str, &'static str) {
    match reason {
        Some(FailureReason::OutOfStock) => ("out_of_stock", "not enough of a product is in stock"),
        Some(FailureReason::InsufficientBalance) => {
            ("insufficient_balance", "the wallet balance is too low")
        }
        Some(FailureReason::ProductUnavailable) => {
            ("product_unavailable", "a product is no longer sold")
        }
        Some(FailureReason::AccountDeactivated) => {
            ("user_deactivated", "this account is deactivated")
        }
        Some(FailureReason::PaymentDeclined) => ("payment_declined", "the payment was declined"),
        Some(FailureReason::TimedOut) | None => {
            ("order_failed", "the order could not be completed")
        }
    }
}

impl From<InvalidPayment> for ApiError {
    fn from(error: InvalidPayment) -> Self {
        Self::field(&format!("payment.{}", error.field), error.message)
    }
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        let detail = error.to_string();
        match error {
            UserError::NotFound => Self::NotFound("user"),
            UserError::AlreadyRegistered => Self::Conflict {
                code: "already_exists",
                detail,
            },
            UserError::Deactivated => Self::Conflict {
                code: "user_deactivated",
                detail,
            },
            UserError::AlreadyActive => Self::Conflict {
                code: "already_active",
                detail,
            },
            UserError::BalanceLimit => Self::Unprocessable {
                code: "balance_limit",
                detail,
            },
            UserError::InsufficientBalance { .. } => Self::Conflict {
                code: "insufficient_balance",
                detail,
            },
            UserError::NegativeAmount => Self::Unprocessable {
                code: "validation_failed",
                detail,
            },
            UserError::Erased => Self::Conflict {
                code: "user_erased",
                detail,
            },
        }
    }
}

impl From<ProductError> for ApiError {
    fn from(error: ProductError) -> Self {
        let detail = error.to_string();
        match error {
            ProductError::NotFound => Self::NotFound("product"),
            ProductError::AlreadyExists => Self::Conflict {
                code: "already_exists",
                detail,
            },
            ProductError::StockLimit => Self::Unprocessable {
                code: "stock_limit",
                detail,
            },
            ProductError::InsufficientStock { .. } => Self::Conflict {
                code: "out_of_stock",
                detail,
            },
            ProductError::NoReservation => Self::Conflict {
                code: "no_reservation",
                detail,
            },
        }
    }
}

impl From<CalendarError> for ApiError {
    fn from(error: CalendarError) -> Self {
        let detail = error.to_string();
        match error {
            CalendarError::NotFound => Self::NotFound("calendar event"),
            CalendarError::AlreadyExists => Self::Conflict {
                code: "already_exists",
                detail,
            },
            CalendarError::KeyMismatch => Self::Unprocessable {
                code: "key_mismatch",
                detail,
            },
        }
    }
}

impl From<CategoryError> for ApiError {
    fn from(error: CategoryError) -> Self {
        let detail = error.to_string();
        match error {
            CategoryError::NotFound => Self::NotFound("category"),
            CategoryError::AlreadyExists => Self::Conflict {
                code: "already_exists",
                detail,
            },
            CategoryError::Cycle => Self::Unprocessable {
                code: "category_cycle",
                detail,
            },
            CategoryError::InUse { .. } => Self::Conflict {
                code: "category_in_use",
                detail,
            },
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(error: OrderError) -> Self {
        let detail = error.to_string();
        match error {
            OrderError::NotFound => Self::NotFound("order"),
            OrderError::AlreadyPlaced => Self::Conflict {
                code: "already_exists",
                detail,
            },
            OrderError::InvalidLines | OrderError::TotalTooLarge => Self::field("lines", detail),
            OrderError::InvalidTransition { .. } => Self::Conflict {
                code: "invalid_transition",
                detail,
            },
        }
    }
}

impl From<CartError> for ApiError {
    fn from(error: CartError) -> Self {
        let detail = error.to_string();
        match error {
            CartError::InvalidQuantity => Self::field("quantity", detail),
            CartError::TooManyItems => Self::Unprocessable {
                code: "cart_full",
                detail,
            },
            CartError::Empty => Self::Unprocessable {
                code: "cart_empty",
                detail,
            },
        }
    }
}

impl From<WishlistError> for ApiError {
    fn from(error: WishlistError) -> Self {
        Self::Unprocessable {
            code: "wishlist_full",
            detail: error.to_string(),
        }
    }
}

impl From<ReviewError> for ApiError {
    fn from(error: ReviewError) -> Self {
        let detail = error.to_string();
        match error {
            ReviewError::InvalidRating => Self::field("rating", detail),
            ReviewError::CommentTooLong => Self::field("comment", detail),
        }
    }
}

impl From<MovieError> for ApiError {
    fn from(error: MovieError) -> Self {
        let detail = error.to_string();
        match error {
            MovieError::NotFound => Self::NotFound("movie"),
            MovieError::AlreadyExists => Self::Conflict {
                code: "already_exists",
                detail,
            },
            MovieError::NotRated => Self::Conflict {
                code: "not_rated",
                detail,
            },
            MovieError::InvalidRating => Self::field("rating", detail),
            MovieError::InvalidTitle => Self::field("title", detail),
            MovieError::InvalidYear => Self::field("year", detail),
            MovieError::InvalidGenre => Self::field("genres", detail),
            MovieError::InvalidTag => Self::field("tag", detail),
            MovieError::InvalidLink => Self::field("imdb_id", detail),
        }
    }
}

impl<E> From<CommandError<E>> for ApiError
where
    E: std::error::Error + 'static,
    ApiError: From<E>,
{
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Rejected(domain) => domain.into(),
            CommandError::VersionMismatch { expected, actual } => {
                Self::VersionMismatch { expected, actual }
            }
            CommandError::Conflict { .. } => Self::Conflict {
                code: "conflict",
                detail: error.to_string(),
            },
            CommandError::ClaimTaken { kind } => {
                let code = match kind.as_str() {
                    EMAIL_CLAIM => "email_taken",
                    KEY_CLAIM => {
                        return Self::Conflict {
                            code: "already_exists",
                            detail: CalendarError::AlreadyExists.to_string(),
                        }
                    }
                    USERNAME_CLAIM => "username_taken",
                    SLUG_CLAIM => {
                        return Self::Conflict {
                            code: "category_slug_taken",
                            detail: "a category with this slug already stands under this parent"
                                .into(),
                        }
                    }
                    _ => "already_taken",
                };
                Self::Conflict {
                    code,
                    detail: format!("this {kind} is already registered"),
                }
            }
            CommandError::Store(store) => store.into(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::Unavailable(Box::new(error))
    }
}

/// The search index failed (its files, say): the service is unavailable, not the request wrong.
impl From<eshop_infra::search::SearchError> for ApiError {
    fn from(error: eshop_infra::search::SearchError) -> Self {
        Self::Unavailable(Box::new(error))
    }
}
