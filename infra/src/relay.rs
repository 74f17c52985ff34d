//! The relay: tails the events table in commit-safe order and publishes to JetStream.
//!
//! Positions are taken at insert, not at commit, so "position > last seen" would skip an event
//! whose transaction commits late. The relay reads only events whose transaction is older than
//! every transaction still in flight (`xid < pg_snapshot_xmin(pg_current_snapshot())`): no such
//! event can appear later. It reads, publishes and checkpoints in `(xid, position)` order, and
//! moves the checkpoint only past events JetStream acknowledged. `Nats-Msg-Id` is the position,
//! so a re-publish after a crash is dropped by the stream's duplicate window.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};

use eshop_projections::RelayedEvent;

use crate::commit_order::COMMIT_SAFE_AFTER;
use crate::leader::run_as_leader;
use crate::nats::EventSubjects;
use crate::shutdown::Shutdown;

use eshop_commands::BoxError;

pub const NOTIFY_CHANNEL: &str = "eshop_events";
const LEADER_LOCK: &str = "eshop-relay";

#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    /// Events read and published per round; also the bound on publishes awaiting their ack.
    pub batch_size: i64,
    /// After a wake-up, how often to look again while events may still be held back by a
    /// transaction in flight.
    pub eager_poll: Duration,
    /// How long to keep looking eagerly after the last sign of activity.
    pub eager_for: Duration,
    /// The fallback poll when nothing happens.
    pub idle_poll: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 4000,
            eager_poll: Duration::from_millis(5),
            eager_for: Duration::from_millis(250),
            idle_poll: Duration::from_millis(500),
        }
    }
}

/// The oldest transaction holding the relay's horizon back.
#[derive(Debug, Clone, Serialize)]
pub struct HorizonBlocker {
    pub xid: String,
    pub pid: i32,
    pub age_seconds: f64,
}

/// What the relay reports about itself (for `/metrics` and the admin API).
#[derive(Debug, Default)]
pub struct RelayStatus {
    pub leading: AtomicBool,
    pub published: AtomicU64,
    pub oldest_transaction: Mutex<Option<HorizonBlocker>>,
}

impl RelayStatus {
    pub fn oldest_transaction(&self) -> Option<HorizonBlocker> {
        self.oldest_transaction
            .lock()
            .map(|guard| guard.clone())
            .unwrap_or_default()
    }
}

#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    jetstream: jetstream::Context,
    subjects: EventSubjects,
    settings: RelaySettings,
    status: Arc<RelayStatus>,
}

/// A checkpoint: the `(xid, position)` of the last event published and acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checkpoint {
    xid: u64,
    position: i64,
}

/// An `events` row as `PUBLISHED_COLUMNS` select it.
#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    position: i64,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: serde_json::Value,
    metadata: serde_json::Value,
    recorded_at: DateTime<Utc>,
}

pub(crate) const PUBLISHED_COLUMNS: &str = "position, aggregate_type, aggregate_id, sequence, \
                                            event_type, event_version, payload, metadata, recorded_at";

impl EventRow {
    /// The event as it is published: the envelope, secrets removed.
    pub(crate) fn published(self) -> RelayedEvent {
        RelayedEvent {
            payload: without_unpublished_fields(&self.aggregate_type, self.payload),
            position: self.position,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            // The table's CHECK keeps sequences positive.
            sequence: u64::try_from(self.sequence).unwrap_or_default(),
            event_type: self.event_type,
            event_version: self.event_version,
            recorded_at: self.recorded_at,
            metadata: self.metadata,
        }
    }
}

#[derive(sqlx::FromRow)]
struct RelayRow {
    xid: String,
    #[sqlx(flatten)]
    event: EventRow,
}

impl Relay {
    pub fn new(
        pool: PgPool,
        jetstream: jetstream::Context,
        subjects: EventSubjects,
        settings: RelaySettings,
    ) -> Self {
        Self {
            pool,
            jetstream,
            subjects,
            settings,
            status: Arc::default(),
        }
    }

    pub fn status(&self) -> Arc<RelayStatus> {
        self.status.clone()
    }

    /// Reports into `status` (one its owner already shares, say with `/metrics`).
    pub fn reporting_to(mut self, status: Arc<RelayStatus>) -> Self {
        self.status = status;
        self
    }

    /// Relays until shutdown, whenever this replica holds the relay lock; watches the horizon
    /// meanwhile.
    pub async fn run(self, shutdown: Shutdown) {
        let monitor = tokio::spawn(watch_horizon(
            self.pool.clone(),
            self.status.clone(),
            shutdown.clone(),
        ));
        let relay = self.clone();
        run_as_leader(
            self.pool.clone(),
            LEADER_LOCK,
            shutdown,
            move |connection, shutdown| {
                let relay = relay.clone();
                async move {
                    relay.status.leading.store(true, Ordering::Relaxed);
                    let outcome = relay.lead(connection, shutdown).await;
                    relay.status.leading.store(false, Ordering::Relaxed);
                    outcome
                }
            },
        )
        .await;
        monitor.abort();
    }

    async fn lead(
        &self,
        mut connection: PgConnection,
        mut shutdown: Shutdown,
    ) -> Result<(), BoxError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        let mut checkpoint = load_checkpoint(&mut connection).await?;
        self.warn_if_stream_outlived_store(checkpoint).await;
        let mut eager_until = tokio::time::Instant::now() + self.settings.eager_for;
        loop {
            if shutdown.is_triggered() {
                return Ok(());
            }
            let batch = fetch_batch(&mut connection, checkpoint, self.settings.batch_size).await?;
            if !batch.is_empty() {
                let (published, failure) = self.publish(&batch).await;
                if let Some(last) = published.checked_sub(1).and_then(|i| batch.get(i)) {
                    checkpoint = last.0;
                    save_checkpoint(&mut connection, checkpoint).await?;
                    self.status
                        .published
                        .fetch_add(published as u64, Ordering::Relaxed);
                }
                if let Some(error) = failure {
                    return Err(error);
                }
                eager_until = tokio::time::Instant::now() + self.settings.eager_for;
                continue;
            }
            let now = tokio::time::Instant::now();
            let wait = if now < eager_until {
                self.settings.eager_poll
            } else {
                self.settings.idle_poll
            };
            tokio::select! {
                notification = listener.recv() => {
                    notification?;
                    eager_until = tokio::time::Instant::now() + self.settings.eager_for;
                }
                () = tokio::time::sleep(wait) => {}
                () = shutdown.wait() => return Ok(()),
            }
        }
    }

    /// Message ids are positions: a stream that outlived its event store (a dropped database)
    /// would drop new events whose positions it saw within the duplicate window.
    async fn warn_if_stream_outlived_store(&self, checkpoint: Checkpoint) {
        if checkpoint.position != 0 {
            return;
        }
        let Ok(mut stream) = self.jetstream.get_stream(self.subjects.stream_name()).await else {
            return;
        };
        if let Ok(info) = stream.info().await {
            if info.state.messages > 0 {
                tracing::warn!(
                    stream = %self.subjects.stream_name(),
                    messages = info.state.messages,
                    "the relay starts from the beginning but the stream already holds messages: \
                     if the event store was reset, delete the stream, or events whose positions \
                     were published in the last 10 minutes are dropped as duplicates"
                );
            }
        }
    }

    /// Publishes every event, all in flight at once, then awaits the acks in order. Returns how
    /// many leading events were acknowledged, and the error that stopped the rest.
    async fn publish(&self, batch: &[(Checkpoint, RelayedEvent)]) -> (usize, Option<BoxError>) {
        let mut pending = Vec::with_capacity(batch.len());
        for (_, event) in batch {
            let subject = self
                .subjects
                .subject(&event.aggregate_type, &event.aggregate_id);
            let body = match serde_json::to_vec(event) {
                Ok(body) => Bytes::from(body),
                Err(error) => return (0, Some(Box::new(error))),
            };
            match self
                .jetstream
                .publish_with_headers(subject, crate::event_headers::headers_for(event), body)
                .await
            {
                Ok(ack) => pending.push(ack),
                Err(error) => {
                    // Whatever went out before still counts once acknowledged.
                    return (count_acked(pending).await.0, Some(Box::new(error)));
                }
            }
        }
        count_acked(pending).await
    }
}

async fn count_acked(
    pending: Vec<jetstream::context::PublishAckFuture>,
) -> (usize, Option<BoxError>) {
    let mut acked = 0;
    for ack in pending {
        match ack.await {
            Ok(_) => acked += 1,
            Err(error) => return (acked, Some(Box::new(error))),
        }
    }
    (acked, None)
}

async fn load_checkpoint(connection: &mut PgConnection) -> Result<Checkpoint, BoxError> {
    let (xid, position): (String, i64) =
        sqlx::query_as("SELECT xid::text, position FROM relay_checkpoint")
            .fetch_one(connection)
            .await?;
    Ok(Checkpoint {
        xid: xid.parse()?,
        position,
    })
}

async fn save_checkpoint(
    connection: &mut PgConnection,
    checkpoint: Checkpoint,
) -> Result<(), BoxError> {
    sqlx::query(
        "UPDATE relay_checkpoint SET xid = $1::text::xid8, position = $2, updated_at = now()",
    )
    .bind(checkpoint.xid.to_string())
    .bind(checkpoint.position)
    .execute(connection)
    .await?;
    Ok(())
}

async fn fetch_batch(
    connection: &mut PgConnection,
    after: Checkpoint,
    limit: i64,
) -> Result<Vec<(Checkpoint, RelayedEvent)>, BoxError> {
    let rows: Vec<RelayRow> = sqlx::query_as(&format!(
        "SELECT xid::text AS xid, {PUBLISHED_COLUMNS}
           FROM events
          WHERE {COMMIT_SAFE_AFTER}
          ORDER BY events.xid, events.position
          LIMIT $3"
    ))
    .bind(after.xid.to_string())
    .bind(after.position)
    .bind(limit)
    .fetch_all(connection)
    .await?;
    rows.into_iter()
        .map(|row| {
            let checkpoint = Checkpoint {
                xid: row.xid.parse()?,
                position: row.event.position,
            };
            Ok((checkpoint, row.event.published()))
        })
        .collect()
}

/// Secrets such as password hashes stay in the store (see `eshop_domain::unpublished_fields`).
fn without_unpublished_fields(
    aggregate_type: &str,
    mut payload: serde_json::Value,
) -> serde_json::Value {
    if let Some(data) = payload
        .get_mut("data")
        .and_then(serde_json::Value::as_object_mut)
    {
        for field in eshop_domain::unpublished_fields(aggregate_type) {
            data.remove(*field);
        }
    }
    payload
}

/// Every few seconds, records the oldest transaction that holds an xid: while it runs, no
/// newer event can be relayed.
async fn watch_horizon(pool: PgPool, status: Arc<RelayStatus>, mut shutdown: Shutdown) {
    loop {
        let oldest: Result<Option<(String, i32, f64)>, sqlx::Error> = sqlx::query_as(
            "SELECT backend_xid::text, pid, EXTRACT(EPOCH FROM now() - xact_start)::float8
               FROM pg_stat_activity
              WHERE backend_xid IS NOT NULL AND xact_start IS NOT NULL
              ORDER BY xact_start LIMIT 1",
        )
        .fetch_optional(&pool)
        .await;
        match oldest {
            Ok(row) => {
                if let Ok(mut slot) = status.oldest_transaction.lock() {
                    *slot = row.map(|(xid, pid, age_seconds)| HorizonBlocker {
                        xid,
                        pid,
                        age_seconds,
                    });
                }
            }
            Err(error) => tracing::debug!(error = %error, "cannot read pg_stat_activity"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = shutdown.wait() => return,
        }
    }
}
