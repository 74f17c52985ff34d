//! Validated value types. Parsing is the only way to build one, so commands carry values the
//! aggregates can trust; the error says, in words a client can act on, what was wrong.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

fn invalid(message: impl Into<String>) -> InvalidValue {
    InvalidValue(message.into())
}

fn has_control_chars(value: &str) -> bool {
    value.chars().any(char::is_control)
}

/// A trimmed text of bounded length with no control characters.
pub(crate) fn bounded_text(value: &str, min: usize, max: usize) -> Result<String, InvalidValue> {
    let trimmed = value.trim();
    let length = trimmed.chars().count();
    if length < min {
        return Err(if min == 1 {
            invalid("must not be empty")
        } else {
            invalid(format!("must be at least {min} characters"))
        });
    }
    if length > max {
        return Err(invalid(format!("must be at most {max} characters")));
    }
    if has_control_chars(trimmed) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(trimmed.to_string())
}

/// An e-mail address, normalised (trimmed, lower-cased) so that equal addresses compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let normalised = raw.trim().to_lowercase();
        if normalised.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if normalised.len() > 254 {
            return Err(invalid("must be at most 254 characters"));
        }
        let Some((local, domain)) = normalised.split_once('@') else {
            return Err(invalid("must be an e-mail address like name@example.com"));
        };
        let well_formed = !local.is_empty()
            && local.len() <= 64
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !normalised
                .chars()
                .any(|c| c.is_whitespace() || c.is_control());
        if !well_formed {
            return Err(invalid("must be an e-mail address like name@example.com"));
        }
        Ok(Self(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A public handle: 3–32 of `a-z A-Z 0-9 _ . -`. Uniqueness ignores case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let trimmed = raw.trim();
        let length = trimmed.chars().count();
        if !(3..=32).contains(&length) {
            return Err(invalid("must be 3 to 32 characters"));
        }
        if !trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(invalid(
                "may only contain letters, digits, '_', '.' and '-'",
            ));
        }
        Ok(Self(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form compared for uniqueness.
    pub fn normalised(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A first or last name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        bounded_text(raw, 1, 100).map(Self)
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A role beyond the customer every user is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Auditor,
}

impl Role {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        match raw {
            "admin" => Ok(Self::Admin),
            "auditor" => Ok(Self::Auditor),
            _ => Err(invalid("must be one of: admin, auditor")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an order is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// From the buyer's wallet.
    Balance,
    Card,
    Paypal,
    BankTransfer,
}

impl PaymentMethod {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        match raw {
            "balance" => Ok(Self::Balance),
            "card" => Ok(Self::Card),
            "paypal" => Ok(Self::Paypal),
            "bank_transfer" => Ok(Self::BankTransfer),
            _ => Err(invalid(
                "must be one of: balance, card, paypal, bank_transfer",
            )),
        }
    }
}

/// A single deposit is capped so that no sum of realistic deposits overflows an `i64` of cents.
pub const MAX_DEPOSIT_CENTS: i64 = 100_000_000;
pub const MAX_PRICE_CENTS: i64 = 100_000_000;
pub const MAX_STOCK: i64 = 1_000_000_000;

/// A positive amount of money in minor units (cents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepositAmount(i64);

impl DepositAmount {
    pub fn parse(cents: i64) -> Result<Self, InvalidValue> {
        if cents <= 0 {
            return Err(invalid("must be greater than 0"));
        }
        if cents > MAX_DEPOSIT_CENTS {
            return Err(invalid(format!(
                "must be at most {MAX_DEPOSIT_CENTS} cents per deposit"
            )));
        }
        Ok(Self(cents))
    }

    pub fn cents(self) -> i64 {
        self.0
    }
}

/// A price in cents: zero (free) up to [`MAX_PRICE_CENTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price(i64);

impl Price {
    pub fn parse(cents: i64) -> Result<Self, InvalidValue> {
        if !(0..=MAX_PRICE_CENTS).contains(&cents) {
            return Err(invalid(format!("must be 0 to {MAX_PRICE_CENTS} cents")));
        }
        Ok(Self(cents))
    }

    pub fn cents(self) -> i64 {
        self.0
    }
}

/// A count of units: stock on hand or a quantity to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(i64);

impl Quantity {
    pub fn stock(units: i64) -> Result<Self, InvalidValue> {
        if !(0..=MAX_STOCK).contains(&units) {
            return Err(invalid(format!("must be 0 to {MAX_STOCK}")));
        }
        Ok(Self(units))
    }

    pub fn positive(units: i64) -> Result<Self, InvalidValue> {
        if !(1..=MAX_STOCK).contains(&units) {
            return Err(invalid(format!("must be 1 to {MAX_STOCK}")));
        }
        Ok(Self(units))
    }

    pub fn units(self) -> i64 {
        self.0
    }
}

/// Product texts: title, author, category, description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(String);

impl Text {
    pub fn title(raw: &str) -> Result<Self, InvalidValue> {
        bounded_text(raw, 1, 300).map(Self)
    }

    pub fn author(raw: &str) -> Result<Self, InvalidValue> {
        bounded_text(raw, 1, 200).map(Self)
    }

    pub fn category(raw: &str) -> Result<Self, InvalidValue> {
        bounded_text(raw, 1, 100).map(Self)
    }

    /// Descriptions keep their line breaks; only other control characters are refused.
    pub fn description(raw: &str) -> Result<Self, InvalidValue> {
        let trimmed = raw.trim();
        if trimmed.chars().count() > 10_000 {
            return Err(invalid("must be at most 10000 characters"));
        }
        if trimmed
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(invalid("must not contain control characters"));
        }
        Ok(Self(trimmed.to_string()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_normalised() {
        let email = EmailAddress::parse("  Alice@Example.COM ").expect("valid");
        assert_eq!(email.as_str(), "alice@example.com");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for raw in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a@b@c.com",
            "al ice@example.com",
            "alice@.example.com",
            "alice@example..com",
        ] {
            assert!(EmailAddress::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn usernames_are_bounded_and_compared_without_case() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("robert'); drop table").is_err());
        let name = Username::parse("Bob_99").expect("valid");
        assert_eq!(name.normalised(), "bob_99");
    }

    #[test]
    fn amounts_must_be_positive_and_bounded() {
        assert!(DepositAmount::parse(0).is_err());
        assert!(DepositAmount::parse(-5).is_err());
        assert!(DepositAmount::parse(MAX_DEPOSIT_CENTS + 1).is_err());
        assert_eq!(DepositAmount::parse(250).expect("valid").cents(), 250);
    }

    #[test]
    fn texts_refuse_control_characters_but_descriptions_keep_newlines() {
        assert!(Text::title("bad\u{0}title").is_err());
        assert!(Text::title("   ").is_err());
        assert!(Text::description("line one\nline two").is_ok());
    }
}
