//! eshop's domain: aggregates, their commands and events, and the value types they trust.
//!
//! Nothing here does I/O. Values arrive already validated (see [`values`]), so an aggregate
//! only enforces rules that depend on its own history.

pub mod calendar;
pub mod cart;
pub mod category;
pub mod claims;
pub mod movie;
pub mod order;
pub mod payment;
pub mod personal;
pub mod product;
pub mod review;
pub mod upcasting;
pub mod user;
pub mod values;
pub mod wishlist;

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

/// Payload fields (of `data`) that hold personal data, each a [`Personal`] value. The event
/// store seals them with the key of the aggregate they belong to (the user), and erasing the
/// user deletes that key: the events stay, their personal fields read as absent.
pub fn personal_fields(aggregate_type: &str) -> &'static [&'static str] {
    match aggregate_type {
        user::User::TYPE => &["email", "first_name", "last_name"],
        _ => &[],
    }
}

/// Applies and records the events an aggregate decided on. Every eshop aggregate decides all
/// its events before it applies any (`decide`, then `emit`), so a rejected command leaves the
/// aggregate untouched: the command bus relies on that to keep aggregates in memory.
pub(crate) async fn emit<A: Aggregate>(
    aggregate: &mut A,
    events: Vec<A::Event>,
    sink: &cqrs_es::event_sink::EventSink<A>,
) {
    for event in events {
        sink.write(event, aggregate).await;
    }
}
