//! Adapters behind the ports of `eshop-commands` and `eshop-projections`: Postgres (via
//! postgres-es and sqlx) for the event store, unique claims, idempotency records and read
//! models; the relay to NATS JetStream and the projection builders that consume it; Redis.

pub mod audit;
pub mod cache;
pub mod claims;
pub mod commit_order;
pub mod consumer;
pub mod database;
pub mod embedded;
pub mod erasure;
pub mod event_headers;
pub mod event_store;
pub mod feeds;
pub mod idempotency;
pub mod leader;
pub mod mail;
pub mod nats;
pub mod operations;
pub mod order_worker;
pub mod password_tokens;
pub mod personal_data;
pub mod profile;
pub mod projector;
pub mod rate_limit;
pub mod read_models;
pub mod recent_writes;
pub mod redis_link;
pub mod relay;
pub mod replay;
pub mod reports;
pub mod scheduler;
pub mod search;
pub mod sessions;
pub mod shutdown;
pub mod simulated_gateway;
pub mod tasks;
/// Test helpers, only with the `testing` feature (tests and benches enable it).
#[cfg(feature = "testing")]
pub mod testing;
pub mod user_directory;

pub use database::{connect, connect_for_listing, migrate, DatabaseSettings};
pub use event_store::PgEventStore;
pub use idempotency::PgIdempotencyRecords;
