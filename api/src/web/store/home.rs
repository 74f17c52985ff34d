//! `GET /`: new and popular products, and the categories, for everyone. Anonymous visitors get
//! it from the page cache.

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use maud::{html, Markup};

use crate::web::page::{encode_component, store_page, PageError};
use crate::web::session::Visitor;
use crate::web::store::products::{card, ProductCard, ProductPage};
use crate::web::store::{cached, chrome};
use crate::web::WebState;

/// How many products each section of the home page shows.
const SHOWN: usize = 8;

pub async fn home(
    State(web): State<WebState>,
    visitor: Visitor,
    uri: Uri,
) -> Result<Response, PageError> {
    cached(&web, &visitor, &uri, || async {
        let newest: ProductPage = web
            .api
            .get(
                &visitor.caller,
                "/api/products?ordering=-published_date&limit=100",
            )
            .await?;
        let chrome = chrome(&web, &visitor, None).await;
        Ok(store_page(
            &visitor,
            &chrome,
            "Welcome",
            sections(&newest.items),
        ))
    })
    .await
}

fn sections(products: &[ProductCard]) -> Markup {
    let mut popular: Vec<&ProductCard> = products.iter().collect();
    popular.sort_by_key(|product| std::cmp::Reverse(product.rating_count));
    let mut categories: Vec<&str> = products.iter().map(|p| p.category.as_str()).collect();
    categories.sort_unstable();
    categories.dedup();
    html! {
        h1 { "Welcome to eshop" }
        section id="categories" {
            h2 { "Categories" }
            p {
                @for category in &categories {
                    a href={ "/products?category=" (encode_component(category)) } { (category) }
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
