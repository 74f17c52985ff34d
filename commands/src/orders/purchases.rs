//! Wallet purchases of one product, committed in groups.
//!
//! Each purchase holds its product's lock until its transaction commits, so a busy product
//! sells one purchase per commit and the rest queue behind it (with 64 buyers on 10 products,
//! the slowest hundredth waited 160 ms and more). Instead, purchases of a product queue here,
//! and one task per product takes whatever has queued while the last group committed and
//! commits it as one transaction, each purchase staged after the one before it exactly as it
//! would run alone. A group that does not commit, or in which a purchase broke off half done,
//! stored nothing; its purchases then run one by one, each with its own retries.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::Instrument;
use uuid::Uuid;

use cqrs_es::Aggregate;
use eshop_domain::order::Order;
use eshop_domain::payment::Payment;

use super::process::{
    payment_id, OrderProcess, ProcessError, PurchaseError, PurchaseRequest, Purchased,
};
use crate::context::CommandContext;
use crate::own_writes;
use crate::payment_gateway::PaymentGateway;
use crate::store::EventStore;

/// At most this many purchases in one transaction.
const MAX_GROUP: usize = 32;

type Outcome = Result<Purchased, PurchaseError>;

/// A purchase as its product's task runs it: in the span of the request that asked for it.
pub(super) type Queued = (PurchaseRequest, CommandContext, tracing::Span);

struct Waiting {
    purchase: Queued,
    answer: oneshot::Sender<Outcome>,
}

/// Purchases waiting, per product. A product is in the map while a task is buying for it.
#[derive(Default)]
pub(super) struct PurchaseQueues {
    by_product: std::sync::Mutex<HashMap<Uuid, VecDeque<Waiting>>>,
}

impl PurchaseQueues {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, VecDeque<Waiting>>> {
        self.by_product
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next group for `product_id`, in arrival order, or `None` (and the product's
    /// task ends) when nothing waits. A purchase whose order is already in the group waits
    /// for the next one: a repeated request must see its first run committed.
    fn next_group(&self, product_id: Uuid) -> Option<Vec<Waiting>> {
        let mut queues = self.lock();
        let waiting = queues.get_mut(&product_id)?;
        if waiting.is_empty() {
            queues.remove(&product_id);
            return None;
        }
        let mut orders = HashSet::new();
        let mut group = Vec::new();
        let mut later = VecDeque::new();
        while let Some(queued) = waiting.pop_front() {
            if group.len() < MAX_GROUP && orders.insert(queued.purchase.0.order_id) {
                group.push(queued);
            } else {
                later.push_back(queued);
            }
        }
        *waiting = later;
        Some(group)
    }
}

/// Ends a product's task: whatever still waits is answered with an error (their senders are
/// dropped), so a panic in a group leaves no purchase waiting for ever and the next purchase
/// of the product starts a new task.
struct ProductTask<'a> {
    queues: &'a PurchaseQueues,
    product_id: Uuid,
    finished: bool,
}

impl Drop for ProductTask<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.queues.lock().remove(&self.product_id);
        }
    }
}

/// Queues a purchase and waits for its outcome; starts the product's task when none runs.
pub(super) async fn queue<S, G>(
    process: &Arc<OrderProcess<S, G>>,
    request: PurchaseRequest,
    context: CommandContext,
) -> Outcome
where
    S: EventStore + Send + Sync + 'static,
    G: PaymentGateway + Send + Sync + 'static,
{
    let product_id = request.product_id;
    let purchased_order = request.order_id;
    let (answer, outcome) = oneshot::channel();
    let queued = Waiting {
        purchase: (request, context, tracing::Span::current()),
        answer,
    };
    // The task removes its product when it finds nothing waiting, under this same lock: a
    // product in the map always has a task that will see what is queued.
    let start_task = {
        let mut queues = process.purchases.lock();
        match queues.get_mut(&product_id) {
            Some(waiting) => {
                waiting.push_back(queued);
                false
            }
            None => {
                queues.insert(product_id, VecDeque::from([queued]));
                true
            }
        }
    };
    if start_task {
        tokio::spawn(buy_queued(Arc::clone(process), product_id));
    }
    let outcome = outcome.await.unwrap_or_else(|_| {
        Err(PurchaseError::Process(ProcessError::Step(
            "the purchase was interrupted".into(),
        )))
    });
    // The product's task committed it, outside this request: noted here, for the buyer.
    if let Ok(purchased) = &outcome {
        let order_id = purchased_order.to_string();
        own_writes::note(Order::TYPE, &order_id, purchased.order_version);
        own_writes::note(
            Payment::TYPE,
            &payment_id(purchased_order).to_string(),
            purchased.payment_version,
        );
    }
    outcome
}

/// The product's task: buys the queued purchases, group after group, until none waits.
async fn buy_queued<S, G>(process: Arc<OrderProcess<S, G>>, product_id: Uuid)
where
    S: EventStore,
    G: PaymentGateway,
{
    let mut task = ProductTask {
        queues: &process.purchases,
        product_id,
        finished: false,
    };
    while let Some(group) = process.purchases.next_group(product_id) {
        let (purchases, answers): (Vec<_>, Vec<_>) = group
            .into_iter()
            .map(|waiting| (waiting.purchase, waiting.answer))
            .unzip();
        let together = if purchases.len() > 1 {
            process.purchase_together(&purchases).await
        } else {
            None
        };
        let outcomes = match together {
            Some(outcomes) => outcomes,
            None => {
                let mut alone = Vec::with_capacity(purchases.len());
                for (request, context, span) in &purchases {
                    let bought = process
                        .purchase_alone(request, context)
                        .instrument(span.clone());
                    alone.push(bought.await);
                }
                alone
            }
        };
        for (answer, outcome) in answers.into_iter().zip(outcomes) {
            // The buyer may have stopped waiting; the purchase stands either way.
            let _ = answer.send(outcome);
        }
    }
    task.finished = true;
}
