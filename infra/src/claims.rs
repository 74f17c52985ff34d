//! Unique claims (see `eshop_domain::claims`): stored as digests, looked up by value.

use eshop_commands::digest::sha256_hex;
use eshop_commands::StoreError;
use sqlx::PgPool;

use crate::event_store::unavailable;

/// The stored form of a claimed value: the claims table holds no personal data in clear.
pub fn digest(kind: &str, value: &str) -> String {
    sha256_hex(&[kind.as_bytes(), value.as_bytes()])
}

/// The id of the aggregate holding `value` for `kind`, if any.
pub async fn holder(pool: &PgPool, kind: &str, value: &str) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT aggregate_id FROM unique_claims WHERE kind = $1 AND value_digest = $2",
    )
    .bind(kind)
    .bind(digest(kind, value))
    .fetch_optional(pool)
    .await
    .map_err(unavailable)
}
