//! `GET /checkout`, `POST /checkout`: the cart becomes an order, paid from the wallet or by card
//! (through the payment gateway). The form carries an idempotency key of its own, so a form
//! sent twice places one order; then the order's page follows it.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::web::client::Problem;
use crate::web::form::Form;
use crate::web::page::{csrf_field, money, see_other, store_page, Flash, Html, PageError};
use crate::web::session::Visitor;
use crate::web::store::cart::{lines_table, priced_cart, total_cents};
use crate::web::store::{chrome, signed_in};
use crate::web::WebState;

#[derive(Deserialize)]
struct Account {
    balance_cents: i64,
}

pub async fn page(State(web): State<WebState>, visitor: Visitor) -> Result<Html, PageError> {
    let visitor = signed_in(visitor, "/checkout")?;
    checkout_page(&web, &visitor, None).await
}

/// The form, with a fresh idempotency key, and the problem of the last attempt if any.
async fn checkout_page(
    web: &WebState,
    visitor: &Visitor,
    problem: Option<&Problem>,
) -> Result<Html, PageError> {
    let lines = priced_cart(web, visitor).await?;
    let account: Account = web.api.get(&visitor.caller, "/api/users/me").await?;
    let chrome = chrome(web, visitor, problem.map(Flash::error)).await;
    let field_error = |name: &str| {
        html! { @if let Some(message) = problem.and_then(|p| p.field(name)) { p class="field-error" { (message) } } }
    };
    let body = html! {
        h1 { "Checkout" }
        @if lines.is_empty() {
            p class="muted" { "Your cart is empty. " a href="/products" { "Browse the catalog" } }
        } @else {
            (lines_table("checkout-lines", &lines, None))
            form id="checkout" class="stacked" method="post" action="/checkout" {
                (csrf_field(visitor))
                input type="hidden" name="key" value=(Uuid::new_v4());
                fieldset {
                    legend { "Pay with" }
                    label {
                        input type="radio" name="payment" value="wallet" checked;
                        " My wallet (balance " span class="balance" { (money(account.balance_cents)) } ")"
                    }
                    label { input type="radio" name="payment" value="card"; " A card" }
                }
                fieldset class="card-fields" {
                    legend { "Card" }
                    label for="card_number" { "Card number" }
                    input id="card_number" name="card_number" inputmode="numeric" autocomplete="cc-number";
                    (field_error("payment.card"))
                    label for="expiry" { "Expiry (MM/YY)" }
                    input id="expiry" name="expiry" placeholder="MM/YY" autocomplete="cc-exp";
                    (field_error("expiry"))
                    label for="cvc" { "CVC" }
                    input id="cvc" name="cvc" inputmode="numeric" autocomplete="cc-csc" size="4";
                }
                button type="submit" { "Place order · " (money(total_cents(&lines))) }
            }
        }
    };
    Ok(store_page(visitor, &chrome, "Checkout", body).answering(problem))
}

#[derive(Deserialize)]
pub struct CheckoutForm {
    key: Uuid,
    payment: String,
    #[serde(default)]
    card_number: String,
    #[serde(default)]
    expiry: String,
    #[serde(default)]
    cvc: String,
}

/// `MM/YY` (or `MM/YYYY`) as month and four-digit year.
fn expiry(text: &str) -> Option<(u32, u32)> {
    let (month, year) = text.trim().split_once('/')?;
    let month: u32 = month.trim().parse().ok().filter(|m| (1..=12).contains(m))?;
    let year = year.trim();
    let year: u32 = match year.len() {
        2 => 2000 + year.parse::<u32>().ok()?,
        4 => year.parse().ok()?,
        _ => return None,
    };
    Some((month, year))
}

/// The API's `payment` for the form's choice.
fn payment(form: &CheckoutForm) -> Result<Value, Problem> {
    match form.payment.as_str() {
        "wallet" => Ok(json!({ "method": "balance" })),
        "card" => {
            let (exp_month, exp_year) = expiry(&form.expiry)
                .ok_or_else(|| Problem::invalid_field("expiry", "must be a month like 08/29"))?;
            Ok(json!({
                "method": "card",
                "card": {
                    "number": form.card_number,
                    "exp_month": exp_month,
                    "exp_year": exp_year,
                    "cvc": form.cvc,
                },
            }))
        }
        _ => Err(Problem::invalid_field(
            "payment",
            "choose the wallet or a card",
        )),
    }
}

/// The order a checkout placed: its view (finished) or where to follow it (still going).
#[derive(Deserialize)]
struct Placed {
    #[serde(alias = "order_id")]
    id: Uuid,
}

pub async fn place(
    State(web): State<WebState>,
    visitor: Visitor,
    Form(form): Form<CheckoutForm>,
) -> Result<Response, PageError> {
    let visitor = signed_in(visitor, "/checkout")?;
    let placed = match payment(&form) {
        Ok(payment) => {
            let body = json!({ "payment": payment });
            let key = form.key.to_string();
            web.api
                .post_once::<_, Placed>(&visitor.caller, "/api/cart/checkout", &body, &key)
                .await
        }
        Err(problem) => Err(problem),
    };
    match placed {
        Ok(order) => Ok(see_other(&format!("/orders/{}", order.id))),
        Err(problem) => Ok(checkout_page(&web, &visitor, Some(&problem))
            .await?
            .into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_reads_as_month_and_year() {
        assert_eq!(expiry("08/29"), Some((8, 2029)));
        assert_eq!(expiry(" 12 / 2031 "), Some((12, 2031)));
        for bad in ["", "13/29", "00/29", "8-29", "08/2", "ab/cd"] {
            assert_eq!(expiry(bad), None, "{bad:?}");
        }
    }
}
