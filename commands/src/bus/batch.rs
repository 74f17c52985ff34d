//! Several commands on several aggregates, committed in one transaction: all or none.
//!
//! Each command is decided exactly as `CommandBus::execute_with` decides it (on the in-memory
//! copy, confirmed against the store before a refusal or a no-op is believed), and its events
//! are staged instead of appended. A later command on the same aggregate sees the staged
//! events. `commit` appends everything at once; each aggregate's append still checks its
//! version, so a stale copy fails the whole batch, which the caller runs again. A batch
//! dropped without a successful commit stored nothing.

use std::any::Any;
use std::collections::HashMap;

use cqrs_es::{Aggregate, DomainEvent};
use eshop_domain::DeclaresClaims;

use super::locks::AggregateLock;
use super::{CacheKey, CommandBus, CommandError, Decision, Executed};
use crate::context::CommandContext;
use crate::store::{EventStore, Loaded, StagedAppend, StagedEvent, StoreError};

/// An aggregate the batch touched, as the staged commands left it.
struct Touched {
    after: Box<dyn Any + Send>,
    /// Whether the copy is known to be the stored aggregate (read from the store in this batch).
    current: bool,
}

pub struct Batch<'bus, S> {
    bus: &'bus CommandBus<S>,
    _locks: Vec<AggregateLock>,
    /// The aggregates declared, sorted.
    locked: Vec<CacheKey>,
    touched: HashMap<CacheKey, Touched>,
    appends: Vec<StagedAppend>,
}

impl<S: EventStore> CommandBus<S> {
    /// Opens a batch over the aggregates `(type, id)` it may touch, holding their locks. They
    /// are taken in one order, by type and then id, so batches (and single commands, which hold
    /// one lock) never wait on each other in a cycle. In a purchase the new order and payment
    /// come first, so while it queues for a busy product it holds nothing another purchase
    /// wants. Letting go of all and retrying when one is taken was tried: two batches can then
    /// keep trading the same two locks for ever.
    pub async fn batch(
        &self,
        aggregates: impl IntoIterator<Item = (&'static str, impl Into<String>)>,
    ) -> Batch<'_, S> {
        let mut locked: Vec<CacheKey> = aggregates
            .into_iter()
            .map(|(aggregate_type, aggregate_id)| (aggregate_type, aggregate_id.into()))
            .collect();
        locked.sort_unstable();
        locked.dedup();
        let mut locks = Vec::with_capacity(locked.len());
        for (aggregate_type, aggregate_id) in &locked {
            locks.push(self.locks.lock(aggregate_type, aggregate_id).await);
        }
        Batch {
            bus: self,
            _locks: locks,
            locked,
            touched: HashMap::new(),
            appends: Vec::new(),
        }
    }
}

impl<S: EventStore> Batch<'_, S> {
    /// The aggregate as the batch sees it, with whether it is known current.
    async fn take<A>(&mut self, aggregate_id: &str) -> Result<(Loaded<A>, bool), StoreError>
    where
        A: Aggregate + 'static,
    {
        let key = (A::TYPE, aggregate_id.to_string());
        assert!(
            self.locked.binary_search(&key).is_ok(),
            "a batch touched {} {aggregate_id}, which it did not declare",
            A::TYPE
        );
        if let Some(touched) = self.touched.get_mut(&key) {
            let after = std::mem::replace(&mut touched.after, Box::new(()));
            let loaded = after
                .downcast::<Loaded<A>>()
                .map_err(|_| StoreError::Corrupt(format!("{} {aggregate_id}", A::TYPE)))?;
            return Ok((*loaded, touched.current));
        }
        let (loaded, current) = match self.bus.take_cached::<A>(aggregate_id) {
            Some(cached) => (cached, false),
            None => (self.bus.store.load::<A>(aggregate_id).await?, true),
        };
        self.touched.insert(
            key,
            Touched {
                after: Box::new(()),
                current,
            },
        );
        Ok((loaded, current))
    }

    /// Puts back the aggregate as the batch now sees it.
    fn put<A>(&mut self, aggregate_id: &str, loaded: Loaded<A>, current: bool)
    where
        A: Aggregate + 'static,
    {
        let touched = self
            .touched
            .get_mut(&(A::TYPE, aggregate_id.to_string()))
            .expect("taken before");
        touched.after = Box::new(loaded);
        touched.current = current;
    }

    /// Decides `command` as `CommandBus::execute_with` would and stages its events.
    #[tracing::instrument(
        level = "debug",
        name = "command",
        skip_all,
        fields(aggregate_type = A::TYPE, aggregate_id = %aggregate_id, command_id = %context.command_id, staged = true)
    )]
    pub async fn execute_with<A, T>(
        &mut self,
        aggregate_id: &str,
        command: A::Command,
        context: &CommandContext,
        answer: impl FnOnce(&A) -> T,
    ) -> Result<Executed<T>, CommandError<A::Error>>
    where
        A: Aggregate<Services = ()> + 'static,
        A::Command: Clone,
        A::Event: DeclaresClaims,
    {
        let (loaded, current) = self.take::<A>(aggregate_id).await?;
        let (mut loaded, decision) = self
            .bus
            .decide_confirmed(aggregate_id, loaded, current, &command, context, None)
            .await?;
        let events = match decision {
            Decision::Append(events) if !events.is_empty() => events,
            Decision::Append(_) | Decision::AppliedBefore => {
                let executed = Executed {
                    aggregate: answer(&loaded.aggregate),
                    version: loaded.version,
                    appended: 0,
                };
                self.put(aggregate_id, loaded, true);
                return Ok(executed);
            }
            Decision::Refused(refusal) => {
                self.put(aggregate_id, loaded, true);
                return Err(refusal);
            }
        };
        if events.iter().any(|event| !event.unique_claims().is_empty()) {
            self.put(aggregate_id, loaded, current);
            return Err(StoreError::ClaimsInBatch.into());
        }
        let staged = events
            .iter()
            .map(|event| {
                Ok(StagedEvent {
                    event_type: event.event_type(),
                    event_version: event.event_version(),
                    payload: serde_json::to_value(event)
                        .map_err(|error| StoreError::Corrupt(error.to_string()))?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.appends.push(StagedAppend {
            aggregate_type: A::TYPE,
            aggregate_id: aggregate_id.to_string(),
            expected_version: loaded.version,
            events: staged,
            context: context.clone(),
        });
        loaded.version += events.len() as u64;
        let executed = Executed {
            aggregate: answer(&loaded.aggregate),
            version: loaded.version,
            appended: events.len(),
        };
        self.put(aggregate_id, loaded, current);
        Ok(executed)
    }

    /// Reads an aggregate as the batch sees it (staged commands included).
    pub async fn read<A, T>(
        &mut self,
        aggregate_id: &str,
        view: impl FnOnce(&A, u64) -> T,
    ) -> Result<T, StoreError>
    where
        A: Aggregate + 'static,
    {
        let (loaded, current) = self.take::<A>(aggregate_id).await?;
        let answer = view(&loaded.aggregate, loaded.version);
        self.put(aggregate_id, loaded, current);
        Ok(answer)
    }

    /// Appends everything staged in one transaction. On success the bus keeps the aggregates
    /// as the batch left them. Otherwise nothing was stored, and the bus forgets the
    /// aggregates the batch touched (as `execute_with` does after a conflict): the next
    /// command reads them afresh. Keeping a copy from before the batch instead would cost a
    /// clone of each aggregate on every batch.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        if !self.appends.is_empty() {
            self.bus.store.append_all(&self.appends).await?;
        }
        for staged in &self.appends {
            let version = staged.expected_version + staged.events.len() as u64;
            crate::own_writes::note(staged.aggregate_type, &staged.aggregate_id, version);
        }
        for (key, touched) in self.touched.drain() {
            self.bus.keep_boxed(key, touched.after);
        }
        Ok(())
    }
}
