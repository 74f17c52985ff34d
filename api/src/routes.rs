//! One router per area; `crate::server` merges them.

pub mod auth;
pub mod health;
pub mod products;
pub mod users;

use uuid::Uuid;

use crate::error::ApiError;

/// An id from the path; anything that is not a UUID cannot exist.
pub fn parse_id(raw: &str, what: &'static str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(what))
}
