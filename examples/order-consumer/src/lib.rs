//! A downstream consumer of eshop's event stream, as one would write it outside eshop: it keeps
//! a table of orders in its own database from the `order` events on NATS.
//!
//! - A **durable** JetStream pull consumer (named, kept by the server) remembers what was
//!   acknowledged, so a restart resumes where the last run stopped.
//! - Delivery is at least once, so each event is applied in one transaction together with a
//!   row in `consumer_applied` keyed by its `position` (the `Nats-Msg-Id`, unique per event): a
//!   redelivered event finds its row and changes nothing. The message is acknowledged only
//!   after that transaction commits; a crash in between means a redelivery, never a loss.
//! - Each order row keeps the `sequence` of the last event applied, so an event redelivered
//!   late cannot move an order back to an older status.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("NATS: {0}")]
    Nats(String),
    #[error("the database failed")]
    Database(#[from] sqlx::Error),
}

fn nats(error: impl std::fmt::Display) -> ConsumerError {
    ConsumerError::Nats(error.to_string())
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub nats_url: String,
    /// `ESHOP_NATS_PREFIX` of the eshop to follow (empty in production).
    pub eshop_prefix: String,
    /// The durable consumer's name: one per consuming application.
    pub durable_name: String,
    /// How long a delivered message may go unacknowledged (its consumer crashed) before
    /// JetStream delivers it again.
    pub ack_wait: Duration,
}

impl Settings {
    pub fn stream_name(&self) -> String {
        if self.eshop_prefix.is_empty() {
            "ESHOP_EVENTS".to_string()
        } else {
            format!("{}_ESHOP_EVENTS", self.eshop_prefix.to_uppercase())
        }
    }

    /// Only order events: `eshop.events.order.>`.
    pub fn filter_subject(&self) -> String {
        if self.eshop_prefix.is_empty() {
            "eshop.events.order.>".to_string()
        } else {
            format!("{}.eshop.events.order.>", self.eshop_prefix)
        }
    }
}

/// What a run did, for logs and tests.
#[derive(Debug, Default)]
pub struct Stats {
    pub applied: AtomicU64,
    pub duplicates: AtomicU64,
}

/// The envelope every eshop message carries (docs/events.md); only what this consumer reads.
#[derive(Debug, Deserialize)]
struct Envelope {
    position: i64,
    aggregate_id: Uuid,
    sequence: i64,
    event_type: String,
    payload: Value,
}

/// Creates this consumer's own tables.
pub async fn migrate(pool: &PgPool) -> Result<(), ConsumerError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS consumer_orders (
             order_id      uuid PRIMARY KEY,
             customer_id   uuid,
             status        text NOT NULL,
             total_cents   bigint,
             lines         jsonb,
             last_sequence bigint NOT NULL,
             updated_at    timestamptz NOT NULL DEFAULT now()
         );
         CREATE TABLE IF NOT EXISTS consumer_applied (
             position   bigint PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Follows the stream until `stop` completes (or an error: the caller restarts it).
pub async fn run(
    settings: &Settings,
    pool: &PgPool,
    stats: Arc<Stats>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ConsumerError> {
    let client = async_nats::connect(&settings.nats_url)
        .await
        .map_err(nats)?;
    let jetstream = jetstream::new(client);
    let stream = jetstream
        .get_stream(settings.stream_name())
        .await
        .map_err(nats)?;
    let consumer = stream
        .get_or_create_consumer(
            &settings.durable_name,
            pull::Config {
                durable_name: Some(settings.durable_name.clone()),
                filter_subject: settings.filter_subject(),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: settings.ack_wait,
                ..Default::default()
            },
        )
        .await
        .map_err(nats)?;
    let mut messages = consumer.messages().await.map_err(nats)?;
    tokio::pin!(stop);
    loop {
        let message = tokio::select! {
            () = &mut stop => return Ok(()),
            message = messages.next() => message,
        };
        let Some(message) = message else {
            return Err(ConsumerError::Nats("the message stream ended".into()));
        };
        let message = message.map_err(nats)?;
        let envelope: Envelope = match serde_json::from_slice(&message.payload) {
            Ok(envelope) => envelope,
            Err(error) => {
                // Not an eshop event: nothing to apply, and retrying will not change it.
                eprintln!("skipping a message that is not an event: {error}");
                message.ack().await.map_err(nats)?;
                continue;
            }
        };
        if apply(pool, &envelope).await? {
            stats.applied.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        message.ack().await.map_err(nats)?;
    }
}

/// Applies one event in one transaction with its position's row; false when it was applied
/// before (a redelivery).
async fn apply(pool: &PgPool, event: &Envelope) -> Result<bool, ConsumerError> {
    let mut tx = pool.begin().await?;
    let first_time =
        sqlx::query("INSERT INTO consumer_applied (position) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(event.position)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
    if !first_time {
        return Ok(false);
    }
    let data = &event.payload["data"];
    match event.event_type.as_str() {
        "OrderPlaced" => {
            sqlx::query(
                "INSERT INTO consumer_orders
                     (order_id, customer_id, status, total_cents, lines, last_sequence)
                 VALUES ($1, $2, 'placed', $3, $4, $5)
                 ON CONFLICT (order_id) DO NOTHING",
            )
            .bind(event.aggregate_id)
            .bind(
                data["customer_id"]
                    .as_str()
                    .and_then(|id| id.parse::<Uuid>().ok()),
            )
            .bind(data["total_cents"].as_i64())
            .bind(&data["lines"])
            .bind(event.sequence)
            .execute(&mut *tx)
            .await?;
        }
        other => {
            let status = match other {
                "OrderStockReserved" => Some("stock_reserved"),
                "OrderPaid" => Some("paid"),
                "OrderConfirmed" => Some("confirmed"),
                "OrderCancelled" => Some("cancelled"),
                "OrderFailed" => Some("failed"),
                // An event type added later: recorded as seen, nothing to change.
                _ => None,
            };
            if let Some(status) = status {
                sqlx::query(
                    "UPDATE consumer_orders
                        SET status = $2, last_sequence = $3, updated_at = now()
                      WHERE order_id = $1 AND last_sequence < $3",
                )
                .bind(event.aggregate_id)
                .bind(status)
                .bind(event.sequence)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(true)
}
