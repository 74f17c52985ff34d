//! Adapters behind the ports of `eshop-commands`: Postgres (via postgres-es and sqlx) for the
//! event store, unique claims and idempotency records, plus database set-up and migrations.

pub mod claims;
pub mod database;
pub mod event_store;
pub mod idempotency;
#[doc(hidden)]
pub mod testing;

pub use database::{connect, migrate, DatabaseSettings};
pub use event_store::PgEventStore;
pub use idempotency::PgIdempotencyRecords;
