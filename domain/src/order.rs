//! The `order` aggregate: what a customer bought and where the purchase stands.
//!
//! An order changes no stock and no money itself: the order process manager reserves stock on
//! the products, takes the payment, and records each step here. Every step is idempotent, so a
//! process manager that repeats a step after a crash changes nothing.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::claims::DeclaresClaims;
use crate::values::PaymentMethod;

/// The version of every event type below; bump one (with an upcaster) when its shape changes.
pub const EVENT_VERSION: &str = "1";

pub const MAX_LINES: usize = 100;
pub const MAX_QUANTITY_PER_LINE: i64 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderLine {
    pub product_id: Uuid,
    pub quantity: i64,
    /// The price when the order was placed.
    pub unit_price_cents: i64,
}

/// How the order will be paid. Never a card number: the gateway's token for it and the last
/// four digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaymentInstrument {
    pub method: PaymentMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_last4: Option<String>,
    /// The card's brand (`visa`, `mastercard`, `amex`, …), when the buyer sent the whole card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_brand: Option<String>,
}

impl PaymentInstrument {
    pub fn balance() -> Self {
        Self {
            method: PaymentMethod::Balance,
            token: None,
            card_last4: None,
            card_brand: None,
        }
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    #[default]
    New,
    Placed,
    StockReserved,
    Paid,
    Confirmed,
    Cancelled,
    Failed,
}

impl OrderStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Confirmed | Self::Cancelled | Self::Failed)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrderCommand {
    Place {
        customer_id: Uuid,
        lines: Vec<OrderLine>,
        payment: PaymentInstrument,
    },
    RecordStockReserved,
    RecordPaid {
        payment_id: Uuid,
    },
    Confirm,
    /// The customer's cancellation: only before payment.
    Cancel {
        reason: String,
    },
    /// The process manager gives up (stock, payment or timeout); it undoes what was done.
    Fail {
        reason: String,
    },
    /// The customer pays again with `payment`: an order that failed because its payment was
    /// refused starts over (a new attempt: its stock is reserved again and a new payment is
    /// taken); an order whose payment was not taken yet (still placed) changes instrument.
    RetryPayment {
        payment: PaymentInstrument,
    },
}

/// The failure reasons after which an order may be paid again.
pub const RETRYABLE_REASONS: [&str; 2] = ["payment_declined", "insufficient_balance"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum OrderEvent {
    OrderPlaced {
        customer_id: Uuid,
        lines: Vec<OrderLine>,
        total_cents: i64,
        payment: PaymentInstrument,
    },
    OrderStockReserved,
    OrderPaid {
        payment_id: Uuid,
    },
    OrderConfirmed,
    OrderCancelled {
        reason: String,
    },
    OrderFailed {
        reason: String,
    },
    /// The order is placed again, to be paid with `payment`; `attempt` counts from 1 (the
    /// first payment), so its steps and payment are told apart from the earlier attempts'.
    OrderPaymentRetried {
        payment: PaymentInstrument,
        attempt: u32,
    },
}

impl DomainEvent for OrderEvent {
    fn event_type(&self) -> String {
        match self {
            Self::OrderPlaced { .. } => "OrderPlaced",
            Self::OrderStockReserved => "OrderStockReserved",
            Self::OrderPaid { .. } => "OrderPaid",
            Self::OrderConfirmed => "OrderConfirmed",
            Self::OrderCancelled { .. } => "OrderCancelled",
            Self::OrderFailed { .. } => "OrderFailed",
            Self::OrderPaymentRetried { .. } => "OrderPaymentRetried",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}

impl DeclaresClaims for OrderEvent {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("the order does not exist")]
    NotFound,
    #[error("the order was already placed")]
    AlreadyPlaced,
    #[error("an order needs 1 to {MAX_LINES} lines, each product once, 1 to {MAX_QUANTITY_PER_LINE} units at a price of 0 or more")]
    InvalidLines,
    #[error("the order total is too large")]
    TotalTooLarge,
    #[error("the order is {status:?}: it cannot {action}")]
    InvalidTransition {
        status: OrderStatus,
        action: &'static str,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub status: OrderStatus,
    pub customer_id: Option<Uuid>,
    pub lines: Vec<OrderLine>,
    pub total_cents: i64,
    pub payment: Option<PaymentInstrument>,
    pub payment_id: Option<Uuid>,
    pub reason: Option<String>,
    /// Which payment attempt the order is on: 0 or 1 for the first, then 2, 3, …
    #[serde(default)]
    pub attempt: u32,
}

fn total_of(lines: &[OrderLine]) -> Result<i64, OrderError> {
    let valid = !lines.is_empty()
        && lines.len() <= MAX_LINES
        && lines.iter().all(|line| {
            (1..=MAX_QUANTITY_PER_LINE).contains(&line.quantity) && line.unit_price_cents >= 0
        })
        && lines.iter().enumerate().all(|(i, line)| {
            lines[..i]
                .iter()
                .all(|earlier| earlier.product_id != line.product_id)
        });
    if !valid {
        return Err(OrderError::InvalidLines);
    }
    lines.iter().try_fold(0_i64, |total, line| {
        line.unit_price_cents
            .checked_mul(line.quantity)
            .and_then(|line_total| total.checked_add(line_total))
            .ok_or(OrderError::TotalTooLarge)
    })
}

impl Order {
    fn refuse(&self, action: &'static str) -> OrderError {
        if self.status == OrderStatus::New {
            OrderError::NotFound
        } else {
            OrderError::InvalidTransition {
                status: self.status,
                action,
            }
        }
    }

    fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        use OrderStatus as S;
        Ok(match (self.status, command) {
            (
                S::New,
                OrderCommand::Place {
                    customer_id,
                    lines,
                    payment,
                },
            ) => {
                let total_cents = total_of(&lines)?;
                vec![OrderEvent::OrderPlaced {
                    customer_id,
                    lines,
                    total_cents,
                    payment,
                }]
            }
            (_, OrderCommand::Place { .. }) => return Err(OrderError::AlreadyPlaced),

            (S::Placed, OrderCommand::RecordStockReserved) => vec![OrderEvent::OrderStockReserved],
            (S::StockReserved | S::Paid | S::Confirmed, OrderCommand::RecordStockReserved) => {
                Vec::new()
            }
            (_, OrderCommand::RecordStockReserved) => return Err(self.refuse("reserve stock")),

            (S::StockReserved, OrderCommand::RecordPaid { payment_id }) => {
                vec![OrderEvent::OrderPaid { payment_id }]
            }
            (S::Paid | S::Confirmed, OrderCommand::RecordPaid { payment_id })
                if self.payment_id == Some(payment_id) =>
            {
                Vec::new()
            }
            (_, OrderCommand::RecordPaid { .. }) => return Err(self.refuse("be paid")),

            (S::Paid, OrderCommand::Confirm) => vec![OrderEvent::OrderConfirmed],
            (S::Confirmed, OrderCommand::Confirm) => Vec::new(),
            (_, OrderCommand::Confirm) => return Err(self.refuse("be confirmed")),

            (S::Placed | S::StockReserved, OrderCommand::Cancel { reason }) => {
                vec![OrderEvent::OrderCancelled { reason }]
            }
            (S::Cancelled, OrderCommand::Cancel { .. }) => Vec::new(),
            (_, OrderCommand::Cancel { .. }) => return Err(self.refuse("be cancelled")),

            (S::Placed | S::StockReserved | S::Paid, OrderCommand::Fail { reason }) => {
                vec![OrderEvent::OrderFailed { reason }]
            }
            (S::Failed | S::Cancelled, OrderCommand::Fail { .. }) => Vec::new(),
            (_, OrderCommand::Fail { .. }) => return Err(self.refuse("fail")),

            (S::Failed, OrderCommand::RetryPayment { payment })
                if self
                    .reason
                    .as_deref()
                    .is_some_and(|reason| RETRYABLE_REASONS.contains(&reason)) =>
            {
                vec![OrderEvent::OrderPaymentRetried {
                    payment,
                    attempt: self.attempt.max(1) + 1,
                }]
            }
            (S::Placed, OrderCommand::RetryPayment { payment }) => {
                vec![OrderEvent::OrderPaymentRetried {
                    payment,
                    attempt: self.attempt.max(1),
                }]
            }
            (_, OrderCommand::RetryPayment { .. }) => return Err(self.refuse("be paid again")),
        })
    }
}

impl Aggregate for Order {
    const TYPE: &'static str = "order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = self.decide(command)?;
        crate::emit(self, events, sink).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            OrderEvent::OrderPlaced {
                customer_id,
                lines,
                total_cents,
                payment,
            } => {
                self.status = OrderStatus::Placed;
                self.customer_id = Some(customer_id);
                self.lines = lines;
                self.total_cents = total_cents;
                self.payment = Some(payment);
            }
            OrderEvent::OrderStockReserved => self.status = OrderStatus::StockReserved,
            OrderEvent::OrderPaid { payment_id } => {
                self.status = OrderStatus::Paid;
                self.payment_id = Some(payment_id);
            }
            OrderEvent::OrderConfirmed => self.status = OrderStatus::Confirmed,
            OrderEvent::OrderCancelled { reason } => {
                self.status = OrderStatus::Cancelled;
                self.reason = Some(reason);
            }
            OrderEvent::OrderFailed { reason } => {
                self.status = OrderStatus::Failed;
                self.reason = Some(reason);
            }
            OrderEvent::OrderPaymentRetried { payment, attempt } => {
                self.status = OrderStatus::Placed;
                self.reason = None;
                self.payment = Some(payment);
                self.payment_id = None;
                self.attempt = attempt;
            }
        }
    }
}

#[cfg(test)]
mod tests;
