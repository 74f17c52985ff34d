//! The `payment` aggregate: one attempt to take an order's money, by wallet, card, PayPal or
//! bank transfer. Card details never reach it: only the last four digits.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::claims::DeclaresClaims;
use crate::values::PaymentMethod;

/// The version of every event type below; bump one (with an upcaster) when its shape changes.
pub const EVENT_VERSION: &str = "1";

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    #[default]
    New,
    Requested,
    Captured,
    Declined,
    Refunded,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PaymentCommand {
    Request {
        order_id: Uuid,
        customer_id: Uuid,
        method: PaymentMethod,
        amount_cents: i64,
        /// The last four digits of a card, never more.
        card_last4: Option<String>,
    },
    Capture {
        /// The gateway's reference for the capture.
        reference: String,
    },
    Decline {
        reason: String,
    },
    Refund,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum PaymentEvent {
    PaymentRequested {
        order_id: Uuid,
        customer_id: Uuid,
        method: PaymentMethod,
        amount_cents: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        card_last4: Option<String>,
    },
    PaymentCaptured {
        reference: String,
    },
    PaymentDeclined {
        reason: String,
    },
    PaymentRefunded {
        amount_cents: i64,
    },
}

impl DomainEvent for PaymentEvent {
    fn event_type(&self) -> String {
        match self {
            Self::PaymentRequested { .. } => "PaymentRequested",
            Self::PaymentCaptured { .. } => "PaymentCaptured",
            Self::PaymentDeclined { .. } => "PaymentDeclined",
            Self::PaymentRefunded { .. } => "PaymentRefunded",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}

impl DeclaresClaims for PaymentEvent {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("the payment does not exist")]
    NotFound,
    #[error("the payment was already requested")]
    AlreadyRequested,
    #[error("an amount must not be negative")]
    NegativeAmount,
    #[error("card_last4 must be exactly four digits")]
    InvalidCardDigits,
    #[error("the payment is {status:?}: it cannot {action}")]
    InvalidTransition {
        status: PaymentStatus,
        action: &'static str,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub status: PaymentStatus,
    pub order_id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    pub method: Option<PaymentMethod>,
    pub amount_cents: i64,
    pub card_last4: Option<String>,
    pub reference: Option<String>,
    pub reason: Option<String>,
}

impl Payment {
    fn refuse(&self, action: &'static str) -> PaymentError {
        if self.status == PaymentStatus::New {
            PaymentError::NotFound
        } else {
            PaymentError::InvalidTransition {
                status: self.status,
                action,
            }
        }
    }

    fn decide(&self, command: PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentError> {
        use PaymentStatus as S;
        Ok(match (self.status, command) {
            (
                S::New,
                PaymentCommand::Request {
                    order_id,
                    customer_id,
                    method,
                    amount_cents,
                    card_last4,
                },
            ) => {
                if amount_cents < 0 {
                    return Err(PaymentError::NegativeAmount);
                }
                if card_last4.as_deref().is_some_and(|digits| {
                    digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit())
                }) {
                    return Err(PaymentError::InvalidCardDigits);
                }
                vec![PaymentEvent::PaymentRequested {
                    order_id,
                    customer_id,
                    method,
                    amount_cents,
                    card_last4,
                }]
            }
            (_, PaymentCommand::Request { .. }) => return Err(PaymentError::AlreadyRequested),

            (S::Requested, PaymentCommand::Capture { reference }) => {
                vec![PaymentEvent::PaymentCaptured { reference }]
            }
            (S::Captured | S::Refunded, PaymentCommand::Capture { .. }) => Vec::new(),
            (_, PaymentCommand::Capture { .. }) => return Err(self.refuse("be captured")),

            (S::Requested, PaymentCommand::Decline { reason }) => {
                vec![PaymentEvent::PaymentDeclined { reason }]
            }
            (S::Declined, PaymentCommand::Decline { .. }) => Vec::new(),
            (_, PaymentCommand::Decline { .. }) => return Err(self.refuse("be declined")),

            (S::Captured, PaymentCommand::Refund) => vec![PaymentEvent::PaymentRefunded {
                amount_cents: self.amount_cents,
            }],
            (S::Refunded, PaymentCommand::Refund) => Vec::new(),
            (_, PaymentCommand::Refund) => return Err(self.refuse("be refunded")),
        })
    }
}

impl Aggregate for Payment {
    const TYPE: &'static str = "payment";
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;
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
            PaymentEvent::PaymentRequested {
                order_id,
                customer_id,
                method,
                amount_cents,
                card_last4,
            } => {
                self.status = PaymentStatus::Requested;
                self.order_id = Some(order_id);
                self.customer_id = Some(customer_id);
                self.method = Some(method);
                self.amount_cents = amount_cents;
                self.card_last4 = card_last4;
            }
            PaymentEvent::PaymentCaptured { reference } => {
                self.status = PaymentStatus::Captured;
                self.reference = Some(reference);
            }
            PaymentEvent::PaymentDeclined { reason } => {
                self.status = PaymentStatus::Declined;
                self.reason = Some(reason);
            }
            PaymentEvent::PaymentRefunded { .. } => self.status = PaymentStatus::Refunded,
        }
    }
}

#[cfg(test)]
mod tests;
