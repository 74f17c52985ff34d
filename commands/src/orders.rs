//! Buying: every use case of an order — a wallet purchase, placing an order paid by any
//! method, checking out the cart, waiting for an order's outcome, cancelling — and the order
//! process manager that carries each order to its end.
//!
//! | module | holds |
//! | --- | --- |
//! | `process` | the process manager: reserve, pay, confirm, or fail and undo |
//! | `purchases` | wallet purchases of one product, committed in groups |
//! | `pricing` | lines priced from the products (the one place an order is priced) |
//! | `payment` | the buyer's payment choice checked and tokenized by the gateway |
//! | `failure` | why an order failed, typed |

mod card;
mod failure;
mod payment;
mod pricing;
mod process;
mod purchases;

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;
use uuid::Uuid;

use eshop_domain::cart::{Cart, CartCommand, CartError};
use eshop_domain::order::{
    Order, OrderCommand, OrderError, OrderLine, OrderStatus, PaymentInstrument,
};

use crate::bus::CommandError;
use crate::context::CommandContext;
use crate::payment_gateway::PaymentGateway;
use crate::store::{EventStore, StoreError};

pub use card::{CardDetails, CardInput};
pub use failure::{
    FailureReason, ACCOUNT_DEACTIVATED, INSUFFICIENT_BALANCE, OUT_OF_STOCK, PAYMENT_DECLINED,
    PRODUCT_UNAVAILABLE, TIMED_OUT,
};
pub use payment::{InvalidPayment, PaymentChoice};
pub use pricing::{NotSold, WantedLine};
pub use process::{
    attempt_key, attempt_payment_id, payment_id, OrderProcess, ProcessError, PurchaseError,
    PurchaseRequest, Purchased,
};

/// Why a use case of this module did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum OrderingError {
    #[error("the cart is empty")]
    CartEmpty,
    /// Some lines name a product that is not sold.
    #[error(transparent)]
    NotSold(NotSold),
    /// The product of a wallet purchase is not sold.
    #[error("the product is not sold")]
    ProductUnavailable,
    /// The order ended failed (or cancelled): `reason` is `None` for a reason this process
    /// does not give.
    #[error("the order failed")]
    Failed { reason: Option<FailureReason> },
    #[error("no such order")]
    OrderNotFound,
    #[error(transparent)]
    Order(CommandError<OrderError>),
    #[error(transparent)]
    Cart(CommandError<CartError>),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CommandError<OrderError>> for OrderingError {
    fn from(error: CommandError<OrderError>) -> Self {
        Self::Order(error)
    }
}

impl From<CommandError<CartError>> for OrderingError {
    fn from(error: CommandError<CartError>) -> Self {
        Self::Cart(error)
    }
}

impl From<PurchaseError> for OrderingError {
    fn from(error: PurchaseError) -> Self {
        match error {
            PurchaseError::ProductUnavailable => Self::ProductUnavailable,
            PurchaseError::Refused(refusal) => Self::Order(CommandError::Rejected(refusal)),
            PurchaseError::Process(error) => Self::Process(error),
        }
    }
}

/// The typed reason of a failed order (`None` for one this process does not give).
pub fn failure_reason(order: &Order) -> Option<FailureReason> {
    order.reason.as_deref().and_then(FailureReason::parse)
}

/// A wallet purchase that ended within the wait: confirmed (a failed one is an error).
#[derive(Debug, Clone)]
pub struct Confirmed {
    pub order_id: Uuid,
    pub total_cents: i64,
    pub balance_cents: i64,
    pub order_version: u64,
}

/// What became of a wallet purchase within the wait.
#[derive(Debug, Clone)]
pub enum PurchaseOutcome {
    Confirmed(Confirmed),
    /// Not finished in time: the commit may still land, and the order's address will say.
    Pending {
        order_id: Uuid,
    },
}

/// What became of a placed order within the wait.
#[derive(Debug, Clone)]
pub enum Placement {
    /// The order reached its end (confirmed, failed or cancelled): as it is now.
    Finished {
        order_id: Uuid,
        order: Order,
        version: u64,
    },
    /// Still on its way: the order worker carries it on.
    Pending { order_id: Uuid },
}

/// The use cases of buying, over the event store `S` and the payment gateway `G`.
pub struct Orders<S, G> {
    process: Arc<OrderProcess<S, G>>,
}

impl<S, G> Orders<S, G>
where
    S: EventStore + Send + Sync + 'static,
    G: PaymentGateway,
{
    pub fn new(process: Arc<OrderProcess<S, G>>) -> Self {
        Self { process }
    }

    /// The instrument an order is paid with, the card or account tokenized by the gateway.
    pub fn payment_instrument(
        &self,
        choice: &PaymentChoice,
    ) -> Result<PaymentInstrument, InvalidPayment> {
        payment::instrument(self.process.gateway(), choice)
    }

    /// Buys `quantity` of a product from the customer's wallet under a fresh order id, waiting
    /// up to `wait` for the outcome.
    #[tracing::instrument(skip(self, context), fields(request_id = %context.request_id))]
    pub async fn purchase(
        &self,
        customer_id: Uuid,
        product_id: Uuid,
        quantity: i64,
        context: &CommandContext,
        wait: Duration,
    ) -> Result<PurchaseOutcome, OrderingError> {
        let request = PurchaseRequest {
            order_id: context.new_aggregate_id(),
            customer_id,
            product_id,
            quantity,
        };
        let purchasing = self.process.purchase(&request, context);
        let Ok(outcome) = tokio::time::timeout(wait, purchasing).await else {
            return Ok(PurchaseOutcome::Pending {
                order_id: request.order_id,
            });
        };
        let purchased = outcome?;
        match purchased.order.status {
            OrderStatus::Confirmed => Ok(PurchaseOutcome::Confirmed(Confirmed {
                order_id: request.order_id,
                total_cents: purchased.order.total_cents,
                balance_cents: purchased.balance_cents,
                order_version: purchased.order_version,
            })),
            _ => Err(OrderingError::Failed {
                reason: failure_reason(&purchased.order),
            }),
        }
    }

    /// Places an order for `wanted` (priced now) paid with `payment`, and drives it for up to
    /// `wait`; with no wait, the order is driven in the background.
    #[tracing::instrument(skip(self, wanted, payment, context), fields(request_id = %context.request_id, method = ?payment.method))]
    pub async fn place(
        &self,
        customer_id: Uuid,
        wanted: &[WantedLine],
        payment: PaymentInstrument,
        context: &CommandContext,
        wait: Duration,
    ) -> Result<Placement, OrderingError> {
        let order_id = context.new_aggregate_id();
        let lines = self.price(wanted).await?;
        self.place_priced(order_id, customer_id, lines, payment, context, wait)
            .await
    }

    /// The customer's cart becomes an order (at today's prices) and is emptied.
    #[tracing::instrument(skip(self, payment, context), fields(request_id = %context.request_id, method = ?payment.method))]
    pub async fn checkout(
        &self,
        customer_id: Uuid,
        payment: PaymentInstrument,
        context: &CommandContext,
        wait: Duration,
    ) -> Result<Placement, OrderingError> {
        let bus = self.process.bus();
        let cart = bus.load::<Cart>(&customer_id.to_string()).await?;
        if cart.aggregate.items.is_empty() {
            return Err(OrderingError::CartEmpty);
        }
        let wanted: Vec<WantedLine> = cart
            .aggregate
            .items
            .iter()
            .map(|(product_id, quantity)| WantedLine {
                product_id: *product_id,
                quantity: *quantity,
            })
            .collect();
        let order_id = context.new_aggregate_id();
        let lines = self.price(&wanted).await?;
        // A command id of its own: one command id appends to one aggregate.
        let emptying = CommandContext::step(
            context.actor,
            context.request_id.clone(),
            &["checkout", &order_id.to_string()],
        )
        .correlated_with(context.correlation_id);
        bus.execute_with::<Cart, _>(
            &customer_id.to_string(),
            CartCommand::CheckOut { order_id },
            &emptying,
            Some(cart.version),
            |_| (),
        )
        .await?;
        self.place_priced(order_id, customer_id, lines, payment, context, wait)
            .await
    }

    /// Whose order this is (`OrderNotFound` when there is no such order).
    pub async fn customer_of(&self, order_id: Uuid) -> Result<Uuid, OrderingError> {
        self.process
            .bus()
            .read::<Order, _>(&order_id.to_string(), |order, _| order.customer_id)
            .await?
            .ok_or(OrderingError::OrderNotFound)
    }

    /// Cancels the order (at `expected_version` when given) and undoes its reservations now;
    /// answers with the order as the cancellation left it, and its version.
    #[tracing::instrument(skip(self, context), fields(request_id = %context.request_id))]
    pub async fn cancel(
        &self,
        order_id: Uuid,
        context: &CommandContext,
        expected_version: Option<u64>,
    ) -> Result<(Order, u64), OrderingError> {
        let cancelled = self
            .process
            .bus()
            .execute_with::<Order, _>(
                &order_id.to_string(),
                OrderCommand::Cancel {
                    reason: "cancelled by the customer".into(),
                },
                context,
                expected_version,
                Order::clone,
            )
            .await?;
        // The order worker would undo it too; doing it now frees the stock sooner.
        if let Err(error) = self.process.advance(order_id).await {
            tracing::warn!(%order_id, error = %error, "the cancellation will be undone in the background");
        }
        Ok((cancelled.aggregate, cancelled.version))
    }

    async fn price(&self, wanted: &[WantedLine]) -> Result<Vec<OrderLine>, OrderingError> {
        let mut steps = process::Steps::OneByOne(self.process.bus());
        steps.price(wanted).await?.map_err(OrderingError::NotSold)
    }

    /// Places the order (`order_id` is fresh), then waits for its outcome.
    async fn place_priced(
        &self,
        order_id: Uuid,
        customer_id: Uuid,
        lines: Vec<OrderLine>,
        payment: PaymentInstrument,
        context: &CommandContext,
        wait: Duration,
    ) -> Result<Placement, OrderingError> {
        let bus = self.process.bus();
        let order = order_id.to_string();
        bus.assume_new::<Order>(&order);
        let placed = bus
            .execute_with::<Order, _>(
                &order,
                OrderCommand::Place {
                    customer_id,
                    lines,
                    payment,
                },
                context,
                None,
                Order::clone,
            )
            .await?
            .aggregate;
        self.drive_for(order_id, placed, wait).await
    }

    /// Pays the order again with `payment`: an order whose payment was refused (declined, or
    /// the wallet short) starts a new attempt, with its stock reserved again; an order still
    /// placed changes instrument. Then drives it like a new order. Refused with
    /// `invalid_transition` for an order in any other state.
    #[tracing::instrument(skip(self, payment, context), fields(request_id = %context.request_id, method = ?payment.method))]
    pub async fn repay(
        &self,
        order_id: Uuid,
        payment: PaymentInstrument,
        context: &CommandContext,
        wait: Duration,
    ) -> Result<Placement, OrderingError> {
        let retried = self
            .process
            .bus()
            .execute_with::<Order, _>(
                &order_id.to_string(),
                OrderCommand::RetryPayment { payment },
                context,
                None,
                Order::clone,
            )
            .await?
            .aggregate;
        self.drive_for(order_id, retried, wait).await
    }

    /// Drives the order (as its last command left it) for up to `wait`, or in the background
    /// when `wait` is zero.
    async fn drive_for(
        &self,
        order_id: Uuid,
        placed: Order,
        wait: Duration,
    ) -> Result<Placement, OrderingError> {
        let bus = self.process.bus();
        let order = order_id.to_string();
        if wait.is_zero() {
            let process = Arc::clone(&self.process);
            // In the request's span: the order's steps still read as part of its trace.
            let driving = async move {
                if let Err(error) = process.advance_from(order_id, Some(placed)).await {
                    tracing::warn!(%order_id, error = %error, "the order will finish in the background");
                }
            };
            tokio::spawn(driving.in_current_span());
            return Ok(Placement::Pending { order_id });
        }
        if self
            .wait_for_outcome(order_id, placed, wait)
            .await
            .is_none()
        {
            return Ok(Placement::Pending { order_id });
        }
        let finished = bus.load::<Order>(&order).await?;
        Ok(Placement::Finished {
            order_id,
            order: finished.aggregate,
            version: finished.version,
        })
    }

    /// Drives the order (as placed) for up to `wait`; `None` when it has not finished by then
    /// (the order worker carries on).
    async fn wait_for_outcome(
        &self,
        order_id: Uuid,
        placed: Order,
        wait: Duration,
    ) -> Option<OrderStatus> {
        let advanced = self.process.advance_from(order_id, Some(placed));
        match tokio::time::timeout(wait, advanced).await {
            Ok(Ok(status)) => Some(status),
            Ok(Err(error)) => {
                tracing::warn!(%order_id, error = %error, "the order will finish in the background");
                None
            }
            Err(_) => None,
        }
    }
}
