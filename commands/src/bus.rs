//! Carries out one command on one aggregate: load, decide, append; retry on conflicts.

use std::any::Any;
use std::collections::HashMap;
use std::time::Duration;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use eshop_domain::DeclaresClaims;

use crate::context::CommandContext;
use crate::store::{EventStore, Loaded, StoreError};

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(100),
        }
    }
}

impl RetryPolicy {
    /// "Full jitter": a random wait up to an exponentially growing ceiling, so writers that
    /// collided do not collide again in step.
    pub fn delay_before(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1 << attempt.min(16))
            .min(self.max_delay);
        let ceiling_micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=ceiling_micros))
    }
}

/// The outcome of a command: the aggregate after it (or the answer drawn from it), and its
/// version.
#[derive(Debug)]
pub struct Executed<A> {
    pub aggregate: A,
    pub version: u64,
    /// How many events the command appended (0 for a no-op or an already-applied command).
    pub appended: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Rejected(E),
    #[error("expected version {expected}, but the aggregate is at version {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
    #[error("the aggregate kept changing; gave up after {attempts} attempts")]
    Conflict { attempts: u32 },
    #[error("the {kind} is already taken")]
    ClaimTaken { kind: String },
    #[error(transparent)]
    Store(StoreError),
}

impl<E: std::error::Error + 'static> From<StoreError> for CommandError<E> {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::ClaimTaken { kind } => Self::ClaimTaken { kind },
            other => Self::Store(other),
        }
    }
}

/// What a command came to once confirmed against the store (`decide_confirmed`).
enum Decision<A: Aggregate>
where
    A::Error: 'static,
{
    /// These events (none: nothing to do), already applied to the copy.
    Append(Vec<A::Event>),
    Refused(CommandError<A::Error>),
    /// The command was applied before; the copy is caught up.
    AppliedBefore,
}

impl<A: Aggregate> From<Result<Vec<A::Event>, CommandError<A::Error>>> for Decision<A>
where
    A::Error: 'static,
{
    fn from(decided: Result<Vec<A::Event>, CommandError<A::Error>>) -> Self {
        match decided {
            Ok(events) => Self::Append(events),
            Err(refusal) => Self::Refused(refusal),
        }
    }
}

/// Aggregates kept in memory between commands: at most twice this many (see `Kept`).
const CACHED_AGGREGATES: usize = 10_000;

type CacheKey = (&'static str, String);

/// The aggregates kept in memory, in two generations: when the recent one is full it becomes
/// the old one, and the old one is dropped. Whatever was used since the last turn survives
/// it, so a hot aggregate is not reloaded from its whole history when the cache turns over.
#[derive(Default)]
struct Kept {
    recent: HashMap<CacheKey, Box<dyn Any + Send>>,
    old: HashMap<CacheKey, Box<dyn Any + Send>>,
}

impl Kept {
    fn take(&mut self, key: &CacheKey) -> Option<Box<dyn Any + Send>> {
        self.recent.remove(key).or_else(|| self.old.remove(key))
    }

    fn contains(&self, key: &CacheKey) -> bool {
        self.recent.contains_key(key) || self.old.contains_key(key)
    }

    fn keep(&mut self, key: CacheKey, loaded: Box<dyn Any + Send>) {
        if self.recent.len() >= CACHED_AGGREGATES {
            self.old = std::mem::take(&mut self.recent);
        }
        self.old.remove(&key);
        self.recent.insert(key, loaded);
    }
}

pub struct CommandBus<S> {
    store: S,
    retry: RetryPolicy,
    locks: AggregateLocks,
    /// The last known state of recently used aggregates, with its version. A command loads
    /// only the events after it (usually none), so its cost does not grow with the history.
    /// Being stale is harmless: the append checks the version anyway.
    aggregates: std::sync::Mutex<Kept>,
}

impl<S> CommandBus<S> {
    /// `keep` for a `Loaded<A>` in a box.
    fn keep_boxed(&self, key: CacheKey, loaded: Box<dyn Any + Send>) {
        self.aggregates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .keep(key, loaded);
    }
}

impl<S: EventStore> CommandBus<S> {
    pub fn new(store: S, retry: RetryPolicy) -> Self {
        Self {
            store,
            retry,
            locks: AggregateLocks::default(),
            aggregates: std::sync::Mutex::default(),
        }
    }

    /// The in-memory copy of an aggregate, taken out of the cache (a command puts it back).
    fn take_cached<A>(&self, aggregate_id: &str) -> Option<Loaded<A>>
    where
        A: Aggregate + 'static,
    {
        self.aggregates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take(&(A::TYPE, aggregate_id.to_string()))
            .and_then(|entry| entry.downcast::<Loaded<A>>().ok())
            .map(|known| *known)
    }

    /// The aggregate now: the cached state (taken out of the cache) caught up, or a full load.
    async fn load_current<A>(&self, aggregate_id: &str) -> Result<Loaded<A>, StoreError>
    where
        A: Aggregate + 'static,
    {
        match self.take_cached::<A>(aggregate_id) {
            Some(known) => self.store.catch_up(aggregate_id, known).await,
            None => self.store.load::<A>(aggregate_id).await,
        }
    }

    /// Puts an aggregate (exactly as of `version`) back for the next command.
    fn keep<A>(&self, aggregate_id: &str, aggregate: A, version: u64)
    where
        A: Aggregate + 'static,
    {
        self.keep_boxed(
            (A::TYPE, aggregate_id.to_string()),
            Box::new(Loaded { aggregate, version }),
        );
    }

    /// Declares `aggregate_id` new (a fresh random id): the first command on it decides on the
    /// empty aggregate without reading the store. Were it not new after all, that command's
    /// append conflicts and is retried on the stored aggregate.
    pub fn assume_new<A>(&self, aggregate_id: &str)
    where
        A: Aggregate + 'static,
    {
        let known = self
            .aggregates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&(A::TYPE, aggregate_id.to_string()));
        if !known {
            self.keep(aggregate_id, A::default(), 0);
        }
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Reads an aggregate through the in-memory copy (caught up with the store), so reading a
    /// long-lived aggregate costs the same as a short one.
    pub async fn read<A, T>(
        &self,
        aggregate_id: &str,
        view: impl FnOnce(&A, u64) -> T,
    ) -> Result<T, StoreError>
    where
        A: Aggregate + 'static,
    {
        let _queued = self.locks.lock(A::TYPE, aggregate_id).await;
        let Loaded { aggregate, version } = self.load_current::<A>(aggregate_id).await?;
        let answer = view(&aggregate, version);
        self.keep(aggregate_id, aggregate, version);
        Ok(answer)
    }

    /// Reads the in-memory copy as it is, without asking the store whether it moved on (a full
    /// load when there is none): for answering with what this process itself just did.
    pub async fn read_as_known<A, T>(
        &self,
        aggregate_id: &str,
        view: impl FnOnce(&A, u64) -> T,
    ) -> Result<T, StoreError>
    where
        A: Aggregate + 'static,
    {
        let _queued = self.locks.lock(A::TYPE, aggregate_id).await;
        let Loaded { aggregate, version } = match self.take_cached::<A>(aggregate_id) {
            Some(known) => known,
            None => self.store.load::<A>(aggregate_id).await?,
        };
        let answer = view(&aggregate, version);
        self.keep(aggregate_id, aggregate, version);
        Ok(answer)
    }

    /// A copy of an aggregate, read through the in-memory copy (see `read`).
    pub async fn load<A>(&self, aggregate_id: &str) -> Result<Loaded<A>, StoreError>
    where
        A: Aggregate + Clone + 'static,
    {
        self.read(aggregate_id, |aggregate: &A, version| Loaded {
            aggregate: aggregate.clone(),
            version,
        })
        .await
    }

    /// Runs `command` against the aggregate `aggregate_id`. With `expected_version`, the command
    /// only applies to exactly that version (`If-Match`). Answers with a copy of the aggregate
    /// after it; see `execute_with` to answer without copying.
    pub async fn execute<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        context: &CommandContext,
        expected_version: Option<u64>,
    ) -> Result<Executed<A>, CommandError<A::Error>>
    where
        A: Aggregate<Services = ()> + Clone + 'static,
        A::Command: Clone,
        A::Event: DeclaresClaims,
        A::Error: 'static,
    {
        self.execute_with(aggregate_id, command, context, expected_version, A::clone)
            .await
    }

    /// Like `execute`, but the answer is `answer(aggregate after the command)`. The aggregate
    /// itself stays in memory for the next command on it, so a command costs the same however
    /// long the aggregate's history is.
    ///
    /// The command is decided on the in-memory copy without asking the store first. An append
    /// checks the version anyway, so a stale copy costs a conflict and a retry, never a wrong
    /// write. Any other outcome (a rejection, nothing to do, a version mismatch) is only
    /// answered once the copy is known to be current: a stale copy must not refuse a command
    /// that the stored aggregate would accept, nor skip one it would act on.
    ///
    /// Relies on what every eshop aggregate does: `handle` decides all its events before it
    /// writes any, so a rejected command left the aggregate as it was.
    #[tracing::instrument(
        level = "debug",
        name = "command",
        skip_all,
        fields(aggregate_type = A::TYPE, aggregate_id = %aggregate_id, command_id = %context.command_id)
    )]
    pub async fn execute_with<A, T>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        context: &CommandContext,
        expected_version: Option<u64>,
        answer: impl FnOnce(&A) -> T,
    ) -> Result<Executed<T>, CommandError<A::Error>>
    where
        A: Aggregate<Services = ()> + 'static,
        A::Command: Clone,
        A::Event: DeclaresClaims,
        A::Error: 'static,
    {
        let _queued = self.locks.lock(A::TYPE, aggregate_id).await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // After a failed attempt our own append may have landed: answer as a repeat.
            if attempt > 1 && self.applied_here::<A>(aggregate_id, context).await? {
                return self.answer_current(aggregate_id, answer).await;
            }
            let (loaded, current) = match self.take_cached::<A>(aggregate_id) {
                Some(cached) => (cached, false),
                None => (self.store.load::<A>(aggregate_id).await?, true),
            };
            let (loaded, decision) = self
                .decide_confirmed(
                    aggregate_id,
                    loaded,
                    current,
                    &command,
                    context,
                    expected_version,
                )
                .await?;
            let events = match decision {
                Decision::Append(events) => events,
                Decision::Refused(refusal) => {
                    self.keep(aggregate_id, loaded.aggregate, loaded.version);
                    return Err(refusal);
                }
                Decision::AppliedBefore => Vec::new(),
            };
            let Loaded { aggregate, version } = loaded;
            if events.is_empty() {
                let answer = answer(&aggregate);
                self.keep(aggregate_id, aggregate, version);
                return Ok(Executed {
                    aggregate: answer,
                    version,
                    appended: 0,
                });
            }
            match self
                .store
                .append::<A>(aggregate_id, version, &events, context)
                .await
            {
                Ok(new_version) => {
                    crate::own_writes::note(A::TYPE, aggregate_id, new_version);
                    let answer = answer(&aggregate);
                    self.keep(aggregate_id, aggregate, new_version);
                    return Ok(Executed {
                        aggregate: answer,
                        version: new_version,
                        appended: events.len(),
                    });
                }
                // The aggregate holds events that were not stored: it is dropped, and the
                // next attempt loads afresh.
                Err(StoreError::Conflict | StoreError::AlreadyApplied)
                    if attempt < self.retry.max_attempts =>
                {
                    tracing::debug!(
                        aggregate_type = A::TYPE,
                        aggregate_id,
                        attempt,
                        "append conflict; retrying"
                    );
                    tokio::time::sleep(self.retry.delay_before(attempt)).await;
                }
                Err(StoreError::Conflict) => {
                    return Err(CommandError::Conflict { attempts: attempt })
                }
                Err(other) => return Err(other.into()),
            }
        }
    }

    /// The events `command` would append to `aggregate` (at `version`), applied to it; a
    /// refusal leaves it as it was.
    async fn decide<A>(
        &self,
        aggregate: &mut A,
        version: u64,
        command: &A::Command,
        expected_version: Option<u64>,
    ) -> Result<Vec<A::Event>, CommandError<A::Error>>
    where
        A: Aggregate<Services = ()>,
        A::Command: Clone,
        A::Error: 'static,
    {
        if let Some(expected) = expected_version.filter(|expected| *expected != version) {
            return Err(CommandError::VersionMismatch {
                expected,
                actual: version,
            });
        }
        let sink = EventSink::default();
        aggregate
            .handle(command.clone(), &(), &sink)
            .await
            .map_err(CommandError::Rejected)?;
        Ok(sink.collect().await)
    }

    /// Decides `command` on `loaded`, a copy that is `current` when just read from the store.
    /// Events are believed as they are (their append checks the version). Anything else is
    /// confirmed first: a repeat of an applied command is reported as such, and otherwise the
    /// copy is caught up and the command decided again. Returns the copy as it now is.
    async fn decide_confirmed<A>(
        &self,
        aggregate_id: &str,
        mut loaded: Loaded<A>,
        mut current: bool,
        command: &A::Command,
        context: &CommandContext,
        expected_version: Option<u64>,
    ) -> Result<(Loaded<A>, Decision<A>), StoreError>
    where
        A: Aggregate<Services = ()>,
        A::Command: Clone,
        A::Error: 'static,
    {
        let mut asked_if_applied = false;
        loop {
            let decided = self
                .decide(
                    &mut loaded.aggregate,
                    loaded.version,
                    command,
                    expected_version,
                )
                .await;
            if matches!(&decided, Ok(events) if !events.is_empty()) {
                return Ok((loaded, Decision::from(decided)));
            }
            if context.repeatable && !asked_if_applied {
                asked_if_applied = true;
                if self.applied_here::<A>(aggregate_id, context).await? {
                    if !current {
                        loaded = self.store.catch_up(aggregate_id, loaded).await?;
                    }
                    return Ok((loaded, Decision::AppliedBefore));
                }
            }
            if current {
                return Ok((loaded, Decision::from(decided)));
            }
            loaded = self.store.catch_up(aggregate_id, loaded).await?;
            current = true;
        }
    }

    /// Whether `context`'s command was already applied, to this aggregate. The same command id
    /// on another aggregate is a bug that would silently skip this command.
    async fn applied_here<A: Aggregate>(
        &self,
        aggregate_id: &str,
        context: &CommandContext,
    ) -> Result<bool, StoreError> {
        match self.store.applied_to(context.command_id).await? {
            None => Ok(false),
            Some((applied_type, applied_id))
                if applied_type == A::TYPE && applied_id == aggregate_id =>
            {
                Ok(true)
            }
            Some(_) => Err(StoreError::CommandIdReused(context.command_id)),
        }
    }

    /// The answer to a repeat of an applied command: the current state, nothing appended.
    async fn answer_current<A, T>(
        &self,
        aggregate_id: &str,
        answer: impl FnOnce(&A) -> T,
    ) -> Result<Executed<T>, CommandError<A::Error>>
    where
        A: Aggregate + 'static,
    {
        let Loaded { aggregate, version } = self.load_current::<A>(aggregate_id).await?;
        let answer = answer(&aggregate);
        self.keep(aggregate_id, aggregate, version);
        Ok(Executed {
            aggregate: answer,
            version,
            appended: 0,
        })
    }
}

mod batch;
mod locks;
pub use batch::Batch;
use locks::AggregateLocks;

#[cfg(test)]
mod tests;
