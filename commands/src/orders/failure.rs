//! Why an order failed: the reasons the process records on `OrderFailed`, typed.
//!
//! The event keeps the reason as a string (its JSON shape is a public contract, and old events
//! must still load); everything above the store reads it back as a `FailureReason`.

/// Why the order process failed an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// A product had too little stock to reserve.
    OutOfStock,
    /// A product is no longer sold.
    ProductUnavailable,
    /// The wallet held less than the order's total.
    InsufficientBalance,
    /// The buyer's account is deactivated (or gone), so the wallet cannot be debited.
    AccountDeactivated,
    /// The payment gateway declined the charge.
    PaymentDeclined,
    /// The order waited for stock or payment longer than the sweep allows.
    TimedOut,
}

impl FailureReason {
    pub const ALL: [Self; 6] = [
        Self::OutOfStock,
        Self::ProductUnavailable,
        Self::InsufficientBalance,
        Self::AccountDeactivated,
        Self::PaymentDeclined,
        Self::TimedOut,
    ];

    /// The reason as stored on the event.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "out_of_stock",
            Self::ProductUnavailable => "product_unavailable",
            Self::InsufficientBalance => "insufficient_balance",
            Self::AccountDeactivated => "account_deactivated",
            Self::PaymentDeclined => "payment_declined",
            Self::TimedOut => "timed_out",
        }
    }

    /// The reason of a stored event; `None` for a reason this process does not give (an older
    /// or foreign one).
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.as_str() == stored)
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stored strings, for readers of the events (and tests) that compare them.
pub const OUT_OF_STOCK: &str = FailureReason::OutOfStock.as_str();
pub const PRODUCT_UNAVAILABLE: &str = FailureReason::ProductUnavailable.as_str();
pub const INSUFFICIENT_BALANCE: &str = FailureReason::InsufficientBalance.as_str();
pub const ACCOUNT_DEACTIVATED: &str = FailureReason::AccountDeactivated.as_str();
pub const PAYMENT_DECLINED: &str = FailureReason::PaymentDeclined.as_str();
pub const TIMED_OUT: &str = FailureReason::TimedOut.as_str();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_as_itself() {
        for reason in FailureReason::ALL {
            assert_eq!(FailureReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(FailureReason::parse("cancelled by the customer"), None);
    }
}
