//! eshop's domain: aggregates, their commands and events, and the value types they trust.
//!
//! Nothing here does I/O. Values arrive already validated (see [`values`]), so an aggregate
//! only enforces rules that depend on its own history.

pub mod claims;
pub mod order;
pub mod payment;
pub mod personal;
pub mod product;
pub mod user;
pub mod values;

use cqrs_es::Aggregate;

pub use claims::{DeclaresClaims, UniqueClaim};
pub use personal::Personal;

/// Payload fields (of `data`) that stay in the event store and are never published: the
/// relay removes them, and docs/events.md leaves them out.
pub fn unpublished_fields(aggregate_type: &str) -> &'static [&'static str] {
    match aggregate_type {
        user::User::TYPE => &["password_hash"],
        _ => &[],
    }
}
