//! `GET /`: new and popular products, and the categories, for everyone. Anonymous visitors get
//! it from the page cache.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use crate::web::page::{html_response, money, store_page, Chrome, PageError};
use crate::web::session::Visitor;
use crate::web::WebState;

/// A product as the catalog lists it (the fields the cards show).
#[derive(Debug, Clone, Deserialize)]
pub struct ProductCard {
    pub id: Uuid,
    pub title: String,
    pub author: String,
    pub price_cents: i64,
    pub stock: i64,
    pub category: String,
    #[serde(default)]
    pub rating_average: Option<f64>,
    #[serde(default)]
    pub rating_count: i64,
}

#[derive(Deserialize)]
pub struct ProductPage {
    pub items: Vec<ProductCard>,
    pub next_cursor: Option<String>,
}

/// How many products each section of the home page shows.
const SHOWN: usize = 8;

pub async fn home(
    State(web): State<WebState>,
    visitor: Visitor,
    uri: Uri,
) -> Result<Response, PageError> {
    let key = uri.to_string();
    let anonymous = !visitor.is_signed_in();
    if anonymous {
        if let Some(page) = web.pages.get(&key) {
            return Ok(html_response(StatusCode::OK, page));
        }
    }
    let generation = web.pages.generation();
    let newest: ProductPage = web
        .api
        .get(
            &visitor.caller,
            "/api/products?ordering=-published_date&limit=100",
        )
        .await?;
    let chrome = Chrome {
        cart_items: super::cart_count(&web, &visitor).await,
        flash: None,
    };
    let page = store_page(&visitor, &chrome, "Welcome", sections(&newest.items));
    if anonymous {
        let body = bytes::Bytes::from(page.into_string());
        web.pages.put(key, generation, body.clone());
        return Ok(html_response(StatusCode::OK, body));
    }
    Ok(page.into_response())
}

fn sections(products: &[ProductCard]) -> Markup {
    let mut popular: Vec<&ProductCard> = products.iter().collect();
    popular.sort_by(|a, b| b.rating_count.cmp(&a.rating_count));
    let mut categories: Vec<&str> = products.iter().map(|p| p.category.as_str()).collect();
    categories.sort_unstable();
    categories.dedup();
    html! {
        h1 { "Welcome to eshop" }
        section id="categories" {
            h2 { "Categories" }
            p {
                @for category in &categories {
                    a href={ "/products?category=" (crate::web::page::encode_component(category)) } { (category) }
                    " "
                }
            }
        }
        section id="new-products" {
            h2 { "New" }
            div class="grid" { @for product in products.iter().take(SHOWN) { (card(product)) } }
        }
        section id="popular-products" {
            h2 { "Popular" }
            div class="grid" { @for product in popular.iter().take(SHOWN) { (card(product)) } }
        }
    }
}

/// One product in a grid.
pub fn card(product: &ProductCard) -> Markup {
    html! {
        article class="product-card" {
            h3 { a class="product-link" href={ "/products/" (product.id) } { (product.title) } }
            p class="muted" { (product.author) }
            p {
                span class="price" { (money(product.price_cents)) }
                @if product.stock <= 0 { " · " span class="muted" { "out of stock" } }
                @if let Some(average) = product.rating_average {
                    " · " span class="rating" { (format!("{average:.1}")) "★ (" (product.rating_count) ")" }
                }
            }
        }
    }
}
