//! `GET /cart`: the lines with today's titles and prices, remove a line, the total, and the way
//! to checkout.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{html, Markup};
use uuid::Uuid;

use crate::web::client::Problem;
use crate::web::form::Form;
use crate::web::page::{csrf_field, money, store_page, Html, PageError};
use crate::web::session::Visitor;
use crate::web::store::products::{CartLines, EmptyForm};
use crate::web::store::{chrome, products_by_id, remove_item, signed_in, Notice};
use crate::web::WebState;

/// A cart line as the visitor reads it: the product's current title and price (none when the
/// product is no longer sold).
pub struct PricedLine {
    pub product_id: Uuid,
    pub title: Option<String>,
    pub quantity: i64,
    pub unit_price_cents: Option<i64>,
}

/// The visitor's cart, priced at today's prices.
pub async fn priced_cart(web: &WebState, visitor: &Visitor) -> Result<Vec<PricedLine>, Problem> {
    let cart: CartLines = web.api.get(&visitor.caller, "/api/cart").await?;
    let products =
        products_by_id(web, visitor, cart.items.iter().map(|line| line.product_id)).await;
    Ok(cart
        .items
        .into_iter()
        .map(|line| {
            let product = products.get(&line.product_id);
            PricedLine {
                product_id: line.product_id,
                title: product.map(|product| product.title.clone()),
                quantity: line.quantity,
                unit_price_cents: product.map(|product| product.price_cents),
            }
        })
        .collect())
}

pub fn total_cents(lines: &[PricedLine]) -> i64 {
    lines
        .iter()
        .filter_map(|line| line.unit_price_cents.map(|price| price * line.quantity))
        .sum()
}

/// The lines as a table `id`; with `visitor`, each line has its remove button.
pub fn lines_table(id: &str, lines: &[PricedLine], removable: Option<&Visitor>) -> Markup {
    html! {
        table id=(id) {
            thead { tr { th { "Product" } th { "Quantity" } th { "Price" } th { "Subtotal" } @if removable.is_some() { th {} } } }
            tbody {
                @for line in lines {
                    tr class="cart-line" {
                        td {
                            a href={ "/products/" (line.product_id) } {
                                (line.title.as_deref().unwrap_or("(no longer sold)"))
                            }
                        }
                        td { (line.quantity) }
                        td { @if let Some(price) = line.unit_price_cents { (money(price)) } }
                        td { @if let Some(price) = line.unit_price_cents { (money(price * line.quantity)) } }
                        @if let Some(visitor) = removable {
                            td {
                                form class="remove inline" method="post" action={ "/cart/" (line.product_id) "/remove" } {
                                    (csrf_field(visitor))
                                    button type="submit" class="secondary" { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
        p { "Total: " span class="cart-total price" { (money(total_cents(lines))) } }
    }
}

pub async fn show(
    State(web): State<WebState>,
    visitor: Visitor,
    Query(notice): Query<Notice>,
) -> Result<Html, PageError> {
    let visitor = signed_in(visitor, "/cart")?;
    let lines = priced_cart(&web, &visitor).await?;
    let chrome = chrome(&web, &visitor, notice.flash()).await;
    let body = html! {
        h1 { "Your cart" }
        @if lines.is_empty() {
            p class="muted" { "Your cart is empty. " a href="/products" { "Browse the catalog" } }
        } @else {
            (lines_table("cart-lines", &lines, Some(&visitor)))
            p { a id="checkout" class="button" href="/checkout" { "Checkout" } }
        }
    };
    Ok(store_page(&visitor, &chrome, "Cart", body))
}

pub async fn remove(
    State(web): State<WebState>,
    visitor: Visitor,
    Path(product_id): Path<String>,
    Form(_): Form<EmptyForm>,
) -> Result<Response, PageError> {
    remove_item(&web, visitor, "cart", &product_id).await
}
