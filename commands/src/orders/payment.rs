//! How an order is paid: the buyer's choice checked and turned into a payment instrument, a
//! card or PayPal account replaced by the gateway's token.

use eshop_domain::order::PaymentInstrument;
use eshop_domain::values::{EmailAddress, PaymentMethod};

use super::card::{self, CardInput};
use crate::payment_gateway::{PaymentDetails, PaymentGateway};

/// What the buyer chose to pay with, as sent.
#[derive(Clone, Default)]
pub struct PaymentChoice {
    pub method: String,
    pub card: Option<CardInput>,
    pub paypal_email: Option<String>,
    pub bank_account: Option<String>,
}

/// Only the method: the rest is a card number or personal data.
impl std::fmt::Debug for PaymentChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentChoice")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// A field of the payment choice that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payment.{field} {message}")]
pub struct InvalidPayment {
    /// The field of the choice (`method`, `card`, `card.number`, `card.exp_month`, …,
    /// `paypal_email`, `bank_account`).
    pub field: &'static str,
    pub message: String,
}

impl InvalidPayment {
    pub(super) fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// The instrument the order carries. The card number goes no further than the gateway's
/// tokenizer: the order keeps its token and last four digits.
pub(super) fn instrument(
    gateway: &impl PaymentGateway,
    choice: &PaymentChoice,
) -> Result<PaymentInstrument, InvalidPayment> {
    instrument_on(gateway, choice, chrono::Utc::now().date_naive())
}

/// `instrument`, with a card's expiry checked against `today`.
pub(super) fn instrument_on(
    gateway: &impl PaymentGateway,
    choice: &PaymentChoice,
    today: chrono::NaiveDate,
) -> Result<PaymentInstrument, InvalidPayment> {
    let method = PaymentMethod::parse(&choice.method)
        .map_err(|invalid| InvalidPayment::new("method", invalid.0))?;
    let mut card_brand = None;
    let (token, card_last4) = match method {
        PaymentMethod::Balance => (None, None),
        PaymentMethod::Card => {
            let (number, field) = match choice.card.as_ref() {
                None => {
                    return Err(InvalidPayment::new("card", "is required to pay by card"));
                }
                Some(CardInput::Number(number)) => (number.clone(), "card"),
                Some(CardInput::Details(details)) => {
                    let (number, brand) = card::check(details, today)?;
                    card_brand = Some(brand.to_string());
                    (number, "card.number")
                }
            };
            let tokenized = gateway
                .tokenize(PaymentDetails::Card { number: &number })
                .map_err(|_| InvalidPayment::new(field, "is not a valid card number"))?;
            (Some(tokenized.token), tokenized.card_last4)
        }
        PaymentMethod::Paypal => {
            let email = choice.paypal_email.as_deref().ok_or_else(|| {
                InvalidPayment::new("paypal_email", "is required to pay with PayPal")
            })?;
            EmailAddress::parse(email)
                .map_err(|invalid| InvalidPayment::new("paypal_email", invalid.0))?;
            let tokenized = gateway
                .tokenize(PaymentDetails::Paypal { email })
                .map_err(|_| InvalidPayment::new("paypal_email", "cannot be used"))?;
            (Some(tokenized.token), None)
        }
        PaymentMethod::BankTransfer => {
            let account = choice.bank_account.as_deref().unwrap_or_default().trim();
            if account.is_empty() || account.len() > 64 {
                return Err(InvalidPayment::new(
                    "bank_account",
                    "is required, up to 64 characters",
                ));
            }
            (None, None)
        }
    };
    Ok(PaymentInstrument {
        method,
        token,
        card_last4,
        card_brand,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment_gateway::{
        Charge, ChargeOutcome, GatewayUnavailable, InvalidPaymentDetails, Tokenized,
    };

    /// Tokenizes any 16-digit number; charges nothing.
    struct Tokenizer;

    impl PaymentGateway for Tokenizer {
        fn tokenize(
            &self,
            details: PaymentDetails<'_>,
        ) -> Result<Tokenized, InvalidPaymentDetails> {
            match details {
                PaymentDetails::Card { number } if number.len() == 16 => Ok(Tokenized {
                    token: "tok_card".into(),
                    card_last4: Some(number[12..].to_string()),
                }),
                PaymentDetails::Card { .. } => Err(InvalidPaymentDetails),
                PaymentDetails::Paypal { .. } => Ok(Tokenized {
                    token: "tok_paypal".into(),
                    card_last4: None,
                }),
            }
        }

        async fn charge(&self, _: &Charge) -> Result<ChargeOutcome, GatewayUnavailable> {
            Err(GatewayUnavailable("not in this test".into()))
        }
    }

    fn choice(method: &str) -> PaymentChoice {
        PaymentChoice {
            method: method.into(),
            ..PaymentChoice::default()
        }
    }

    #[test]
    fn a_card_becomes_the_gateways_token_and_its_last_four_digits_only() {
        let number = "4242424242424242";
        let card = PaymentChoice {
            card: Some(CardInput::Number(number.into())),
            ..choice("card")
        };
        let instrument = instrument(&Tokenizer, &card).expect("valid");
        assert_eq!(instrument.method, PaymentMethod::Card);
        assert_eq!(instrument.token.as_deref(), Some("tok_card"));
        assert_eq!(instrument.card_last4.as_deref(), Some("4242"));
        assert!(!format!("{instrument:?} {card:?}").contains(number));
    }

    #[test]
    fn each_missing_or_unusable_detail_names_its_field() {
        let refused = |choice: PaymentChoice| instrument(&Tokenizer, &choice).map(|_| ());
        assert_eq!(refused(choice("cash")).map_err(|e| e.field), Err("method"));
        assert_eq!(refused(choice("card")).map_err(|e| e.field), Err("card"));
        let short_card = PaymentChoice {
            card: Some(CardInput::Number("4242".into())),
            ..choice("card")
        };
        assert_eq!(
            refused(short_card),
            Err(InvalidPayment::new("card", "is not a valid card number"))
        );
        let bad_email = PaymentChoice {
            paypal_email: Some("not an address".into()),
            ..choice("paypal")
        };
        assert_eq!(refused(bad_email).map_err(|e| e.field), Err("paypal_email"));
        assert_eq!(
            refused(choice("bank_transfer")).map_err(|e| e.field),
            Err("bank_account")
        );
        assert_eq!(refused(choice("balance")), Ok(()));
    }
}

#[cfg(test)]
mod whole_cards {
    use super::*;
    use crate::orders::card::CardDetails;
    use crate::payment_gateway::{
        Charge, ChargeOutcome, GatewayUnavailable, InvalidPaymentDetails, Tokenized,
    };

    struct Tokenizer;

    impl PaymentGateway for Tokenizer {
        fn tokenize(
            &self,
            details: PaymentDetails<'_>,
        ) -> Result<Tokenized, InvalidPaymentDetails> {
            match details {
                PaymentDetails::Card { number } => Ok(Tokenized {
                    token: "tok_card".into(),
                    card_last4: Some(number[number.len() - 4..].to_string()),
                }),
                PaymentDetails::Paypal { .. } => Err(InvalidPaymentDetails),
            }
        }

        async fn charge(&self, _: &Charge) -> Result<ChargeOutcome, GatewayUnavailable> {
            Err(GatewayUnavailable("not in this test".into()))
        }
    }

    #[test]
    fn a_whole_card_keeps_its_last_four_digits_and_brand_only() {
        let choice = PaymentChoice {
            method: "card".into(),
            card: Some(CardInput::Details(CardDetails {
                number: "5555 5555 5555 4444".into(),
                exp_month: 1,
                exp_year: 2027,
                cvc: "321".into(),
                holder: None,
            })),
            ..PaymentChoice::default()
        };
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 3).expect("date");
        let instrument = instrument_on(&Tokenizer, &choice, today).expect("valid");
        assert_eq!(instrument.card_last4.as_deref(), Some("4444"));
        assert_eq!(instrument.card_brand.as_deref(), Some("mastercard"));
        let shown = format!("{instrument:?} {choice:?}");
        assert!(!shown.contains("5555") && !shown.contains("321"), "{shown}");
        let late = chrono::NaiveDate::from_ymd_opt(2027, 2, 1).expect("date");
        assert_eq!(
            instrument_on(&Tokenizer, &choice, late).map_err(|e| e.field),
            Err("card.exp_year")
        );
    }
}
