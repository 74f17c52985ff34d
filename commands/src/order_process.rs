//! The order process manager: drives an order to a terminal state across the aggregates it
//! touches — the products' stock, the buyer's wallet or a payment gateway, the payment, the
//! order — and undoes what was done when it cannot finish.
//!
//! cqrs-es commits one aggregate at a time, so the steps are separate commands. Each carries an
//! id derived from the order and the step, and each domain step is idempotent per order, so
//! repeating a step (after a crash, or from two drivers at once) changes nothing. `advance`
//! starts from whatever state the order is in; a failed or cancelled order is always undone
//! (again, harmlessly) before `advance` returns.

use std::sync::Arc;

use uuid::Uuid;

use eshop_domain::order::{Order, OrderCommand, OrderError, OrderStatus};
use eshop_domain::payment::{Payment, PaymentCommand, PaymentError};
use eshop_domain::product::{Product, ProductCommand, ProductError};
use eshop_domain::user::{User, UserCommand, UserError};
use eshop_domain::values::{PaymentMethod, Quantity};

use crate::bus::{CommandBus, CommandError};
use crate::context::{derived_id, Actor, CommandContext};
use crate::payment_gateway::{Charge, ChargeOutcome, GatewayUnavailable, PaymentGateway};
use crate::store::{EventStore, StoreError};

/// Why an order failed (the `reason` on `OrderFailed`).
pub const OUT_OF_STOCK: &str = "out_of_stock";
pub const PRODUCT_UNAVAILABLE: &str = "product_unavailable";
pub const INSUFFICIENT_BALANCE: &str = "insufficient_balance";
pub const ACCOUNT_DEACTIVATED: &str = "account_deactivated";
pub const PAYMENT_DECLINED: &str = "payment_declined";
pub const TIMED_OUT: &str = "timed_out";

/// What a step left: the order after it, or `None` when someone else had moved it on.
type Step = Option<Order>;

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

/// The id of the payment for an order (one payment per order).
pub fn payment_id(order_id: Uuid) -> Uuid {
    derived_id(&["payment", &order_id.to_string()])
}

pub struct OrderProcess<S, G> {
    bus: Arc<CommandBus<S>>,
    gateway: G,
}

impl<S: EventStore, G: PaymentGateway> OrderProcess<S, G> {
    pub fn new(bus: Arc<CommandBus<S>>, gateway: G) -> Self {
        Self { bus, gateway }
    }

    /// The context of one step of one order: its id is derived from both.
    fn step(order_id: Uuid, step: &str, target: &str) -> CommandContext {
        CommandContext::step(
            Actor::System,
            "order-process",
            &["order-process", &order_id.to_string(), step, target],
        )
        .correlated_with(order_id)
    }

    /// Moves the order on until it is confirmed, cancelled or failed; returns where it ended.
    pub async fn advance(&self, order_id: Uuid) -> Result<OrderStatus, ProcessError> {
        // Each step answers with the order after it; only when a step found the order moved
        // on by someone else is it read again.
        let mut known = None;
        loop {
            let order = match known.take() {
                Some(order) => order,
                None => self.current(order_id).await?,
            };
            known = match order.status {
                OrderStatus::New => return Err(ProcessError::NotFound),
                OrderStatus::Placed => self.reserve_stock(order_id, &order).await?,
                OrderStatus::StockReserved => self.take_payment(order_id, &order).await?,
                OrderStatus::Paid => self.confirm(order_id, &order).await?,
                OrderStatus::Confirmed => return Ok(OrderStatus::Confirmed),
                status @ (OrderStatus::Cancelled | OrderStatus::Failed) => {
                    self.undo(order_id, &order).await?;
                    return Ok(status);
                }
            };
        }
    }

    async fn current(&self, order_id: Uuid) -> Result<Order, ProcessError> {
        Ok(self
            .bus
            .read::<Order, _>(&order_id.to_string(), |order, _| order.clone())
            .await?)
    }

    /// Fails an order that is still waiting for stock or payment (the sweep's timeout), undoing
    /// what was done; returns where the order ended.
    pub async fn give_up(&self, order_id: Uuid, reason: &str) -> Result<OrderStatus, ProcessError> {
        let order = self.current(order_id).await?;
        if matches!(
            order.status,
            OrderStatus::Placed | OrderStatus::StockReserved
        ) {
            self.fail(order_id, &order, reason).await?;
        }
        self.advance(order_id).await
    }

    async fn order_step(
        &self,
        order_id: Uuid,
        command: OrderCommand,
        step: &str,
    ) -> Result<Step, ProcessError> {
        let context = Self::step(order_id, step, "order");
        match self
            .bus
            .execute_with::<Order, _>(&order_id.to_string(), command, &context, None, Order::clone)
            .await
        {
            Ok(executed) => Ok(Some(executed.aggregate)),
            // Someone else moved the order on (a cancellation, another driver): the next
            // round of `advance` reads where it is.
            Err(CommandError::Rejected(OrderError::InvalidTransition { .. })) => Ok(None),
            Err(other) => Err(step_error(other)),
        }
    }

    async fn reserve_stock(&self, order_id: Uuid, order: &Order) -> Result<Step, ProcessError> {
        for line in &order.lines {
            let quantity = Quantity::positive(line.quantity)
                .map_err(|invalid| ProcessError::Step(invalid.0))?;
            let product = line.product_id.to_string();
            let reserved = self
                .bus
                .execute_with::<Product, _>(
                    &product,
                    ProductCommand::Reserve { order_id, quantity },
                    &Self::step(order_id, "reserve", &product),
                    None,
                    |_| (),
                )
                .await;
            match reserved {
                Ok(_) => {}
                Err(CommandError::Rejected(ProductError::InsufficientStock { .. })) => {
                    return self.fail(order_id, order, OUT_OF_STOCK).await;
                }
                Err(CommandError::Rejected(ProductError::NotFound)) => {
                    return self.fail(order_id, order, PRODUCT_UNAVAILABLE).await;
                }
                Err(other) => return Err(step_error(other)),
            }
        }
        self.order_step(
            order_id,
            OrderCommand::RecordStockReserved,
            "stock-reserved",
        )
        .await
    }

    async fn take_payment(&self, order_id: Uuid, order: &Order) -> Result<Step, ProcessError> {
        let (Some(customer_id), Some(instrument)) = (order.customer_id, order.payment.clone())
        else {
            return Err(ProcessError::Step(
                "the order has no customer or payment".into(),
            ));
        };
        let payment_id = payment_id(order_id);
        let payment = payment_id.to_string();
        self.bus
            .execute_with::<Payment, _>(
                &payment,
                PaymentCommand::Request {
                    order_id,
                    customer_id,
                    method: instrument.method,
                    amount_cents: order.total_cents,
                    card_last4: instrument.card_last4.clone(),
                },
                &Self::step(order_id, "payment-request", &payment),
                None,
                |_| (),
            )
            .await
            .or_else(|error| match error {
                CommandError::Rejected(eshop_domain::payment::PaymentError::AlreadyRequested) => {
                    Ok(crate::bus::Executed {
                        aggregate: (),
                        version: 0,
                        appended: 0,
                    })
                }
                other => Err(step_error(other)),
            })?;

        let outcome = if instrument.method == PaymentMethod::Balance {
            let debited = self
                .bus
                .execute_with::<User, _>(
                    &customer_id.to_string(),
                    UserCommand::Debit {
                        order_id,
                        amount_cents: order.total_cents,
                    },
                    &Self::step(order_id, "debit", &customer_id.to_string()),
                    None,
                    |_| (),
                )
                .await;
            match debited {
                Ok(_) => ChargeOutcome::Captured {
                    reference: format!("wallet:{order_id}"),
                },
                Err(CommandError::Rejected(UserError::InsufficientBalance { .. })) => {
                    ChargeOutcome::Declined {
                        reason: INSUFFICIENT_BALANCE.into(),
                    }
                }
                Err(CommandError::Rejected(UserError::Deactivated | UserError::NotFound)) => {
                    ChargeOutcome::Declined {
                        reason: ACCOUNT_DEACTIVATED.into(),
                    }
                }
                Err(other) => return Err(step_error(other)),
            }
        } else {
            self.gateway
                .charge(&Charge {
                    payment_id,
                    method: instrument.method,
                    amount_cents: order.total_cents,
                    token: instrument.token.clone(),
                })
                .await?
        };

        match outcome {
            ChargeOutcome::Captured { reference } => {
                self.payment_step(order_id, PaymentCommand::Capture { reference }, "capture")
                    .await?;
                self.order_step(order_id, OrderCommand::RecordPaid { payment_id }, "paid")
                    .await
            }
            ChargeOutcome::Declined { reason } => {
                self.payment_step(
                    order_id,
                    PaymentCommand::Decline {
                        reason: reason.clone(),
                    },
                    "decline",
                )
                .await?;
                let reason = if instrument.method == PaymentMethod::Balance {
                    reason
                } else {
                    PAYMENT_DECLINED.to_string()
                };
                self.fail(order_id, order, &reason).await
            }
        }
    }

    async fn payment_step(
        &self,
        order_id: Uuid,
        command: PaymentCommand,
        step: &str,
    ) -> Result<(), ProcessError> {
        let payment = payment_id(order_id).to_string();
        match self
            .bus
            .execute_with::<Payment, _>(
                &payment,
                command,
                &Self::step(order_id, step, &payment),
                None,
                |_| (),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(CommandError::Rejected(
                eshop_domain::payment::PaymentError::InvalidTransition { .. },
            )) => Ok(()),
            Err(other) => Err(step_error(other)),
        }
    }

    async fn confirm(&self, order_id: Uuid, order: &Order) -> Result<Step, ProcessError> {
        for line in &order.lines {
            let product = line.product_id.to_string();
            self.bus
                .execute_with::<Product, _>(
                    &product,
                    ProductCommand::CommitReservation { order_id },
                    &Self::step(order_id, "commit", &product),
                    None,
                    |_| (),
                )
                .await
                .map_err(step_error)?;
        }
        self.order_step(order_id, OrderCommand::Confirm, "confirm")
            .await
    }

    /// Undo first, then record the failure: a crash in between leaves an order that the next
    /// `advance` undoes again (harmlessly) and fails.
    async fn fail(
        &self,
        order_id: Uuid,
        order: &Order,
        reason: &str,
    ) -> Result<Step, ProcessError> {
        self.undo(order_id, order).await?;
        self.order_step(
            order_id,
            OrderCommand::Fail {
                reason: reason.to_string(),
            },
            "fail",
        )
        .await
    }

    /// Releases every reservation and gives back a wallet debit or a captured payment. Each of
    /// these is a no-op when there is nothing to undo.
    async fn undo(&self, order_id: Uuid, order: &Order) -> Result<(), ProcessError> {
        for line in &order.lines {
            let product = line.product_id.to_string();
            self.bus
                .execute_with::<Product, _>(
                    &product,
                    ProductCommand::Release { order_id },
                    &Self::step(order_id, "release", &product),
                    None,
                    |_| (),
                )
                .await
                .map_err(step_error)?;
        }
        if let Some(customer_id) = order.customer_id {
            let refunded = self
                .bus
                .execute_with::<User, _>(
                    &customer_id.to_string(),
                    UserCommand::Refund { order_id },
                    &Self::step(order_id, "refund", &customer_id.to_string()),
                    None,
                    |_| (),
                )
                .await;
            match refunded {
                Ok(_) | Err(CommandError::Rejected(UserError::NotFound)) => {}
                Err(other) => return Err(step_error(other)),
            }
        }
        let payment = payment_id(order_id).to_string();
        match self
            .bus
            .execute_with::<Payment, _>(
                &payment,
                PaymentCommand::Refund,
                &Self::step(order_id, "payment-refund", &payment),
                None,
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
