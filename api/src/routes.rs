//! One router per area; `crate::server` merges them.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod calendar;
pub mod catalog;
pub mod categories;
pub mod contract;
pub mod health;
pub mod metrics;
pub mod movie_cache;
pub mod movie_import;
pub mod movies;
pub mod orders;
pub mod payments;
pub mod products;
pub mod schedules;
pub mod search;
pub mod shopping;
pub mod tasks;
pub mod users;

use serde::Deserialize;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// `?cursor=&limit=` of a list endpoint.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    pub cursor: Option<String>,
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
}

impl PageParams {
    /// The page size asked for (`default` when absent); 422 outside 1 to `max`.
    pub fn limit(&self, default: i64, max: i64) -> Result<i64, ApiError> {
        let limit = self.limit.unwrap_or(default);
        if (1..=max).contains(&limit) {
            Ok(limit)
        } else {
            Err(ApiError::field("limit", format!("must be 1 to {max}")))
        }
    }
}

/// How long `?min_version=N` waits for the read model to reach version N.
pub const READ_YOUR_WRITES_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Read your own writes in a list: waits (up to `READ_YOUR_WRITES_WAIT`) until `reached`
/// finds the list's read model holding the aggregates of `aggregate_type` that `user_id`'s
/// answered commands wrote lately, at the versions they reached (`RecentWrites`). A user who
/// wrote none costs one Redis read; Redis down or the read model not there in time, the list
/// reads as it is, as it always did.
pub async fn after_own_writes<Fut>(
    state: &AppState,
    user_id: Uuid,
    aggregate_type: &str,
    reached: impl FnOnce(Vec<(Uuid, u64)>) -> Fut,
) -> Result<(), ApiError>
where
    Fut: std::future::Future<Output = Result<bool, sqlx::Error>>,
{
    let mine = state.recent_writes.of(user_id, aggregate_type).await;
    if mine.is_empty() {
        return Ok(());
    }
    if !reached(mine).await? {
        tracing::debug!(%user_id, aggregate_type, "a list read without the caller's latest writes");
    }
    Ok(())
}

/// The read model has not reached the version the client asked for in time.
pub fn not_yet_visible(version: u64) -> ApiError {
    ApiError::NotYetVisible { version }
}

/// An id from the path; anything that is not a UUID cannot exist.
pub fn parse_id(raw: &str, what: &'static str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(what))
}
