//! The event store port: load an aggregate with its version, append with optimistic concurrency.

use std::future::Future;

use cqrs_es::Aggregate;
use eshop_domain::DeclaresClaims;
use uuid::Uuid;

use crate::context::CommandContext;
use crate::error::BoxError;

/// An aggregate rebuilt from its events, with the sequence of the last one (0 when it has none).
#[derive(Debug)]
pub struct Loaded<A> {
    pub aggregate: A,
    pub version: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("another command appended to the aggregate first")]
    Conflict,
    #[error("the {kind} is already taken")]
    ClaimTaken { kind: String },
    #[error("this command was already applied")]
    AlreadyApplied,
    #[error("command id {0} was already used on another aggregate")]
    CommandIdReused(Uuid),
    #[error("events that claim unique values cannot be appended together with other aggregates")]
    ClaimsInBatch,
    #[error("a stored event cannot be read: {0}")]
    Corrupt(String),
    #[error("the event store is unavailable")]
    Unavailable(#[source] BoxError),
}

/// One event of a `StagedAppend`, already serialized.
#[derive(Debug, Clone)]
pub struct StagedEvent {
    pub event_type: String,
    pub event_version: String,
    pub payload: serde_json::Value,
}

/// One command's events on one aggregate, waiting to be appended together with others.
#[derive(Debug, Clone)]
pub struct StagedAppend {
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    /// The aggregate's version the events follow.
    pub expected_version: u64,
    pub events: Vec<StagedEvent>,
    pub context: CommandContext,
}

pub trait EventStore: Send + Sync + 'static {
    fn load<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> impl Future<Output = Result<Loaded<A>, StoreError>> + Send;

    /// Brings `known` (the aggregate at some version) up to date by applying only the events
    /// after that version.
    fn catch_up<A: Aggregate>(
        &self,
        aggregate_id: &str,
        known: Loaded<A>,
    ) -> impl Future<Output = Result<Loaded<A>, StoreError>> + Send;

    /// Appends `events` after `expected_version` in one transaction, together with the unique
    /// claims they declare and the record that `context.command_id` was applied. Returns the new
    /// version. Fails with `Conflict` when the aggregate moved on, `ClaimTaken` when another
    /// aggregate holds a claimed value, `AlreadyApplied` when the command id was seen before.
    fn append<A>(
        &self,
        aggregate_id: &str,
        expected_version: u64,
        events: &[A::Event],
        context: &CommandContext,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send
    where
        A: Aggregate,
        A::Event: DeclaresClaims;

    /// Appends every staged append in one transaction: all of them or none. Fails as `append`
    /// does (`Conflict`, `AlreadyApplied`) when any one of them would.
    fn append_all(
        &self,
        appends: &[StagedAppend],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The aggregate (type and id) a command with this id appended to, if it did.
    fn applied_to(
        &self,
        command_id: Uuid,
    ) -> impl Future<Output = Result<Option<(String, String)>, StoreError>> + Send;

    /// The id of the aggregate holding `value` for the unique claim `kind`, if any.
    fn claim_holder(
        &self,
        kind: &str,
        value: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}
