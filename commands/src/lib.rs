//! The application layer: the use cases, how commands are carried out, and the ports (traits)
//! the adapters in `infra` implement.
//!
//! | module | holds |
//! | --- | --- |
//! | `orders` | buying's use cases (purchase, place, checkout, wait, cancel), pricing, payment choice, failure reasons, the order process manager |
//! | `bus`, `context`, `idempotency` | dispatch with optimistic-concurrency retries, command metadata, `Idempotency-Key` answers |
//! | `own_writes` | what one request wrote (aggregates and versions), for reading one's own writes |
//! | `store` | the event store port |
//! | `payment_gateway` | the payment gateway port: tokenize, charge |
//! | `directory` | the user directory port (whom scheduled mail goes to) |
//! | `sessions` | the session port's answers (`Issued`, `RefreshError`) |
//! | `schedules` | schedules as stored, and when one fires |
//! | `digest`, `error` | SHA-256 digests; the workspace's one `BoxError` |

pub mod bus;
pub mod calendar;
pub mod context;
pub mod digest;
pub mod directory;
pub mod error;
pub mod idempotency;
pub mod movies;
pub mod orders;
pub mod own_writes;
pub mod payment_gateway;
pub mod schedules;
pub mod sessions;
pub mod store;

pub use bus::{CommandBus, CommandError, Executed, RetryPolicy};
pub use context::{Actor, CommandContext};
pub use error::BoxError;
pub use idempotency::{Idempotency, IdempotencyRecords, PriorRequest, StoredResponse};
pub use store::{EventStore, Loaded, StagedAppend, StagedEvent, StoreError};
