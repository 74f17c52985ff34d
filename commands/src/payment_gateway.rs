//! The payment gateway port: whoever takes money that is not in the wallet, and turns what a
//! buyer pays with into the gateway's token (a card number goes no further than `tokenize`).

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

/// What a buyer pays with, as entered: the gateway's tokenizer sees it, nothing else does.
#[derive(Clone, Copy)]
pub enum PaymentDetails<'a> {
    Card { number: &'a str },
    Paypal { email: &'a str },
}

/// Not shown: a card number must not reach a log through `{:?}`.
impl std::fmt::Debug for PaymentDetails<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Card { .. } => f.write_str("Card { .. }"),
            Self::Paypal { .. } => f.write_str("Paypal { .. }"),
        }
    }
}

/// The gateway's stand-in for a card or account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    pub token: String,
    /// A card's last four digits (to show the buyer which card); `None` for an account.
    pub card_last4: Option<String>,
}

/// The gateway cannot take these details (a number that cannot be a card).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the gateway cannot take these payment details")]
pub struct InvalidPaymentDetails;

pub trait PaymentGateway: Send + Sync + 'static {
    /// The token the gateway charges later in place of `details`.
    fn tokenize(&self, details: PaymentDetails<'_>) -> Result<Tokenized, InvalidPaymentDetails>;

    fn charge(
        &self,
        charge: &Charge,
    ) -> impl Future<Output = Result<ChargeOutcome, GatewayUnavailable>> + Send;
}
