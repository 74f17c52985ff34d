//! The storefront: what shoppers and visitors see. One module per group of pages; what they
//! share (sign-in gate, header, notices, the anonymous pages' cache, product look-ups) is here.

pub mod account;
pub mod calendar;
pub mod cart;
pub mod checkout;
pub mod home;
pub mod movies;
pub mod orders;
pub mod products;
pub mod sign_in;
pub mod wishlist;

use std::collections::HashMap;
use std::future::Future;

use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use crate::web::page::{csrf_field, html_response, see_other, Chrome, Flash, Html, PageError};
use crate::web::session::Visitor;
use crate::web::WebState;
use products::ProductCard;

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/", get(home::home))
        .route("/signin", get(sign_in::sign_in_page).post(sign_in::sign_in))
        .route(
            "/register",
            get(sign_in::register_page).post(sign_in::register),
        )
        .route("/signout", post(sign_in::sign_out))
        .route("/products", get(products::list))
        .route("/products/{id}", get(products::show))
        .route("/products/{id}/cart", post(products::add_to_cart))
        .route("/products/{id}/wishlist", post(products::add_to_wishlist))
        .route("/products/{id}/reviews", post(products::review))
        .route("/cart", get(cart::show))
        .route("/cart/{product_id}/remove", post(cart::remove))
        .route("/checkout", get(checkout::page).post(checkout::place))
        .route("/orders", get(orders::list))
        .route("/orders/{id}", get(orders::show))
        .route("/orders/{id}/events", get(orders::events))
        .route("/wishlist", get(wishlist::show))
        .route("/wishlist/{product_id}/remove", post(wishlist::remove))
        .route("/account", get(account::show))
        .route("/account/deposit", post(account::deposit))
        .route("/movies", get(movies::list))
        .route("/movies/{id}", get(movies::show))
        .route("/calendar", get(calendar::list))
}

/// The visitor when signed in; otherwise sign in first and come back to `back` (a page).
pub fn signed_in(visitor: Visitor, back: &str) -> Result<Visitor, PageError> {
    if visitor.is_signed_in() {
        Ok(visitor)
    } else {
        Err(PageError::SignIn(back.to_string()))
    }
}

/// An id from the path (anything else is no page of ours).
pub fn parse_id(raw: &str) -> Result<Uuid, PageError> {
    raw.parse().map_err(|_| PageError::NotFound)
}

/// Items in the signed-in visitor's cart, for the header (none when anonymous or unknown).
/// The form behind a cart or wishlist line's "Remove": `DELETE /api/{list}/items/{product_id}`,
/// then back to `/{list}` with a notice (`list` is `cart` or `wishlist`).
pub async fn remove_item(
    web: &WebState,
    visitor: Visitor,
    list: &str,
    product_id: &str,
) -> Result<Response, PageError> {
    let visitor = signed_in(visitor, &format!("/{list}"))?;
    let product_id = parse_id(product_id)?;
    let path = format!("/api/{list}/items/{product_id}");
    web.api
        .send::<(), serde_json::Value>(&visitor.caller, axum::http::Method::DELETE, &path, None)
        .await?;
    Ok(see_other(&format!("/{list}?notice=removed")))
}

pub async fn cart_count(web: &WebState, visitor: &Visitor) -> Option<u64> {
    if !visitor.is_signed_in() {
        return None;
    }
    let cart: serde_json::Value = web.api.get(&visitor.caller, "/api/cart").await.ok()?;
    let lines = cart.get("items")?.as_array()?;
    Some(
        lines
            .iter()
            .filter_map(|line| line.get("quantity").and_then(serde_json::Value::as_u64))
            .sum(),
    )
}

/// The header's extras for this visitor, with `flash` to show.
pub async fn chrome(web: &WebState, visitor: &Visitor, flash: Option<Flash>) -> Chrome {
    Chrome {
        cart_items: cart_count(web, visitor).await,
        flash,
    }
}

/// `?notice=`: what a form's redirect says happened. Only known codes show (a link cannot put
/// words of its own on the page).
#[derive(Deserialize, Default)]
pub struct Notice {
    notice: Option<String>,
}

impl Notice {
    pub fn flash(&self) -> Option<Flash> {
        let text = match self.notice.as_deref()? {
            "added" => "Added to your cart.",
            "removed" => "Removed.",
            "wished" => "Added to your wishlist.",
            "reviewed" => "Thank you for your review.",
            "deposited" => "The money is in your wallet.",
            _ => return None,
        };
        Some(Flash::Notice(text.into()))
    }
}

/// A page for everyone: anonymous visitors get it from the page cache (rendered once per TTL or
/// product change); signed-in visitors always get it fresh (their header is their own).
pub async fn cached<F, Fut>(
    web: &WebState,
    visitor: &Visitor,
    uri: &Uri,
    render: F,
) -> Result<Response, PageError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Html, PageError>>,
{
    if visitor.is_signed_in() {
        return render().await.map(IntoResponse::into_response);
    }
    let key = uri.to_string();
    if let Some(page) = web.pages.get(&key) {
        return Ok(from_cache(html_response(StatusCode::OK, page), "hit"));
    }
    let generation = web.pages.generation();
    let page = render().await?;
    let status = page.status();
    let body = bytes::Bytes::from(page.into_string());
    if status == StatusCode::OK {
        web.pages.put(key, generation, body.clone());
    }
    Ok(from_cache(html_response(status, body), "miss"))
}

/// Says whether an anonymous page came from the page cache (for benches and operators).
fn from_cache(mut response: Response, outcome: &'static str) -> Response {
    response
        .headers_mut()
        .insert(PAGE_CACHE_HEADER, HeaderValue::from_static(outcome));
    response
}

/// `hit` or `miss` on the pages kept for anonymous visitors.
pub const PAGE_CACHE_HEADER: &str = "x-page-cache";

/// A form that acts for the visitor: posted with the CSRF token when signed in; for an
/// anonymous visitor, the same form leads to sign in and back to `back` (a page kept in the
/// cache carries nobody's token).
pub fn action_form(
    visitor: &Visitor,
    id: &str,
    action: &str,
    back: &str,
    fields: Markup,
) -> Markup {
    html! {
        @if visitor.is_signed_in() {
            form id=(id) method="post" action=(action) {
                (csrf_field(visitor))
                (fields)
            }
        } @else {
            form id=(id) method="get" action="/signin" {
                input type="hidden" name="next" value=(back);
                (fields)
            }
        }
    }
}

/// The products with these ids, as the catalog shows them now (one in-process read each, from
/// the API's cache); a product no longer sold is absent.
pub async fn products_by_id(
    web: &WebState,
    visitor: &Visitor,
    ids: impl IntoIterator<Item = Uuid>,
) -> HashMap<Uuid, ProductCard> {
    let reads = ids.into_iter().map(|id| async move {
        web.api
            .get::<ProductCard>(&visitor.caller, &format!("/api/products/{id}"))
            .await
            .ok()
    });
    futures::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .map(|product| (product.id, product))
        .collect()
}

/// An API list's path: the non-empty `pairs`, the page's `page` as the API's `cursor`.
pub fn api_list_path(path: &str, pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| {
            let name = if *name == "page" { "cursor" } else { *name };
            (name, value.trim())
        })
        .collect();
    let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
    format!("{path}?{query}")
}

/// The link to the next page of a list: this page's query with `page` set to the cursor.
pub fn next_page_link(path: &str, query: &[(&str, &str)], cursor: Option<&str>) -> Markup {
    let Some(cursor) = cursor else {
        return html! {};
    };
    let mut pairs: Vec<(&str, &str)> = query
        .iter()
        .filter(|(name, value)| *name != "page" && !value.is_empty())
        .copied()
        .collect();
    pairs.push(("page", cursor));
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    html! {
        nav class="pagination" aria-label="Pages" {
            a rel="next" href={ (path) "?" (query) } { "Next page →" }
        }
    }
}
