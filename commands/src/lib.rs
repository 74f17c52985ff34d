//! The application layer: the use cases (`orders`, `directory`), how commands are carried out
//! (context and metadata, dispatch with optimistic-concurrency retries, idempotency), and the
//! ports (traits) the adapters in `infra` implement.

pub mod bus;
pub mod context;
pub mod digest;
pub mod directory;
pub mod error;
pub mod idempotency;
pub mod orders;
pub mod payment_gateway;
pub mod schedules;
pub mod sessions;
pub mod store;

pub use bus::{CommandBus, CommandError, Executed, RetryPolicy};
pub use context::{Actor, CommandContext};
pub use error::BoxError;
pub use idempotency::{Idempotency, IdempotencyRecords, PriorRequest, StoredResponse};
pub use store::{EventStore, Loaded, StagedAppend, StagedEvent, StoreError};
