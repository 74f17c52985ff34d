//! Projection builders: one durable JetStream pull consumer per read model.
//!
//! A batch of messages is applied in one transaction that also records how far the projection
//! got (the stream sequence); then each message is acknowledged. Rows carry their aggregate version, so a redelivered
//! event changes nothing. An event that cannot be applied stops this projection only: the
//! events before it are committed one by one, the error is recorded (see
//! `GET /api/admin/projections`), everything after it goes back to JetStream, and the
//! projection retries from it with a growing pause until it applies (after a fix, say).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::{self, Message};
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use eshop_projections::RelayedEvent;

use crate::leader::run_as_leader;
use crate::nats::EventSubjects;
use crate::personal_data::PersonalDataKeys;
use crate::read_models::{ApplyError, ReadModel};
use crate::shutdown::Shutdown;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const MAX_BATCH: usize = 500;
const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(30);

pub fn consumer_name(projection: &str) -> String {
    format!("projection_{projection}")
}

pub struct Projector<M> {
    pool: PgPool,
    keys: PersonalDataKeys,
    jetstream: jetstream::Context,
    subjects: EventSubjects,
    model: Arc<M>,
}

impl<M> Clone for Projector<M> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            keys: self.keys.clone(),
            jetstream: self.jetstream.clone(),
            subjects: self.subjects.clone(),
            model: self.model.clone(),
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

impl<M: ReadModel> Projector<M> {
    pub fn new(
        pool: PgPool,
        jetstream: jetstream::Context,
        subjects: EventSubjects,
        model: M,
    ) -> Self {
        Self {
            keys: PersonalDataKeys::new(pool.clone()),
            pool,
            jetstream,
            subjects,
            model: Arc::new(model),
        }
    }

    /// Projects until shutdown, whenever this replica holds the projection's lock (one builder
    /// per read model, so events of one aggregate are applied in order).
    pub async fn run(self, shutdown: Shutdown) {
        let lock = format!("eshop-projection-{}", M::NAME);
        let projector = self.clone();
        run_as_leader(
            self.pool.clone(),
            &lock,
            shutdown,
            move |connection, shutdown| {
                let projector = projector.clone();
                async move { projector.lead(connection, shutdown).await }
            },
        )
        .await;
    }

    async fn consumer(&self) -> Result<jetstream::consumer::Consumer<pull::Config>, BoxError> {
        let stream = self
            .jetstream
            .get_stream(self.subjects.stream_name())
            .await?;
        let name = consumer_name(M::NAME);
        Ok(stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: self.subjects.of_type(M::AGGREGATE_TYPE),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await?)
    }

    async fn lead(&self, mut lock: PgConnection, mut shutdown: Shutdown) -> Result<(), BoxError> {
        let consumer = self.consumer().await?;
        let mut batches = consumer
            .stream()
            .max_messages_per_batch(MAX_BATCH)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await?
            .ready_chunks(MAX_BATCH);
        let mut pause = FIRST_RETRY;
        let mut keepalive = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                batch = batches.next() => {
                    let Some(batch) = batch else { return Err("the consumer's message stream ended".into()) };
                    let messages = batch.into_iter().collect::<Result<Vec<_>, _>>()?;
                    if self.project(&messages).await {
                        pause = FIRST_RETRY;
                    } else {
                        // Stop here: whatever else arrived goes back too, so the failed event
                        // is the first one redelivered after the pause.
                        while let Some(Some(buffered)) = batches.next().now_or_never() {
                            for message in buffered.into_iter().flatten() {
                                let _ = message.ack_with(AckKind::Nak(None)).await;
                            }
                        }
                        tokio::select! {
                            () = tokio::time::sleep(pause) => {}
                            () = shutdown.wait() => return Ok(()),
                        }
                        pause = (pause * 2).min(LAST_RETRY);
                    }
                }
                _ = keepalive.tick() => {
                    // The lock lives on this connection: if it is gone, so is the lead.
                    sqlx::query("SELECT 1").execute(&mut lock).await?;
                }
                () = shutdown.wait() => return Ok(()),
            }
        }
    }

    /// Applies the batch; false when an event could not be applied (the rest is redelivered).
    async fn project(&self, messages: &[Message]) -> bool {
        if self.commit(messages).await.is_ok() {
            return true;
        }
        // Find the culprit: commit one at a time up to it.
        for (index, message) in messages.iter().enumerate() {
            if let Err(error) = self.commit(std::slice::from_ref(message)).await {
                tracing::error!(projection = M::NAME, error = %error, "cannot apply an event; the projection is stopped");
                self.record_failure(&error).await;
                for unapplied in &messages[index..] {
                    let _ = unapplied.ack_with(AckKind::Nak(None)).await;
                }
                return false;
            }
        }
        true
    }

    /// One transaction: the read-table writes and the projection's progress; then the ack.
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
        let mut tx = self.pool.begin().await?;
        let changed = self.model.apply(&mut tx, &events).await?;
        sqlx::query(
            "INSERT INTO projection_status (name, stream_sequence, last_recorded_at, status, last_error, updated_at)
             VALUES ($1, $2, $3, 'running', NULL, now())
             ON CONFLICT (name) DO UPDATE SET
                 stream_sequence = EXCLUDED.stream_sequence, last_recorded_at = EXCLUDED.last_recorded_at,
                 status = 'running', last_error = NULL, updated_at = now()",
        )
        .bind(M::NAME)
        .bind(stream_sequence(last))
        .bind(events.last().map(|event| event.recorded_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.model.after_commit(&changed).await;
        // An ack that gets lost means a redelivery, which the row versions skip.
        for message in messages {
            if let Err(error) = message.ack().await {
                tracing::warn!(projection = M::NAME, error = %error, "ack failed");
            }
        }
        Ok(())
    }

    async fn record_failure(&self, error: &ApplyError) {
        let detail = match error {
            ApplyError::Projection(projection) => projection.to_string(),
            ApplyError::Database(database) => format!("database: {database}"),
        };
        let recorded = sqlx::query(
            "INSERT INTO projection_status (name, status, last_error, updated_at)
             VALUES ($1, 'failed', $2, now())
             ON CONFLICT (name) DO UPDATE SET status = 'failed', last_error = $2, updated_at = now()",
        )
        .bind(M::NAME)
        .bind(&detail)
        .execute(&self.pool)
        .await;
        if let Err(error) = recorded {
            tracing::warn!(projection = M::NAME, error = %error, "cannot record the failure");
        }
    }
}

/// One projection's health, for `GET /api/admin/projections`.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectionReport {
    pub name: String,
    /// The JetStream stream sequence of the last event applied.
    pub position: i64,
    pub lag_events: u64,
    pub lag_seconds: f64,
    pub status: String,
    pub last_error: Option<String>,
}

type StatusRow = (
    i64,
    Option<chrono::DateTime<chrono::Utc>>,
    String,
    Option<String>,
);

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
        let (position, last_recorded_at, status, last_error) =
            row.unwrap_or((0, None, "starting".into(), None));
        let lag_events = match stream
            .get_consumer::<pull::Config>(&consumer_name(name))
            .await
        {
            Ok(mut consumer) => consumer
                .info()
                .await
                .map(|info| info.num_pending + info.num_ack_pending as u64)
                .unwrap_or_default(),
            Err(_) => 0,
        };
        let lag_seconds = match (lag_events, last_recorded_at) {
            (0, _) => 0.0,
            (_, Some(at)) => (chrono::Utc::now() - at)
                .to_std()
                .map_or(0.0, |age| age.as_secs_f64()),
            (_, None) => 0.0,
        };
        reports.push(ProjectionReport {
            name: (*name).to_string(),
            position,
            lag_events,
            lag_seconds,
            status,
            last_error,
        });
    }
    Ok(reports)
}
