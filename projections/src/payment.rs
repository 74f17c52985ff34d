//! The `payments` read model: one row per payment, with its status.

use chrono::{DateTime, Utc};
use eshop_domain::payment::{PaymentEvent, PaymentStatus};
use eshop_domain::values::PaymentMethod;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{step, ProjectionError, RelayedEvent, Step};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PaymentRecord {
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub method: PaymentMethod,
    pub amount_cents: i64,
    pub card_last4: Option<String>,
    pub status: PaymentStatus,
    pub reference: Option<String>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// The record after `event`, or `None` when the event was already applied.
pub fn apply(
    current: Option<&PaymentRecord>,
    event: &RelayedEvent,
) -> Result<Option<PaymentRecord>, ProjectionError> {
    if step(event, current.map_or(0, |row| row.version))? == Step::Seen {
        return Ok(None);
    }
    let decoded: PaymentEvent = event.decode()?;
    let mut row = match (current, decoded) {
        (
            None,
            PaymentEvent::PaymentRequested {
                order_id,
                customer_id,
                method,
                amount_cents,
                card_last4,
            },
        ) => PaymentRecord {
            id: event
                .aggregate_id
                .parse()
                .map_err(|error| event.unreadable(error))?,
            order_id,
            customer_id,
            method,
            amount_cents,
            card_last4,
            status: PaymentStatus::Requested,
            reference: None,
            reason: None,
            created_at: event.recorded_at,
            updated_at: event.recorded_at,
            version: 0,
        },
        (Some(current), decoded) => {
            let mut row = current.clone();
            match decoded {
                PaymentEvent::PaymentRequested { .. } => {
                    return Err(event.unreadable("PaymentRequested on an existing payment"))
                }
                PaymentEvent::PaymentCaptured { reference } => {
                    row.status = PaymentStatus::Captured;
                    row.reference = Some(reference);
                }
                PaymentEvent::PaymentDeclined { reason } => {
                    row.status = PaymentStatus::Declined;
                    row.reason = Some(reason);
                }
                PaymentEvent::PaymentRefunded { .. } => row.status = PaymentStatus::Refunded,
            }
            row
        }
        (None, _) => return Err(event.unreadable("the first event is not PaymentRequested")),
    };
    row.updated_at = event.recorded_at;
    row.version = event.sequence;
    Ok(Some(row))
}

impl crate::ReadModel for PaymentRecord {
    const NAME: &'static str = "payments";
    const AGGREGATE_TYPE: &'static str = "payment";

    fn id(&self) -> Uuid {
        self.id
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn apply(
        current: Option<&Self>,
        event: &RelayedEvent,
    ) -> Result<Option<Self>, ProjectionError> {
        apply(current, event)
    }
}
