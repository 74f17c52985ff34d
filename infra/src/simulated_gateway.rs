//! A payment gateway simulator for card, PayPal and bank transfer, with documented test rules.
//!
//! Tokens stand in for what a client-side tokenizer returns; they never contain a card number.
//!
//! | instrument | outcome |
//! | --- | --- |
//! | card `4242 4242 4242 4242` | captured |
//! | card `4000 0000 0000 0002` | declined (`card_declined`) |
//! | any other card number that passes the Luhn check | captured |
//! | PayPal, an e-mail ending in `@decline.test` | declined (`paypal_declined`) |
//! | any other PayPal e-mail, any bank transfer | captured |

use std::time::Duration;

use eshop_commands::payment_gateway::{
    Charge, ChargeOutcome, GatewayUnavailable, InvalidPaymentDetails, PaymentDetails,
    PaymentGateway, Tokenized,
};

const DECLINING_CARD: &str = "4000000000000002";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a card number")]
pub struct InvalidCard;

/// A card's token and last four digits, or an error for a number that cannot be a card.
pub fn tokenize_card(number: &str) -> Result<(String, String), InvalidCard> {
    let digits: String = number
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if !(12..=19).contains(&digits.len())
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !luhn(&digits)
    {
        return Err(InvalidCard);
    }
    let last4 = digits[digits.len() - 4..].to_string();
    let verdict = if digits == DECLINING_CARD {
        "decline"
    } else {
        "approve"
    };
    Ok((format!("sim_card_{verdict}_{last4}"), last4))
}

/// The token for a PayPal account.
pub fn tokenize_paypal(email: &str) -> String {
    if email.trim().to_lowercase().ends_with("@decline.test") {
        "sim_paypal_decline".to_string()
    } else {
        "sim_paypal_approve".to_string()
    }
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(index, byte)| {
            let digit = u32::from(byte - b'0');
            if index % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[derive(Debug, Clone, Default)]
pub struct SimulatedGateway {
    latency: Duration,
}

impl SimulatedGateway {
    /// Every charge takes `latency`, like a round trip to a real gateway.
    pub fn with_latency(latency: Duration) -> Self {
        Self { latency }
    }
}

impl PaymentGateway for SimulatedGateway {
    #[tracing::instrument(level = "debug", skip_all)]
    fn tokenize(&self, details: PaymentDetails<'_>) -> Result<Tokenized, InvalidPaymentDetails> {
        Ok(match details {
            PaymentDetails::Card { number } => {
                let (token, last4) = tokenize_card(number).map_err(|_| InvalidPaymentDetails)?;
                Tokenized {
                    token,
                    card_last4: Some(last4),
                }
            }
            PaymentDetails::Paypal { email } => Tokenized {
                token: tokenize_paypal(email),
                card_last4: None,
            },
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(payment_id = %charge.payment_id, method = ?charge.method))]
    async fn charge(&self, charge: &Charge) -> Result<ChargeOutcome, GatewayUnavailable> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let token = charge.token.as_deref().unwrap_or_default();
        Ok(if token.starts_with("sim_card_decline") {
            ChargeOutcome::Declined {
                reason: "card_declined".into(),
            }
        } else if token == "sim_paypal_decline" {
            ChargeOutcome::Declined {
                reason: "paypal_declined".into(),
            }
        } else {
            // The payment id makes the reference stable: a repeated charge is the same charge.
            ChargeOutcome::Captured {
                reference: format!("sim_{}", charge.payment_id.simple()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_tokenize_to_their_verdict_and_last_four_only() {
        let (token, last4) = tokenize_card("4242 4242 4242 4242").expect("valid");
        assert_eq!(
            (token.as_str(), last4.as_str()),
            ("sim_card_approve_4242", "4242")
        );
        let (token, _) = tokenize_card("4000-0000-0000-0002").expect("valid");
        assert_eq!(token, "sim_card_decline_0002");
        assert!(!token.contains("4000000000000002"));
        assert_eq!(tokenize_card("4242 4242 4242 4241"), Err(InvalidCard));
        assert_eq!(tokenize_card("abcd"), Err(InvalidCard));
    }
}
