//! The payment gateway port: whoever takes money that is not in the wallet.

use std::future::Future;

use eshop_domain::values::PaymentMethod;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The payment's id: a gateway must treat a repeat of it as the same charge.
    pub payment_id: Uuid,
    pub method: PaymentMethod,
    pub amount_cents: i64,
    /// The gateway's token for the card or account (never a card number).
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Captured { reference: String },
    Declined { reason: String },
}

/// The gateway did not answer: try again later.
#[derive(Debug, thiserror::Error)]
#[error("the payment gateway is unavailable: {0}")]
pub struct GatewayUnavailable(pub String);

pub trait PaymentGateway: Send + Sync + 'static {
    fn charge(
        &self,
        charge: &Charge,
    ) -> impl Future<Output = Result<ChargeOutcome, GatewayUnavailable>> + Send;
}
