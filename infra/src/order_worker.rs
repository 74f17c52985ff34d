//! What keeps orders moving when no request is waiting for them: a durable consumer of order
//! events that advances every order it hears of, and a sweep that advances (or, past a
//! timeout, fails) orders that stopped moving. `advance` is idempotent, so replicas share the
//! consumer without a leader, and a redelivery or a second driver changes nothing.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use uuid::Uuid;

use eshop_commands::orders::{FailureReason, OrderProcess};
use eshop_commands::payment_gateway::PaymentGateway;
use eshop_projections::RelayedEvent;

use crate::consumer::{ConsumerRunner, ConsumerSpec, Handled, Handler, Settle};
use crate::nats::EventSubjects;
use crate::read_models::orders::PgOrders;
use crate::shutdown::Shutdown;
use crate::PgEventStore;

use eshop_commands::BoxError;

const CONSUMER: &str = "order_process";
/// Order events taken at once: most are acknowledged without work; the placings that need a
/// look run side by side, `AT_ONCE` at a time (each reads its own order: no conflicts).
const BATCH: usize = 200;
const AT_ONCE: usize = 16;
/// How long the worker leaves a new order to the request that placed it.
const HANDOVER_DELAY: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy)]
pub struct SweepSettings {
    pub every: Duration,
    /// Orders older than this that have not finished are advanced again.
    pub stalled_after: Duration,
    /// Orders older than this that still wait for stock or payment are failed and undone.
    pub give_up_after: Duration,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(30),
            stalled_after: Duration::from_secs(30),
            give_up_after: Duration::from_secs(15 * 60),
        }
    }
}

pub struct OrderWorker<G> {
    process: Arc<OrderProcess<PgEventStore, G>>,
    orders: PgOrders,
    jetstream: jetstream::Context,
    subjects: EventSubjects,
    sweep: SweepSettings,
}

impl<G: PaymentGateway> OrderWorker<G> {
    pub fn new(
        process: Arc<OrderProcess<PgEventStore, G>>,
        orders: PgOrders,
        jetstream: jetstream::Context,
        subjects: EventSubjects,
        sweep: SweepSettings,
    ) -> Self {
        Self {
            process,
            orders,
            jetstream,
            subjects,
            sweep,
        }
    }

    /// The order worker's consumer: every order event (only placings need a driver).
    pub fn runner(&self) -> ConsumerRunner {
        ConsumerRunner::new(
            self.jetstream.clone(),
            ConsumerSpec {
                ack_wait: Duration::from_secs(60),
                batch: BATCH,
                // Each placing waits `HANDOVER_DELAY` unacknowledged: at 1,000 purchases a
                // second the server's default (1,000) would stall the consumer.
                max_ack_pending: Some(50_000),
                first_pause: Duration::from_secs(1),
                ..ConsumerSpec::new(
                    CONSUMER,
                    self.subjects.stream_name(),
                    self.subjects.of_type("order"),
                )
            },
        )
    }

    pub async fn run(self, shutdown: Shutdown) {
        let runner = self.runner();
        let this = Arc::new(self);
        let sweeping = tokio::spawn(this.clone().sweep_until(shutdown.clone()));
        runner.run(this, shutdown).await;
        let _ = sweeping.await;
    }

    async fn handle_one(&self, message: &jetstream::Message) -> Settle {
        let Ok(event) = serde_json::from_slice::<RelayedEvent>(&message.payload) else {
            tracing::error!(subject = %message.subject, "an order event that cannot be read; skipped");
            return Settle::Term;
        };
        // Later events are the process's own steps: the placing is what needs a driver.
        // Usually the request that placed the order drives it, so the first delivery waits a
        // moment rather than doing the same work twice.
        let first_delivery = message
            .info()
            .map(|info| info.delivered <= 1)
            .unwrap_or(false);
        if event.event_type != "OrderPlaced" {
            return Settle::Ack;
        }
        if first_delivery {
            return Settle::Nak(Some(HANDOVER_DELAY));
        }
        let Ok(order_id) = event.aggregate_id.parse::<Uuid>() else {
            return Settle::Term;
        };
        match self.process.advance_unless_confirmed(order_id).await {
            Ok(_) => Settle::Ack,
            Err(error) => {
                tracing::warn!(%order_id, error = %error, "cannot advance the order now; it will come back");
                Settle::Nak(Some(Duration::from_secs(1)))
            }
        }
    }

    async fn sweep_until(self: Arc<Self>, mut shutdown: Shutdown) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.sweep.every) => {}
                () = shutdown.wait() => return,
            }
            if let Err(error) = self.sweep_once().await {
                tracing::warn!(error = %error, "order sweep failed");
            }
        }
    }

    /// Advances stalled orders; fails those past the give-up age.
    pub async fn sweep_once(&self) -> Result<usize, BoxError> {
        let seconds = |duration: Duration| i64::try_from(duration.as_secs()).unwrap_or(i64::MAX);
        let stalled = self
            .orders
            .unfinished(seconds(self.sweep.stalled_after), 500)
            .await?;
        let expired = self
            .orders
            .unfinished(seconds(self.sweep.give_up_after), 500)
            .await?;
        for order_id in &stalled {
            let outcome = if expired.contains(order_id) {
                self.process
                    .give_up(*order_id, FailureReason::TimedOut)
                    .await
            } else {
                self.process.advance(*order_id).await
            };
            if let Err(error) = outcome {
                tracing::warn!(%order_id, error = %error, "sweep could not finish an order");
            }
        }
        Ok(stalled.len())
    }
}

impl<G: PaymentGateway> Handler for OrderWorker<G> {
    async fn handle(&self, batch: Vec<jetstream::Message>) -> Handled {
        // The futures are made first: a stream over a borrowing closure is not `Send` enough.
        let each: Vec<_> = batch
            .iter()
            .map(|message| self.handle_one(message))
            .collect();
        let settled = futures::stream::iter(each)
            .buffered(AT_ONCE)
            .collect()
            .await;
        Handled::Settled(settled)
    }
}
