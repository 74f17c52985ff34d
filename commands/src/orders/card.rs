//! A card as a payment form asks for it: number, expiry, CVC and holder. Checked here (Luhn,
//! expiry not in the past, CVC of 3–4 digits), then only the number goes to the gateway's
//! tokenizer; what an order keeps is the token, the last four digits and the brand.

use chrono::Datelike;

use super::payment::InvalidPayment;

/// The card as sent. Not `Debug`-printed: every field but the holder is secret.
#[derive(Clone, Default)]
pub struct CardDetails {
    pub number: String,
    pub exp_month: u32,
    pub exp_year: u32,
    pub cvc: String,
    pub holder: Option<String>,
}

impl std::fmt::Debug for CardDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardDetails { .. }")
    }
}

/// A card as clients send it: the bare number (older clients) or the whole card.
#[derive(Clone)]
pub enum CardInput {
    Number(String),
    Details(CardDetails),
}

impl std::fmt::Debug for CardInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardInput { .. }")
    }
}

/// The digits of a number as typed (spaces and dashes dropped).
pub(super) fn digits(number: &str) -> String {
    number
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect()
}

pub(super) fn luhn(digits: &str) -> bool {
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
    sum % 10 == 0
}

/// The brand a number's prefix names (`unknown` for others).
pub fn brand(digits: &str) -> &'static str {
    let prefix = |n: usize| digits.get(..n).and_then(|p| p.parse::<u32>().ok());
    match (prefix(1), prefix(2), prefix(4)) {
        (Some(4), _, _) => "visa",
        (_, Some(34 | 37), _) => "amex",
        (_, Some(51..=55), _) | (_, _, Some(2221..=2720)) => "mastercard",
        (_, Some(65), _) | (_, _, Some(6011)) => "discover",
        (_, _, Some(3528..=3589)) => "jcb",
        (_, Some(36 | 38), _) | (_, _, Some(3000..=3059)) => "diners",
        _ => "unknown",
    }
}

/// Checks the card as of `today` (UTC); the number's digits and brand when it can be used.
pub(super) fn check(
    card: &CardDetails,
    today: chrono::NaiveDate,
) -> Result<(String, &'static str), InvalidPayment> {
    let number = digits(&card.number);
    if !(12..=19).contains(&number.len())
        || !number.bytes().all(|b| b.is_ascii_digit())
        || !luhn(&number)
    {
        return Err(InvalidPayment::new(
            "card.number",
            "is not a valid card number",
        ));
    }
    if !(1..=12).contains(&card.exp_month) {
        return Err(InvalidPayment::new("card.exp_month", "must be 1 to 12"));
    }
    // Two digits are read as 20xx, as printed on cards.
    let year = if card.exp_year < 100 {
        card.exp_year + 2000
    } else {
        card.exp_year
    };
    let now = (today.year(), today.month());
    if i64::from(year) < i64::from(now.0)
        || (i64::from(year) == i64::from(now.0) && card.exp_month < now.1)
    {
        return Err(InvalidPayment::new("card.exp_year", "the card has expired"));
    }
    if i64::from(year) > i64::from(now.0) + 50 {
        return Err(InvalidPayment::new(
            "card.exp_year",
            "is too far in the future",
        ));
    }
    if !(3..=4).contains(&card.cvc.len()) || !card.cvc.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidPayment::new("card.cvc", "must be 3 or 4 digits"));
    }
    if card
        .holder
        .as_deref()
        .is_some_and(|holder| holder.chars().count() > 100)
    {
        return Err(InvalidPayment::new(
            "card.holder",
            "must be at most 100 characters",
        ));
    }
    let brand = brand(&number);
    Ok((number, brand))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 12, 3).expect("date")
    }

    fn card(number: &str, month: u32, year: u32, cvc: &str) -> CardDetails {
        CardDetails {
            number: number.into(),
            exp_month: month,
            exp_year: year,
            cvc: cvc.into(),
            holder: Some("Ann Lee".into()),
        }
    }

    #[test]
    fn a_valid_card_gives_its_digits_and_brand() {
        let checked = check(&card("4242 4242 4242 4242", 12, 2026, "123"), today());
        assert_eq!(checked, Ok(("4242424242424242".to_string(), "visa")));
        let amex = check(&card("3782-822463-10005", 1, 30, "1234"), today());
        assert_eq!(amex.map(|(_, brand)| brand), Ok("amex"));
        assert_eq!(brand("5555555555554444"), "mastercard");
        assert_eq!(brand("2223003122003222"), "mastercard");
        assert_eq!(brand("6011111111111117"), "discover");
    }

    #[test]
    fn each_unusable_part_names_its_field() {
        let field = |card: CardDetails| check(&card, today()).map_err(|e| e.field);
        assert_eq!(
            field(card("4242 4242 4242 4241", 12, 2027, "123")),
            Err("card.number")
        );
        assert_eq!(field(card("4242", 12, 2027, "123")), Err("card.number"));
        assert_eq!(
            field(card("4242424242424242", 13, 2027, "123")),
            Err("card.exp_month")
        );
        assert_eq!(
            field(card("4242424242424242", 11, 2026, "123")),
            Err("card.exp_year"),
            "last month"
        );
        assert_eq!(
            field(card("4242424242424242", 12, 2025, "123")),
            Err("card.exp_year")
        );
        for cvc in ["12", "12345", "12a"] {
            assert_eq!(
                field(card("4242424242424242", 12, 2027, cvc)),
                Err("card.cvc")
            );
        }
    }

    #[test]
    fn no_part_of_a_card_is_shown_by_debug() {
        let details = card("4242424242424242", 12, 2027, "987");
        let shown = format!("{details:?} {:?}", CardInput::Details(details.clone()));
        assert!(!shown.contains("4242") && !shown.contains("987") && !shown.contains("Ann"));
    }
}
