//! The `orders` read model: status, lines, totals, payment summary, and a timeline.

use chrono::{DateTime, Utc};
use eshop_domain::order::{OrderEvent, OrderLine, OrderStatus};
use eshop_domain::values::PaymentMethod;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{step, ProjectionError, RelayedEvent, Step};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TimelineEntry {
    pub status: OrderStatus,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub total_cents: i64,
    pub payment_method: PaymentMethod,
    pub card_last4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_brand: Option<String>,
    pub payment_id: Option<Uuid>,
    pub reason: Option<String>,
    pub timeline: Vec<TimelineEntry>,
    pub created_at: DateTime<Utc>,
    /// When the last event changed it (absent in records written before it was kept).
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    pub version: u64,
}

/// Which orders a list shows: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderFilter {
    pub customer_id: Option<Uuid>,
    pub status: Option<OrderStatus>,
    /// Placed at or after.
    pub from: Option<DateTime<Utc>>,
    /// Placed before.
    pub to: Option<DateTime<Utc>>,
}

/// The record after `event`, or `None` when the event was already applied.
pub fn apply(
    current: Option<&OrderRecord>,
    event: &RelayedEvent,
) -> Result<Option<OrderRecord>, ProjectionError> {
    if step(event, current.map_or(0, |row| row.version))? == Step::Seen {
        return Ok(None);
    }
    let decoded: OrderEvent = event.decode()?;
    let mut row = match (current, decoded) {
        (
            None,
            OrderEvent::OrderPlaced {
                customer_id,
                lines,
                total_cents,
                payment,
            },
        ) => OrderRecord {
            id: event
                .aggregate_id
                .parse()
                .map_err(|error| event.unreadable(error))?,
            customer_id,
            status: OrderStatus::Placed,
            lines,
            total_cents,
            payment_method: payment.method,
            card_last4: payment.card_last4,
            card_brand: payment.card_brand,
            payment_id: None,
            reason: None,
            timeline: Vec::new(),
            created_at: event.recorded_at,
            updated_at: None,
            version: 0,
        },
        (Some(current), decoded) => {
            let mut row = current.clone();
            match decoded {
                OrderEvent::OrderPlaced { .. } => {
                    return Err(event.unreadable("OrderPlaced on an existing order"))
                }
                OrderEvent::OrderStockReserved => row.status = OrderStatus::StockReserved,
                OrderEvent::OrderPaid { payment_id } => {
                    row.status = OrderStatus::Paid;
                    row.payment_id = Some(payment_id);
                }
                OrderEvent::OrderConfirmed => row.status = OrderStatus::Confirmed,
                OrderEvent::OrderCancelled { reason } => {
                    row.status = OrderStatus::Cancelled;
                    row.reason = Some(reason);
                }
                OrderEvent::OrderFailed { reason } => {
                    row.status = OrderStatus::Failed;
                    row.reason = Some(reason);
                }
                OrderEvent::OrderPaymentRetried { payment, .. } => {
                    row.status = OrderStatus::Placed;
                    row.reason = None;
                    row.payment_method = payment.method;
                    row.card_last4 = payment.card_last4;
                    row.card_brand = payment.card_brand;
                    row.payment_id = None;
                }
            }
            row
        }
        (None, _) => return Err(event.unreadable("the first event is not OrderPlaced")),
    };
    row.timeline.push(TimelineEntry {
        status: row.status,
        at: event.recorded_at,
    });
    row.updated_at = Some(event.recorded_at);
    row.version = event.sequence;
    Ok(Some(row))
}

impl crate::ReadModel for OrderRecord {
    const NAME: &'static str = "orders";
    const AGGREGATE_TYPE: &'static str = "order";

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
