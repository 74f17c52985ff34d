//! `GET /account`: who the visitor is and the wallet's balance; `POST /account/deposit` puts
//! money in it.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use crate::web::client::Problem;
use crate::web::form::Form;
use crate::web::page::{
    csrf_field, money, parse_money, see_other, store_page, Flash, Html, PageError,
};
use crate::web::session::Visitor;
use crate::web::store::{chrome, signed_in, Notice};
use crate::web::WebState;

#[derive(Deserialize)]
struct Account {
    email: Option<String>,
    username: String,
    balance_cents: i64,
}

pub async fn show(
    State(web): State<WebState>,
    visitor: Visitor,
    Query(notice): Query<Notice>,
) -> Result<Html, PageError> {
    let visitor = signed_in(visitor, "/account")?;
    account_page(&web, &visitor, notice.flash(), None).await
}

async fn account_page(
    web: &WebState,
    visitor: &Visitor,
    flash: Option<Flash>,
    problem: Option<&Problem>,
) -> Result<Html, PageError> {
    let account: Account = web.api.get(&visitor.caller, "/api/users/me").await?;
    let chrome = chrome(web, visitor, flash.or_else(|| problem.map(Flash::error))).await;
    let body = html! {
        h1 { "Your account" }
        p { (account.username) @if let Some(email) = &account.email { " · " (email) } }
        p { "Wallet: " span id="balance" class="price" { (money(account.balance_cents)) } }
        form id="deposit" class="stacked" method="post" action="/account/deposit" {
            (csrf_field(visitor))
            label for="amount" { "Deposit" }
            input id="amount" name="amount" inputmode="decimal" placeholder="50.00" required;
            @if let Some(message) = problem.and_then(|p| p.field("amount")) {
                p class="field-error" { (message) }
            }
            button type="submit" { "Deposit" }
        }
        p { a href="/orders" { "Your orders" } " · " a href="/wishlist" { "Your wishlist" } }
    };
    Ok(store_page(visitor, &chrome, "Account", body).answering(problem))
}

#[derive(Deserialize)]
pub struct DepositForm {
    amount: String,
}

pub async fn deposit(
    State(web): State<WebState>,
    visitor: Visitor,
    Form(form): Form<DepositForm>,
) -> Result<Response, PageError> {
    let visitor = signed_in(visitor, "/account")?;
    let deposited = match parse_money(&form.amount) {
        Some(cents) => web
            .api
            .post::<_, serde_json::Value>(
                &visitor.caller,
                "/api/users/me/deposits",
                &json!({ "amount_cents": cents }),
            )
            .await
            .map_err(|mut problem| {
                // The API names the field it reads; the form calls it `amount`.
                for error in &mut problem.errors {
                    if error.field == "amount_cents" {
                        error.field = "amount".into();
                    }
                }
                problem
            }),
        None => Err(Problem::invalid_field(
            "amount",
            "must be an amount like 50.00",
        )),
    };
    match deposited {
        Ok(_) => Ok(see_other("/account?notice=deposited")),
        Err(problem) => Ok(account_page(&web, &visitor, None, Some(&problem))
            .await?
            .into_response()),
    }
}
