//! What makes a read model: a record per aggregate, its name, the aggregate type it follows,
//! and how one event changes it (pure). `eshop-infra` stores it (its table and queries) and
//! builds it from the stream with one generic builder for every read model.

use uuid::Uuid;

use crate::{ProjectionError, RelayedEvent};

/// A read model's record: one per aggregate of `AGGREGATE_TYPE`.
pub trait ReadModel: Clone + Send + Sync + Unpin + 'static {
    /// Names the projection (its durable consumer, its status row, its leader lock): letters,
    /// digits and `_`.
    const NAME: &'static str;
    /// The aggregate type whose events it follows.
    const AGGREGATE_TYPE: &'static str;

    /// The aggregate the record belongs to (its row's key).
    fn id(&self) -> Uuid;
    /// The aggregate version the record reflects.
    fn version(&self) -> u64;
    /// The record after `event`, or `None` when the event was already applied. A row applies an
    /// event only on top of its predecessor (see `step`), so a gap is an error.
    fn apply(current: Option<&Self>, event: &RelayedEvent)
        -> Result<Option<Self>, ProjectionError>;

    /// `apply` in place: true when `record` changed, left as it was on an error. The builders
    /// evolve each record through a whole batch of its events with this; a record that grows
    /// with its events (a movie's pending rating rows, say) overrides it so that a batch is
    /// not a copy of the record per event.
    fn evolve(record: &mut Option<Self>, event: &RelayedEvent) -> Result<bool, ProjectionError> {
        match Self::apply(record.as_ref(), event)? {
            Some(next) => {
                *record = Some(next);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
