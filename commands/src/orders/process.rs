//! The order process manager: drives an order to a terminal state across the aggregates it
//! touches — the products' stock, the buyer's wallet or a payment gateway, the payment, the
//! order — and undoes what was done when it cannot finish.
//!
//! Each step is a command on one aggregate. Each carries an id derived from the order and the
//! step, and each domain step is idempotent per order, so repeating a step (after a crash, or
//! from two drivers at once) changes nothing. `advance` starts from whatever state the order is
//! in and commits step by step (a gateway charge may sit between steps); a failed or cancelled
//! order is always undone (again, harmlessly) before `advance` returns. `purchase` runs the
//! same steps for a wallet purchase, where nothing waits on the outside, and commits them in
//! one transaction.

use std::sync::Arc;

use cqrs_es::Aggregate;
use tracing::Instrument;
use uuid::Uuid;

use eshop_domain::order::{Order, OrderCommand, OrderError, OrderStatus, PaymentInstrument};
use eshop_domain::payment::{Payment, PaymentCommand, PaymentError};
use eshop_domain::product::{Product, ProductCommand, ProductError};
use eshop_domain::user::{User, UserCommand, UserError};
use eshop_domain::values::{PaymentMethod, Quantity};
use eshop_domain::DeclaresClaims;

use super::failure::FailureReason;
use super::pricing::WantedLine;
use super::purchases::{self, PurchaseQueues, Queued};
use crate::bus::{Batch, CommandBus, CommandError, Executed};
use crate::context::{derived_id, Actor, CommandContext};
use crate::payment_gateway::{Charge, ChargeOutcome, GatewayUnavailable, PaymentGateway};
use crate::store::{EventStore, StoreError};

/// What a step left: the order after it, or `None` when someone else had moved it on.
type Step = Option<Order>;

/// How taking the money went, from the wallet or the gateway.
enum Charged {
    Captured {
        reference: String,
    },
    /// `payment_reason` is recorded on the payment, `order_reason` on the failed order.
    Declined {
        payment_reason: String,
        order_reason: FailureReason,
    },
}

impl Charged {
    /// The wallet refused: the payment and the order carry the same reason.
    fn refused_by_wallet(reason: FailureReason) -> Self {
        Self::Declined {
            payment_reason: reason.as_str().to_string(),
            order_reason: reason,
        }
    }
}

/// A step could not run now (the store or the gateway is unavailable, or a conflict persisted):
/// the order stays where it is and `advance` can be called again.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("no such order")]
    NotFound,
    #[error("a step failed: {0}")]
    Step(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Gateway(#[from] GatewayUnavailable),
}

fn step_error<E: std::error::Error>(error: CommandError<E>) -> ProcessError {
    match error {
        CommandError::Store(store) => ProcessError::Store(store),
        other => ProcessError::Step(other.to_string()),
    }
}

/// The id of the payment for an order's first payment attempt.
pub fn payment_id(order_id: Uuid) -> Uuid {
    derived_id(&["payment", &order_id.to_string()])
}

/// One payment attempt of an order. Its `key` stands for the order in everything the attempt
/// does on other aggregates (the reservations, the wallet debit, the payment's id, the steps'
/// command ids), so a later attempt is told apart from an earlier, undone one. The first
/// attempt's key is the order id itself: orders paid once look as they always did.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    order_id: Uuid,
    key: Uuid,
}

impl Attempt {
    fn of(order_id: Uuid, order: &Order) -> Self {
        Self {
            order_id,
            key: attempt_key(order_id, order.attempt),
        }
    }

    /// The context of one step: its id is derived from the attempt, the step and its target.
    fn step(&self, step: &str, target: &str) -> CommandContext {
        CommandContext::step(
            Actor::System,
            "order-process",
            &["order-process", &self.key.to_string(), step, target],
        )
        .correlated_with(self.order_id)
    }

    fn payment_id(&self) -> Uuid {
        payment_id(self.key)
    }
}

/// What stands for the order in its `attempt`th payment attempt (see `Attempt`).
pub fn attempt_key(order_id: Uuid, attempt: u32) -> Uuid {
    if attempt <= 1 {
        order_id
    } else {
        derived_id(&["order-attempt", &order_id.to_string(), &attempt.to_string()])
    }
}

/// The payment of the order's `attempt`th payment attempt.
pub fn attempt_payment_id(order_id: Uuid, attempt: u32) -> Uuid {
    payment_id(attempt_key(order_id, attempt))
}

/// The aggregates a wallet purchase touches.
fn purchase_touches(request: &PurchaseRequest) -> [(&'static str, String); 4] {
    [
        (Order::TYPE, request.order_id.to_string()),
        (Product::TYPE, request.product_id.to_string()),
        (User::TYPE, request.customer_id.to_string()),
        (Payment::TYPE, payment_id(request.order_id).to_string()),
    ]
}

/// What `OrderProcess::purchase` buys, for whom, under which (fresh) order id.
#[derive(Debug, Clone)]
pub struct PurchaseRequest {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub product_id: Uuid,
    pub quantity: i64,
}

/// A purchase's end: the order (confirmed, or failed with its reason) and the wallet after it.
#[derive(Debug, Clone)]
pub struct Purchased {
    pub order: Order,
    pub order_version: u64,
    /// The version its payment (`payment_id` of the order) reached; 0 when none was taken.
    pub payment_version: u64,
    pub balance_cents: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PurchaseError {
    #[error("the product is not sold")]
    ProductUnavailable,
    #[error(transparent)]
    Refused(OrderError),
    #[error(transparent)]
    Process(#[from] ProcessError),
}

/// Where the process's commands go: to the store one at a time, or into a batch committed at
/// the end.
pub(super) enum Steps<'bus, S> {
    OneByOne(&'bus CommandBus<S>),
    Together(Batch<'bus, S>),
}

impl<S: EventStore> Steps<'_, S> {
    async fn execute<A, T>(
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
        match self {
            Self::OneByOne(bus) => {
                bus.execute_with(aggregate_id, command, context, None, answer)
                    .await
            }
            Self::Together(batch) => {
                batch
                    .execute_with(aggregate_id, command, context, answer)
                    .await
            }
        }
    }

    pub(super) async fn read<A, T>(
        &mut self,
        aggregate_id: &str,
        view: impl FnOnce(&A, u64) -> T,
    ) -> Result<T, StoreError>
    where
        A: Aggregate + 'static,
    {
        match self {
            Self::OneByOne(bus) => bus.read(aggregate_id, view).await,
            Self::Together(batch) => batch.read(aggregate_id, view).await,
        }
    }
}

pub struct OrderProcess<S, G> {
    bus: Arc<CommandBus<S>>,
    gateway: G,
    pub(super) purchases: PurchaseQueues,
}

impl<S: EventStore, G: PaymentGateway> OrderProcess<S, G> {
    pub fn new(bus: Arc<CommandBus<S>>, gateway: G) -> Self {
        Self {
            bus,
            gateway,
            purchases: PurchaseQueues::default(),
        }
    }

    /// The command bus the process's steps go through.
    pub fn bus(&self) -> &Arc<CommandBus<S>> {
        &self.bus
    }

    /// The payment gateway the process charges.
    pub fn gateway(&self) -> &G {
        &self.gateway
    }

    /// Moves the order on until it is confirmed, cancelled or failed; returns where it ended.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn advance(&self, order_id: Uuid) -> Result<OrderStatus, ProcessError> {
        self.advance_from(order_id, None).await
    }

    /// `advance`, unless this process already knows the order confirmed (a confirmed order
    /// never changes again, so a copy in memory that says so is the truth; a cancelled or
    /// failed one may still need undoing): for redeliveries.
    pub async fn advance_unless_confirmed(
        &self,
        order_id: Uuid,
    ) -> Result<OrderStatus, ProcessError> {
        let status = self
            .bus
            .read_as_known::<Order, _>(&order_id.to_string(), |order, _| order.status)
            .await?;
        if status == OrderStatus::Confirmed {
            return Ok(status);
        }
        self.advance(order_id).await
    }

    /// Like `advance`, starting from `known`: the order as its last command left it, when the
    /// caller has it. Each step is committed on its own.
    #[tracing::instrument(level = "debug", skip(self, known))]
    pub async fn advance_from(
        &self,
        order_id: Uuid,
        known: Option<Order>,
    ) -> Result<OrderStatus, ProcessError> {
        let mut steps = Steps::OneByOne(&self.bus);
        self.drive(&mut steps, order_id, known).await
    }

    /// Buys `quantity` of a product from the customer's wallet: places the order (priced from
    /// the product as the reservation finds it) and runs every step to the end. No step waits
    /// on anything outside, so the steps, the same commands with the same ids and events as
    /// step by step, are committed together: a crash leaves no order or a finished one.
    ///
    /// Purchases of one product that arrive while another is being committed queue and are
    /// committed together, in one transaction, in the order they came (see `purchases`): a
    /// busy product then costs one commit per group instead of one per purchase.
    #[tracing::instrument(level = "debug", skip_all, fields(order_id = %request.order_id, product_id = %request.product_id))]
    pub async fn purchase(
        self: &Arc<Self>,
        request: &PurchaseRequest,
        context: &CommandContext,
    ) -> Result<Purchased, PurchaseError>
    where
        S: Send + Sync + 'static,
        G: Send + Sync + 'static,
    {
        // Once per request, not per attempt: after a failed attempt the order is read from the
        // store, so a repeated request finds its first run there.
        self.bus.assume_new::<Order>(&request.order_id.to_string());
        purchases::queue(self, request.clone(), context.clone()).await
    }

    /// One purchase in its own transaction. A conflict with another writer runs it again on
    /// the stored aggregates.
    pub(super) async fn purchase_alone(
        &self,
        request: &PurchaseRequest,
        context: &CommandContext,
    ) -> Result<Purchased, PurchaseError> {
        let retry = self.bus.retry_policy();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut steps = Steps::Together(self.bus.batch(purchase_touches(request)).await);
            let purchased = self.stage_purchase(&mut steps, request, context).await?;
            let Steps::Together(batch) = steps else {
                unreachable!("opened as a batch")
            };
            match batch.commit().await {
                Ok(()) => return Ok(purchased),
                Err(StoreError::Conflict | StoreError::AlreadyApplied)
                    if attempt < retry.max_attempts =>
                {
                    tokio::time::sleep(retry.delay_before(attempt)).await;
                }
                Err(other) => return Err(ProcessError::Store(other).into()),
            }
        }
    }

    /// Several purchases in one transaction, each as `purchase_alone` would run it. `None` when
    /// the transaction did not commit (a conflict, the store down) or a purchase broke off
    /// half staged: nothing was stored, and the caller runs each alone.
    pub(super) async fn purchase_together(
        &self,
        purchases: &[Queued],
    ) -> Option<Vec<Result<Purchased, PurchaseError>>> {
        let touched = purchases
            .iter()
            .flat_map(|(request, _, _)| purchase_touches(request));
        let mut steps = Steps::Together(self.bus.batch(touched).await);
        let mut outcomes = Vec::with_capacity(purchases.len());
        for (request, context, span) in purchases {
            // Each purchase's steps in its own request's span; the group's commit in none.
            let staged = self
                .stage_purchase(&mut steps, request, context)
                .instrument(span.clone())
                .await;
            match staged {
                Err(PurchaseError::Process(_)) => return None,
                outcome => outcomes.push(outcome),
            }
        }
        let Steps::Together(batch) = steps else {
            unreachable!("opened as a batch")
        };
        batch.commit().await.ok().map(|()| outcomes)
    }

    /// Stages one purchase's steps in `steps`. A refusal or a product not sold stages nothing;
    /// a `Process` error may leave some steps staged, so the batch must not be committed.
    async fn stage_purchase(
        &self,
        steps: &mut Steps<'_, S>,
        request: &PurchaseRequest,
        context: &CommandContext,
    ) -> Result<Purchased, PurchaseError> {
        let order = request.order_id.to_string();
        let customer = request.customer_id.to_string();
        let wanted = [WantedLine {
            product_id: request.product_id,
            quantity: request.quantity,
        }];
        let Ok(lines) = steps.price(&wanted).await.map_err(ProcessError::from)? else {
            return Err(PurchaseError::ProductUnavailable);
        };
        let place = OrderCommand::Place {
            customer_id: request.customer_id,
            lines,
            payment: PaymentInstrument::balance(),
        };
        let placed = match steps
            .execute::<Order, _>(&order, place, context, Order::clone)
            .await
        {
            Ok(placed) => placed.aggregate,
            Err(CommandError::Rejected(refusal)) => return Err(PurchaseError::Refused(refusal)),
            Err(other) => return Err(step_error(other).into()),
        };
        self.drive(steps, request.order_id, Some(placed)).await?;
        let (order_now, order_version) = steps
            .read::<Order, _>(&order, |order, version| (order.clone(), version))
            .await
            .map_err(ProcessError::from)?;
        let balance_cents = steps
            .read::<User, _>(&customer, |buyer, _| buyer.balance_cents)
            .await
            .map_err(ProcessError::from)?;
        let payment_version = steps
            .read::<Payment, _>(&payment_id(request.order_id).to_string(), |_, version| {
                version
            })
            .await
            .map_err(ProcessError::from)?;
        Ok(Purchased {
            order: order_now,
            order_version,
            payment_version,
            balance_cents,
        })
    }

    async fn drive(
        &self,
        steps: &mut Steps<'_, S>,
        order_id: Uuid,
        known: Option<Order>,
    ) -> Result<OrderStatus, ProcessError> {
        // Each step answers with the order after it; only when a step found the order moved
        // on by someone else is it read again.
        let mut known = known;
        loop {
            let order = match known.take() {
                Some(order) => order,
                None => self.current(steps, order_id).await?,
            };
            known = match order.status {
                OrderStatus::New => return Err(ProcessError::NotFound),
                OrderStatus::Placed => self.reserve_stock(steps, order_id, &order).await?,
                OrderStatus::StockReserved => self.take_payment(steps, order_id, &order).await?,
                OrderStatus::Paid => self.confirm(steps, order_id, &order).await?,
                OrderStatus::Confirmed => return Ok(OrderStatus::Confirmed),
                status @ (OrderStatus::Cancelled | OrderStatus::Failed) => {
                    self.undo(steps, order_id, &order).await?;
                    return Ok(status);
                }
            };
        }
    }

    async fn current(
        &self,
        steps: &mut Steps<'_, S>,
        order_id: Uuid,
    ) -> Result<Order, ProcessError> {
        Ok(steps
            .read::<Order, _>(&order_id.to_string(), |order, _| order.clone())
            .await?)
    }

    /// Fails an order that is still waiting for stock or payment (the sweep's timeout), undoing
    /// what was done; returns where the order ended.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn give_up(
        &self,
        order_id: Uuid,
        reason: FailureReason,
    ) -> Result<OrderStatus, ProcessError> {
        let mut steps = Steps::OneByOne(&self.bus);
        let order = self.current(&mut steps, order_id).await?;
        if matches!(
            order.status,
            OrderStatus::Placed | OrderStatus::StockReserved
        ) {
            self.fail(&mut steps, order_id, &order, reason).await?;
        }
        self.drive(&mut steps, order_id, None).await
    }

    async fn order_step(
        &self,
        steps: &mut Steps<'_, S>,
        attempt: Attempt,
        command: OrderCommand,
        step: &str,
    ) -> Result<Step, ProcessError> {
        let order_id = attempt.order_id;
        let context = attempt.step(step, "order");
        match steps
            .execute::<Order, _>(&order_id.to_string(), command, &context, Order::clone)
            .await
        {
            Ok(executed) => Ok(Some(executed.aggregate)),
            // Someone else moved the order on (a cancellation, another driver): the next
            // round of `advance` reads where it is.
            Err(CommandError::Rejected(OrderError::InvalidTransition { .. })) => Ok(None),
            Err(other) => Err(step_error(other)),
        }
    }

    async fn reserve_stock(
        &self,
        steps: &mut Steps<'_, S>,
        order_id: Uuid,
        order: &Order,
    ) -> Result<Step, ProcessError> {
        let attempt = Attempt::of(order_id, order);
        for line in &order.lines {
            let quantity = Quantity::positive(line.quantity)
                .map_err(|invalid| ProcessError::Step(invalid.0))?;
            let product = line.product_id.to_string();
            let reserved = steps
                .execute::<Product, _>(
                    &product,
                    ProductCommand::Reserve {
                        order_id: attempt.key,
                        quantity,
                    },
                    &attempt.step("reserve", &product),
                    |_| (),
                )
                .await;
            match reserved {
                Ok(_) => {}
                Err(CommandError::Rejected(ProductError::InsufficientStock { .. })) => {
                    return self
                        .fail(steps, order_id, order, FailureReason::OutOfStock)
                        .await;
                }
                Err(CommandError::Rejected(ProductError::NotFound)) => {
                    return self
                        .fail(steps, order_id, order, FailureReason::ProductUnavailable)
                        .await;
                }
                Err(other) => return Err(step_error(other)),
            }
        }
        self.order_step(
            steps,
            attempt,
            OrderCommand::RecordStockReserved,
            "stock-reserved",
        )
        .await
    }

    async fn take_payment(
        &self,
        steps: &mut Steps<'_, S>,
        order_id: Uuid,
        order: &Order,
    ) -> Result<Step, ProcessError> {
        let (Some(customer_id), Some(instrument)) = (order.customer_id, order.payment.clone())
        else {
            return Err(ProcessError::Step(
                "the order has no customer or payment".into(),
            ));
        };
        let attempt = Attempt::of(order_id, order);
        let payment_id = attempt.payment_id();
        let payment = payment_id.to_string();
        // Only a resumed order has a payment already, and then the request's append conflicts.
        self.bus.assume_new::<Payment>(&payment);
        steps
            .execute::<Payment, _>(
                &payment,
                PaymentCommand::Request {
                    order_id,
                    customer_id,
                    method: instrument.method,
                    amount_cents: order.total_cents,
                    card_last4: instrument.card_last4.clone(),
                },
                &attempt.step("payment-request", &payment),
                |_| (),
            )
            .await
            .or_else(|error| match error {
                CommandError::Rejected(eshop_domain::payment::PaymentError::AlreadyRequested) => {
                    Ok(Executed {
                        aggregate: (),
                        version: 0,
                        appended: 0,
                    })
                }
                other => Err(step_error(other)),
            })?;

        let outcome = if instrument.method == PaymentMethod::Balance {
            let debited = steps
                .execute::<User, _>(
                    &customer_id.to_string(),
                    UserCommand::Debit {
                        order_id: attempt.key,
                        amount_cents: order.total_cents,
                    },
                    &attempt.step("debit", &customer_id.to_string()),
                    |_| (),
                )
                .await;
            match debited {
                Ok(_) => Charged::Captured {
                    reference: format!("wallet:{}", attempt.key),
                },
                Err(CommandError::Rejected(UserError::InsufficientBalance { .. })) => {
                    Charged::refused_by_wallet(FailureReason::InsufficientBalance)
                }
                Err(CommandError::Rejected(UserError::Deactivated | UserError::NotFound)) => {
                    Charged::refused_by_wallet(FailureReason::AccountDeactivated)
                }
                Err(other) => return Err(step_error(other)),
            }
        } else {
            let charged = self
                .gateway
                .charge(&Charge {
                    payment_id,
                    method: instrument.method,
                    amount_cents: order.total_cents,
                    token: instrument.token.clone(),
                })
                .await?;
            match charged {
                ChargeOutcome::Captured { reference } => Charged::Captured { reference },
                // The gateway's own reason stays on the payment; the order was declined.
                ChargeOutcome::Declined { reason } => Charged::Declined {
                    payment_reason: reason,
                    order_reason: FailureReason::PaymentDeclined,
                },
            }
        };

        match outcome {
            Charged::Captured { reference } => {
                self.payment_step(
                    steps,
                    attempt,
                    PaymentCommand::Capture { reference },
                    "capture",
                )
                .await?;
                self.order_step(
                    steps,
                    attempt,
                    OrderCommand::RecordPaid { payment_id },
                    "paid",
                )
                .await
            }
            Charged::Declined {
                payment_reason,
                order_reason,
            } => {
                self.payment_step(
                    steps,
                    attempt,
                    PaymentCommand::Decline {
                        reason: payment_reason,
                    },
                    "decline",
                )
                .await?;
                self.fail(steps, order_id, order, order_reason).await
            }
        }
    }

    async fn payment_step(
        &self,
        steps: &mut Steps<'_, S>,
        attempt: Attempt,
        command: PaymentCommand,
        step: &str,
    ) -> Result<(), ProcessError> {
        let payment = attempt.payment_id().to_string();
        match steps
            .execute::<Payment, _>(&payment, command, &attempt.step(step, &payment), |_| ())
            .await
        {
            Ok(_) => Ok(()),
            Err(CommandError::Rejected(
                eshop_domain::payment::PaymentError::InvalidTransition { .. },
            )) => Ok(()),
            Err(other) => Err(step_error(other)),
        }
    }

    async fn confirm(
        &self,
        steps: &mut Steps<'_, S>,
        order_id: Uuid,
        order: &Order,
    ) -> Result<Step, ProcessError> {
        let attempt = Attempt::of(order_id, order);
        for line in &order.lines {
            let product = line.product_id.to_string();
            steps
                .execute::<Product, _>(
                    &product,
                    ProductCommand::CommitReservation {
                        order_id: attempt.key,
                    },
                    &attempt.step("commit", &product),
                    |_| (),
                )
                .await
                .map_err(step_error)?;
        }
        self.order_step(steps, attempt, OrderCommand::Confirm, "confirm")
            .await
    }

    /// Undo first, then record the failure: a crash in between leaves an order that the next
    /// `advance` undoes again (harmlessly) and fails.
    async fn fail(
        &self,
        steps: &mut Steps<'_, S>,
        order_id: Uuid,
        order: &Order,
        reason: FailureReason,
    ) -> Result<Step, ProcessError> {
        self.undo(steps, order_id, order).await?;
        self.order_step(
            steps,
            Attempt::of(order_id, order),
            OrderCommand::Fail {
                reason: reason.as_str().to_string(),
            },
            "fail",
        )
        .await
    }

    /// Releases every reservation and gives back a wallet debit or a captured payment. Each of
    /// these is a no-op when there is nothing to undo.
    async fn undo(
        &self,
        steps: &mut Steps<'_, S>,
        order_id: Uuid,
        order: &Order,
    ) -> Result<(), ProcessError> {
        let attempt = Attempt::of(order_id, order);
        for line in &order.lines {
            let product = line.product_id.to_string();
            steps
                .execute::<Product, _>(
                    &product,
                    ProductCommand::Release {
                        order_id: attempt.key,
                    },
                    &attempt.step("release", &product),
                    |_| (),
                )
                .await
                .map_err(step_error)?;
        }
        if let Some(customer_id) = order.customer_id {
            let refunded = steps
                .execute::<User, _>(
                    &customer_id.to_string(),
                    UserCommand::Refund {
                        order_id: attempt.key,
                    },
                    &attempt.step("refund", &customer_id.to_string()),
                    |_| (),
                )
                .await;
            match refunded {
                Ok(_) | Err(CommandError::Rejected(UserError::NotFound)) => {}
                Err(other) => return Err(step_error(other)),
            }
        }
        let payment = attempt.payment_id().to_string();
        match steps
            .execute::<Payment, _>(
                &payment,
                PaymentCommand::Refund,
                &attempt.step("payment-refund", &payment),
                |_| (),
            )
            .await
        {
            // Never requested, or never captured: nothing to refund.
            Ok(_)
            | Err(CommandError::Rejected(
                PaymentError::NotFound | PaymentError::InvalidTransition { .. },
            )) => Ok(()),
            Err(other) => Err(step_error(other)),
        }
    }
}
