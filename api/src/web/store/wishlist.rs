//! `GET /wishlist`: the products the visitor keeps an eye on, each with its remove button.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use uuid::Uuid;

use crate::web::form::Form;
use crate::web::page::{csrf_field, money, store_page, Html, PageError};
use crate::web::session::Visitor;
use crate::web::store::products::EmptyForm;
use crate::web::store::{chrome, products_by_id, remove_item, signed_in, Notice};
use crate::web::WebState;

#[derive(Deserialize)]
struct Wishlist {
    items: Vec<Uuid>,
}

pub async fn show(
    State(web): State<WebState>,
    visitor: Visitor,
    Query(notice): Query<Notice>,
) -> Result<Html, PageError> {
    let visitor = signed_in(visitor, "/wishlist")?;
    let wishlist: Wishlist = web.api.get(&visitor.caller, "/api/wishlist").await?;
    let products = products_by_id(&web, &visitor, wishlist.items.iter().copied()).await;
    let chrome = chrome(&web, &visitor, notice.flash()).await;
    let body = html! {
        h1 { "Your wishlist" }
        @if wishlist.items.is_empty() { p class="muted" { "Nothing here yet." } }
        ul class="wishes" {
            @for id in &wishlist.items {
                li class="wish" {
                    @match products.get(id) {
                        Some(product) => {
                            a href={ "/products/" (id) } { (product.title) }
                            " · " span class="price" { (money(product.price_cents)) }
                        }
                        None => span class="muted" { "(no longer sold)" }
                    }
                    " "
                    form class="remove inline" method="post" action={ "/wishlist/" (id) "/remove" } {
                        (csrf_field(&visitor))
                        button type="submit" class="secondary" { "Remove" }
                    }
                }
            }
        }
    };
    Ok(store_page(&visitor, &chrome, "Wishlist", body))
}

pub async fn remove(
    State(web): State<WebState>,
    visitor: Visitor,
    Path(product_id): Path<String>,
    Form(_): Form<EmptyForm>,
) -> Result<Response, PageError> {
    remove_item(&web, visitor, "wishlist", &product_id).await
}
