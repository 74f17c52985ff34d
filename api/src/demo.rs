//! `eshop serve --demo`: a small catalog and two shoppers with money, so a first run shows a
//! working shop. Every command's id is derived from what it adds: a second start adds nothing.

use eshop_commands::{Actor, CommandContext, CommandError};
use eshop_domain::product::{Product, ProductError};
use eshop_domain::user::{User, UserCommand};
use eshop_domain::values::DepositAmount;

use crate::bootstrap::ensure_account;
use crate::error::ApiError;
use crate::routes::products::{add_command, AddRequest};
use crate::state::AppState;

/// The shoppers' password (printed at start: this is a demo).
pub const SHOPPER_PASSWORD: &str = "demo-shopper-2026";
pub const SHOPPERS: [(&str, &str); 2] =
    [("alice@example.com", "alice"), ("bob@example.com", "bob")];
const SHOPPER_BALANCE_CENTS: i64 = 100_000;

const BOOKS: [(&str, &str, &str, i64, i64, &str); 10] = [
    ("Dune", "Frank Herbert", "1965-08-01", 1899, 40, "fiction"),
    (
        "The Left Hand of Darkness",
        "Ursula K. Le Guin",
        "1969-03-01",
        1499,
        25,
        "fiction",
    ),
    (
        "Neuromancer",
        "William Gibson",
        "1984-07-01",
        1299,
        30,
        "fiction",
    ),
    (
        "The Name of the Rose",
        "Umberto Eco",
        "1980-01-01",
        1699,
        15,
        "fiction",
    ),
    (
        "Designing Data-Intensive Applications",
        "Martin Kleppmann",
        "2017-03-16",
        4599,
        20,
        "computing",
    ),
    (
        "Domain-Driven Design",
        "Eric Evans",
        "2003-08-20",
        5499,
        10,
        "computing",
    ),
    (
        "The Rust Programming Language",
        "Steve Klabnik",
        "2019-08-12",
        3999,
        35,
        "computing",
    ),
    (
        "A Brief History of Time",
        "Stephen Hawking",
        "1988-04-01",
        1599,
        20,
        "science",
    ),
    (
        "The Selfish Gene",
        "Richard Dawkins",
        "1976-01-01",
        1399,
        12,
        "science",
    ),
    ("Cosmos", "Carl Sagan", "1980-01-01", 1799, 3, "science"),
];

/// Adds what is missing of the demo; answers how many products it added.
pub async fn load(state: &AppState) -> Result<usize, ApiError> {
    let mut added = 0;
    for (title, author, published_date, price_cents, stock, category) in BOOKS {
        let command = add_command(&AddRequest {
            title: title.into(),
            author: author.into(),
            published_date: published_date.into(),
            description: format!("{title} by {author}: part of the demo catalog."),
            price_cents,
            stock,
            category: category.into(),
            category_id: None,
        })?;
        let context = CommandContext::repeatable(Actor::System, "demo", &["demo-product", title]);
        let id = context.new_aggregate_id().to_string();
        match state
            .bus
            .execute_with::<Product, _>(&id, command, &context, None, |_| ())
            .await
        {
            Ok(executed) if executed.appended > 0 => added += 1,
            Ok(_) | Err(CommandError::Rejected(ProductError::AlreadyExists)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    for (email, username) in SHOPPERS {
        let id = ensure_account(state, email, SHOPPER_PASSWORD, Some(username)).await?;
        let amount = DepositAmount::parse(SHOPPER_BALANCE_CENTS)
            .map_err(|invalid| ApiError::Internal(invalid.0.into()))?;
        let context = CommandContext::repeatable(Actor::System, "demo", &["demo-deposit", email]);
        state
            .bus
            .execute::<User>(&id, UserCommand::Deposit(amount), &context, None)
            .await?;
    }
    Ok(added)
}

/// What to print once the demo is loaded.
pub fn instructions(base_url: &str) -> String {
    let shoppers: Vec<String> = SHOPPERS
        .iter()
        .map(|(email, _)| format!("  {email} / {SHOPPER_PASSWORD}"))
        .collect();
    format!(
        "eshop demo: {} books and {} shoppers with {} each are ready.\n\
         Sign in as one of:\n{}\n\
         For example:\n\
         \x20 curl -s {base_url}/api/products\n\
         \x20 curl -s -X POST {base_url}/api/auth/login -H 'Content-Type: application/json' \\\n\
         \x20      -d '{{\"email\": \"{}\", \"password\": \"{SHOPPER_PASSWORD}\"}}'\n",
        BOOKS.len(),
        SHOPPERS.len(),
        format_args!(
            "{}.{:02}",
            SHOPPER_BALANCE_CENTS / 100,
            SHOPPER_BALANCE_CENTS % 100
        ),
        shoppers.join("\n"),
        SHOPPERS[0].0,
    )
}
