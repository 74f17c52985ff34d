//! The projection builder: one generic builder for every read model (`read_models::Table`),
//! reading one durable JetStream consumer per read model through the shared `ConsumerRunner`.
//!
//! A batch of messages is applied in one transaction that also records how far the projection
//! got (the stream sequence); then the cache is invalidated, the versions written are announced
//! (`read_models::progress`), and each message is acknowledged. Rows carry their aggregate version, so a redelivered
//! event changes nothing, and an event that arrives after a gap has the missing events read
//! from the store rather than waiting for their redelivery. An event that cannot be applied
//! stops this projection only: the events before it are committed one by one, the error is
//! recorded (see `GET /api/admin/projections`), everything after it goes back to JetStream, and
//! the projection retries from it with a growing pause until it applies (after a fix, say).
//!
//! One builder per read model runs at a time, on whichever replica holds its leader lock; a new
//! leader first takes back what a dead one left unacknowledged (`rewind_unacknowledged`).

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, Message};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use eshop_projections::RelayedEvent;
use uuid::Uuid;

use crate::cache::Cache;
use crate::consumer::{ConsumerRunner, ConsumerSpec, Handled, Handler, Settle};
use crate::leader::run_as_leader;
use crate::nats::EventSubjects;
use crate::personal_data::PersonalDataKeys;
use crate::read_models::{apply_events, progress, ApplyError, StoreReader, Table};
use crate::shutdown::Shutdown;

use eshop_commands::BoxError;

pub fn consumer_name(projection: &str) -> String {
    format!("projection_{projection}")
}

/// How every projection builder reads its consumer.
#[derive(Debug, Clone, Copy)]
pub struct ProjectorSettings {
    /// Events applied in one transaction, at most.
    pub batch: usize,
    /// How long JetStream waits for an acknowledgement before delivering again.
    pub ack_wait: Duration,
}

impl Default for ProjectorSettings {
    fn default() -> Self {
        Self {
            batch: 500,
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// What every builder needs, whatever its read model.
#[derive(Clone)]
pub struct ProjectorContext {
    pub pool: PgPool,
    pub jetstream: jetstream::Context,
    pub subjects: EventSubjects,
    /// Where the cached views of changed products are dropped (none: nothing cached).
    pub cache: Option<Arc<Cache>>,
    pub settings: ProjectorSettings,
}

/// Builds read model `R` from the stream.
pub struct Projector<R> {
    context: ProjectorContext,
    keys: PersonalDataKeys,
    store: Arc<StoreReader>,
    model: PhantomData<fn() -> R>,
}

impl<R> Clone for Projector<R> {
    fn clone(&self) -> Self {
        Self {
            context: self.context.clone(),
            keys: self.keys.clone(),
            store: self.store.clone(),
            model: PhantomData,
        }
    }
}

/// A message whose body could not even be read is an event that cannot be applied.
fn decode(message: &Message) -> Result<RelayedEvent, ApplyError> {
    serde_json::from_slice(&message.payload).map_err(|error| {
        ApplyError::Projection(eshop_projections::ProjectionError::Unreadable {
            aggregate_type: "?".into(),
            aggregate_id: message.subject.to_string(),
            sequence: 0,
            reason: error.to_string(),
        })
    })
}

fn stream_sequence(message: &Message) -> i64 {
    message
        .info()
        .map(|info| i64::try_from(info.stream_sequence).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

impl<R: Table> Projector<R> {
    pub fn new(context: ProjectorContext) -> Self {
        let keys = PersonalDataKeys::new(context.pool.clone());
        Self {
            store: Arc::new(StoreReader::new(keys.clone())),
            keys,
            context,
            model: PhantomData,
        }
    }

    /// The consumer this builder reads (its durable name is `consumer_name(R::NAME)`).
    pub fn runner(&self) -> ConsumerRunner {
        let subjects = &self.context.subjects;
        ConsumerRunner::new(
            self.context.jetstream.clone(),
            ConsumerSpec {
                ack_wait: self.context.settings.ack_wait,
                max_ack_pending: Some(10_000),
                batch: self.context.settings.batch.max(1),
                ..ConsumerSpec::new(
                    &consumer_name(R::NAME),
                    subjects.stream_name(),
                    subjects.of_type(R::AGGREGATE_TYPE),
                )
            },
        )
    }

    /// Projects until shutdown, whenever this replica holds the projection's lock (one builder
    /// per read model, so events of one aggregate are applied in order).
    pub async fn run(self, shutdown: Shutdown) {
        let lock = format!("eshop-projection-{}", R::NAME);
        let pool = self.context.pool.clone();
        let builder = Arc::new(self);
        run_as_leader(pool, &lock, shutdown, move |connection, shutdown| {
            let builder = builder.clone();
            async move {
                let runner = builder.runner();
                runner.rewind_unacknowledged().await?;
                runner
                    .consume(builder.clone(), shutdown, keep_lead(connection))
                    .await
            }
        })
        .await;
    }

    /// Applies the batch; stops at an event that cannot be applied (the rest is redelivered).
    async fn project(&self, messages: &[Message]) -> Handled {
        if self.commit(messages).await.is_ok() {
            return Handled::Settled(vec![Settle::Ack; messages.len()]);
        }
        // Find the culprit: commit one at a time up to it.
        for (index, message) in messages.iter().enumerate() {
            if let Err(error) = self.commit(std::slice::from_ref(message)).await {
                tracing::error!(projection = R::NAME, error = %error, "cannot apply an event; the projection is stopped");
                let error = match error {
                    ApplyError::Projection(projection) => projection.to_string(),
                    ApplyError::Database(database) => format!("database: {database}"),
                };
                return Handled::Stopped {
                    settled: vec![Settle::Ack; index],
                    error,
                };
            }
        }
        Handled::Settled(vec![Settle::Ack; messages.len()])
    }

    /// One transaction: the read-table writes, the projection's progress, and the announcement
    /// of the versions written (heard once it commits).
    async fn commit(&self, messages: &[Message]) -> Result<(), ApplyError> {
        let Some(last) = messages.last() else {
            return Ok(());
        };
        let mut events = messages.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        self.keys
            .unseal_all(events.iter_mut().map(|event| {
                (
                    event.aggregate_type.as_str(),
                    event.aggregate_id.as_str(),
                    &mut event.payload,
                )
            }))
            .await?;
        let mut tx = self.context.pool.begin().await?;
        let changed: Vec<R> = apply_events(&mut tx, &events, &self.store).await?;
        // A message delivered again late (after a newer one filled its gap from the store) must
        // not move the recorded position back.
        sqlx::query(
            "INSERT INTO projection_status (name, stream_sequence, last_recorded_at, status, last_error, updated_at)
             VALUES ($1, $2, $3, 'running', NULL, now())
             ON CONFLICT (name) DO UPDATE SET
                 stream_sequence = greatest(projection_status.stream_sequence, EXCLUDED.stream_sequence),
                 last_recorded_at = greatest(projection_status.last_recorded_at, EXCLUDED.last_recorded_at),
                 status = 'running', last_error = NULL, updated_at = now()",
        )
        .bind(R::NAME)
        .bind(stream_sequence(last))
        .bind(events.last().map(|event| event.recorded_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if let Some(cache) = &self.context.cache {
            let mut entries: Vec<_> = changed.iter().filter_map(R::cached_as).collect();
            entries.dedup();
            if !entries.is_empty() {
                cache.invalidate(&entries).await;
            }
            let movies: Vec<(Uuid, bool)> = changed
                .iter()
                .filter_map(|record| record.shown_on_movie(&events))
                .collect();
            if !movies.is_empty() {
                let ids: Vec<Uuid> = movies.iter().map(|(id, _)| *id).collect();
                let genres = movies.iter().any(|(_, genres)| *genres);
                cache.invalidate_movies(&ids, genres).await;
            }
        }
        // Only now: a read woken by it must find the cache dropped too ("applied" means no read
        // returns the old value). A lost announcement costs its waiters their deadline check.
        let versions: Vec<_> = changed.iter().map(|r| (r.id(), r.version())).collect();
        if let Ok(mut connection) = self.context.pool.acquire().await {
            if let Err(error) = progress::announce(&mut connection, R::NAME, &versions).await {
                tracing::warn!(projection = R::NAME, error = %error, "cannot announce the versions applied");
            }
        }
        Ok(())
    }

    async fn record_failure(&self, detail: &str) {
        let recorded = sqlx::query(
            "INSERT INTO projection_status (name, status, last_error, updated_at)
             VALUES ($1, 'failed', $2, now())
             ON CONFLICT (name) DO UPDATE SET status = 'failed', last_error = $2, updated_at = now()",
        )
        .bind(R::NAME)
        .bind(detail)
        .execute(&self.context.pool)
        .await;
        if let Err(error) = recorded {
            tracing::warn!(projection = R::NAME, error = %error, "cannot record the failure");
        }
    }
}

impl<R: Table> Handler for Projector<R> {
    async fn handle(&self, batch: Vec<Message>) -> Handled {
        self.project(&batch).await
    }

    async fn stopped(&self, error: &str) {
        self.record_failure(error).await;
    }
}

/// Resolves when the leader lock's connection is gone (checked every 5 s): so is the lead.
async fn keep_lead(mut lock: PgConnection) -> BoxError {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        every.tick().await;
        if let Err(error) = sqlx::query("SELECT 1").execute(&mut lock).await {
            return Box::new(error);
        }
    }
}

/// One projection's health, for `GET /api/admin/projections`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ProjectionReport {
    pub name: String,
    /// The JetStream stream sequence of the last event applied.
    pub position: i64,
    pub lag_events: u64,
    pub lag_seconds: f64,
    pub status: String,
    pub last_error: Option<String>,
    /// The last rebuild (`eshop projections rebuild`), running or not; absent if none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<crate::read_models::rebuild::RebuildStatus>,
}

type StatusRow = (
    i64,
    Option<chrono::DateTime<chrono::Utc>>,
    String,
    Option<String>,
);

/// Seconds from a time (nanoseconds since the epoch) until now; 0 for a time in the future.
fn seconds_since(unix_nanos: i128) -> f64 {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as i128;
    ((now - unix_nanos).max(0) as f64) / 1e9
}

/// Reports on the named projections (from Postgres, and JetStream's view of their consumers).
pub async fn report(
    pool: &PgPool,
    jetstream: &jetstream::Context,
    subjects: &EventSubjects,
    names: &[&str],
) -> Result<Vec<ProjectionReport>, BoxError> {
    let stream = jetstream.get_stream(subjects.stream_name()).await?;
    let mut reports = Vec::with_capacity(names.len());
    for name in names {
        let row: Option<StatusRow> = sqlx::query_as(
            "SELECT stream_sequence, last_recorded_at, status, last_error FROM projection_status WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(pool)
        .await?;
        let applied_any = row.is_some();
        let (position, last_recorded_at, mut status, last_error) =
            row.unwrap_or((0, None, "starting".into(), None));
        let (lag_events, oldest_unapplied, consuming) = match stream
            .get_consumer::<pull::Config>(&consumer_name(name))
            .await
        {
            Ok(mut consumer) => match consumer.info().await {
                Ok(info) => {
                    let lag = info.num_pending + info.num_ack_pending as u64;
                    let oldest = if lag == 0 {
                        None
                    } else {
                        // The first event of the consumer's subjects past what it has
                        // acknowledged: its age is how far behind the projection is.
                        stream
                            .get_first_raw_message_by_subject(
                                &info.config.filter_subject,
                                info.ack_floor.stream_sequence + 1,
                            )
                            .await
                            .ok()
                            .map(|message| message.time)
                    };
                    (lag, oldest, true)
                }
                Err(_) => (0, None, false),
            },
            Err(_) => (0, None, false),
        };
        // Its consumer is there and nothing waits for it: running, though it had nothing
        // to apply yet (a process started on a stream with none of its events).
        if !applied_any && consuming && lag_events == 0 {
            status = "running".into();
        }
        let lag_seconds = match (lag_events, oldest_unapplied, last_recorded_at) {
            (0, _, _) => 0.0,
            (_, Some(published), _) => seconds_since(published.unix_timestamp_nanos()),
            // The stream no longer has it (aged out): time since the last apply, as a bound.
            (_, None, Some(at)) => (chrono::Utc::now() - at)
                .to_std()
                .map_or(0.0, |age| age.as_secs_f64()),
            (_, None, None) => 0.0,
        };
        reports.push(ProjectionReport {
            name: (*name).to_string(),
            position,
            lag_events,
            lag_seconds,
            status,
            last_error,
            rebuild: crate::read_models::rebuild::status(pool, name).await?,
        });
    }
    Ok(reports)
}
