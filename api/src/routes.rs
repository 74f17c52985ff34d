//! One router per area; `crate::server` merges them.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod health;
pub mod metrics;
pub mod orders;
pub mod payments;
pub mod products;
pub mod schedules;
pub mod shopping;
pub mod tasks;
pub mod users;

use uuid::Uuid;

use crate::error::ApiError;

/// How long `?min_version=N` waits for the read model to reach version N.
pub const READ_YOUR_WRITES_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The read model has not reached the version the client asked for in time.
pub fn not_yet_visible(version: u64) -> ApiError {
    ApiError::NotYetVisible { version }
}

/// An id from the path; anything that is not a UUID cannot exist.
pub fn parse_id(raw: &str, what: &'static str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(what))
}
