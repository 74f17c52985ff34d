//! The catalog: `GET /products` (search box, filters, pages) and `GET /products/{id}` (reviews,
//! add to cart, add to wishlist, write a review). Both are cached for anonymous visitors.

use axum::extract::{Path, Query, State};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use eshop_projections::search::{Facets, ValueCount};

use crate::web::client::{Caller, Problem};
use crate::web::form::Form;
use crate::web::page::{
    encode_component, money, parse_money, see_other, store_page, Flash, Html, PageError,
};
use crate::web::session::Visitor;
use crate::web::store::{action_form, cached, chrome, next_page_link, parse_id, Notice};
use crate::web::WebState;

/// A product as the catalog shows it (the fields the pages use).
#[derive(Debug, Clone, Deserialize)]
pub struct ProductCard {
    pub id: Uuid,
    pub title: String,
    pub author: String,
    #[serde(default)]
    pub description: String,
    pub price_cents: i64,
    pub stock: i64,
    pub category: String,
    #[serde(default)]
    pub rating_average: Option<f64>,
    #[serde(default)]
    pub rating_count: i64,
}

/// A page of the catalog list.
#[derive(Deserialize)]
pub struct ProductPage {
    pub items: Vec<ProductCard>,
    pub next_cursor: Option<String>,
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

/// `GET /products?q=&category=&min_price=&max_price=&in_stock=&page=` (prices in units).
#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    min_price: String,
    #[serde(default)]
    max_price: String,
    #[serde(default)]
    in_stock: String,
    #[serde(default)]
    page: String,
}

impl ListQuery {
    fn pairs(&self) -> [(&str, &str); 6] {
        [
            ("q", &self.q),
            ("category", &self.category),
            ("min_price", &self.min_price),
            ("max_price", &self.max_price),
            ("in_stock", &self.in_stock),
            ("page", &self.page),
        ]
    }

    /// The catalog API's query for these filters, or the field that is not an amount.
    fn api_path(&self) -> Result<String, Problem> {
        let cents = |field: &str, text: &str| -> Result<Option<String>, Problem> {
            if text.trim().is_empty() {
                return Ok(None);
            }
            parse_money(text)
                .map(|cents| Some(cents.to_string()))
                .ok_or_else(|| Problem::invalid_field(field, "must be an amount like 12.50"))
        };
        let mut pairs: Vec<(&str, String)> = vec![("limit", "24".into())];
        let texts = [
            ("search", &self.q),
            ("category", &self.category),
            ("cursor", &self.page),
        ];
        for (name, value) in texts {
            if !value.trim().is_empty() {
                pairs.push((name, value.trim().to_string()));
            }
        }
        if let Some(min) = cents("min_price", &self.min_price)? {
            pairs.push(("min_price_cents", min));
        }
        if let Some(max) = cents("max_price", &self.max_price)? {
            pairs.push(("max_price_cents", max));
        }
        if !self.in_stock.is_empty() {
            pairs.push(("in_stock", "true".into()));
        }
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        Ok(format!("/api/products?{query}"))
    }
}

/// How many of the words' matches each category holds (the search index's facets; none without
/// words, or without an index in this process).
async fn category_facets(web: &WebState, visitor: &Visitor, query: &ListQuery) -> Vec<ValueCount> {
    #[derive(Deserialize)]
    struct Answer {
        facets: Facets,
    }
    let words = query.q.trim();
    if words.is_empty() {
        return Vec::new();
    }
    let pairs = [("q", words), ("facets", "category"), ("limit", "1")];
    let path = format!(
        "/api/search?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    );
    web.api
        .get::<Answer>(&visitor.caller, &path)
        .await
        .ok()
        .and_then(|answer| answer.facets.category)
        .unwrap_or_default()
}

fn facet_links(query: &ListQuery, categories: &[ValueCount]) -> Markup {
    html! {
        @if !categories.is_empty() {
            p class="facets" {
                "In: "
                @for category in categories {
                    a href={ "/products?q=" (encode_component(query.q.trim())) "&category=" (encode_component(&category.value)) } {
                        (category.value) " (" (category.count) ")"
                    }
                    " "
                }
            }
        }
    }
}

pub async fn list(
    State(web): State<WebState>,
    visitor: Visitor,
    uri: Uri,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    cached(&web, &visitor, &uri, || async {
        let found = match query.api_path() {
            Ok(path) => web.api.get::<ProductPage>(&visitor.caller, &path).await,
            Err(problem) => Err(problem),
        };
        let (page, problem) = match found {
            Ok(page) => (Some(page), None),
            Err(problem) => (None, Some(problem)),
        };
        let categories = category_facets(&web, &visitor, &query).await;
        let chrome = chrome(&web, &visitor, problem.as_ref().map(Flash::error)).await;
        let body = html! {
            h1 { "Catalog" }
            (filters(&query))
            (facet_links(&query, &categories))
            @if let Some(page) = &page {
                @if page.items.is_empty() { p class="muted" { "Nothing matches." } }
                div class="grid" { @for product in &page.items { (card(product)) } }
                (next_page_link("/products", &query.pairs(), page.next_cursor.as_deref()))
            }
        };
        Ok(store_page(&visitor, &chrome, "Catalog", body).answering(problem.as_ref()))
    })
    .await
}

fn filters(query: &ListQuery) -> Markup {
    html! {
        form id="filters" class="filters" method="get" action="/products" {
            label for="filter-q" { "Words" }
            input id="filter-q" type="search" name="q" value=(query.q);
            label for="filter-category" { "Category" }
            input id="filter-category" name="category" value=(query.category);
            label for="filter-min" { "Price from" }
            input id="filter-min" name="min_price" inputmode="decimal" size="6" value=(query.min_price);
            label for="filter-max" { "to" }
            input id="filter-max" name="max_price" inputmode="decimal" size="6" value=(query.max_price);
            label { input type="checkbox" name="in_stock" value="true" checked[!query.in_stock.is_empty()]; " In stock" }
            button type="submit" { "Filter" }
        }
    }
}

#[derive(Deserialize)]
struct Review {
    rating: u8,
    #[serde(default)]
    comment: String,
}

#[derive(Deserialize)]
struct Reviews {
    items: Vec<Review>,
}

pub async fn show(
    State(web): State<WebState>,
    visitor: Visitor,
    uri: Uri,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    cached(&web, &visitor, &uri, || {
        product_page(&web, &visitor, id, notice.flash())
    })
    .await
}

/// The product's page, with `flash` above it.
async fn product_page(
    web: &WebState,
    visitor: &Visitor,
    id: Uuid,
    flash: Option<Flash>,
) -> Result<Html, PageError> {
    let product: ProductCard = web
        .api
        .get(&visitor.caller, &format!("/api/products/{id}"))
        .await?;
    let reviews: Reviews = web
        .api
        .get(&visitor.caller, &format!("/api/products/{id}/reviews"))
        .await?;
    let chrome = chrome(web, visitor, flash).await;
    let back = format!("/products/{id}");
    let body = html! {
        article class="product" {
            h1 class="product-name" { (product.title) }
            p class="muted" {
                (product.author) " · "
                a href={ "/products?category=" (encode_component(&product.category)) } { (product.category) }
            }
            p { span class="price" { (money(product.price_cents)) } }
            p { @if product.stock > 0 { (product.stock) " in stock" } @else { "Out of stock" } }
            @if !product.description.is_empty() { p class="description" { (product.description) } }
            (action_form(visitor, "add-to-cart", &format!("{back}/cart"), &back, html! {
                label for="quantity" { "Quantity" }
                input id="quantity" type="number" name="quantity" value="1" min="1" max="1000" required;
                button type="submit" { "Add to cart" }
            }))
            (action_form(visitor, "add-to-wishlist", &format!("{back}/wishlist"), &back, html! {
                button type="submit" class="secondary" { "Add to wishlist" }
            }))
        }
        section id="reviews" {
            h2 { "Reviews" }
            @if let Some(average) = product.rating_average {
                p { (format!("{average:.1}")) "★ from " (product.rating_count) " reviews" }
            }
            @if reviews.items.is_empty() { p class="muted" { "No reviews yet." } }
            @for review in &reviews.items {
                div class="review" {
                    p class="rating" { (stars(review.rating)) }
                    @if !review.comment.is_empty() { p { (review.comment) } }
                }
            }
            h3 { "Your review" }
            (action_form(visitor, "review", &format!("{back}/reviews"), &back, html! {
                label for="rating" { "Rating" }
                select id="rating" name="rating" {
                    @for rating in (1..=5).rev() { option value=(rating) { (stars(rating)) } }
                }
                label for="comment" { "Comment" }
                textarea id="comment" name="comment" rows="3" maxlength="2000" {}
                button type="submit" { "Send review" }
            }))
        }
    };
    Ok(store_page(visitor, &chrome, &product.title, body))
}

fn stars(rating: u8) -> String {
    let rating = usize::from(rating.min(5));
    format!("{}{}", "★".repeat(rating), "☆".repeat(5 - rating))
}

/// Runs `call` (with the visitor's credentials) on product `id`, then redirects to `done`; a
/// refusal shows the product page again with the API's message.
async fn act_on_product<T, Fut>(
    web: &WebState,
    visitor: &Visitor,
    id: &str,
    done: impl FnOnce(Uuid) -> String,
    call: impl FnOnce(Uuid, Caller) -> Fut,
) -> Result<Response, PageError>
where
    Fut: std::future::Future<Output = Result<T, Problem>>,
{
    let id = parse_id(id)?;
    if !visitor.is_signed_in() {
        return Err(PageError::SignIn(format!("/products/{id}")));
    }
    match call(id, visitor.caller.clone()).await {
        Ok(_) => Ok(see_other(&done(id))),
        Err(problem) => {
            let page = product_page(web, visitor, id, Some(Flash::error(&problem))).await?;
            Ok(page.answering(Some(&problem)).into_response())
        }
    }
}

#[derive(Deserialize)]
pub struct QuantityForm {
    quantity: i64,
}

#[derive(Deserialize)]
pub struct CartLines {
    pub items: Vec<CartLine>,
}

#[derive(Deserialize)]
pub struct CartLine {
    pub product_id: Uuid,
    pub quantity: i64,
}

/// Adds `quantity` to what the cart already holds of the product.
pub async fn add_to_cart(
    State(web): State<WebState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<QuantityForm>,
) -> Result<Response, PageError> {
    let api = &web.api;
    let done = |_| "/cart?notice=added".to_string();
    act_on_product(&web, &visitor, &id, done, |id, caller| async move {
        let cart: CartLines = api.get(&caller, "/api/cart").await?;
        let held = cart
            .items
            .iter()
            .find(|line| line.product_id == id)
            .map_or(0, |line| line.quantity);
        let body = json!({ "quantity": held + form.quantity });
        let path = format!("/api/cart/items/{id}");
        api.send::<_, serde_json::Value>(&caller, Method::PUT, &path, Some(&body))
            .await
    })
    .await
}

#[derive(Deserialize)]
pub struct EmptyForm {}

pub async fn add_to_wishlist(
    State(web): State<WebState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(_): Form<EmptyForm>,
) -> Result<Response, PageError> {
    let api = &web.api;
    let done = |_| "/wishlist?notice=wished".to_string();
    act_on_product(&web, &visitor, &id, done, |id, caller| async move {
        let path = format!("/api/wishlist/items/{id}");
        api.send::<(), serde_json::Value>(&caller, Method::PUT, &path, None)
            .await
    })
    .await
}

#[derive(Deserialize)]
pub struct ReviewForm {
    rating: u8,
    #[serde(default)]
    comment: String,
}

pub async fn review(
    State(web): State<WebState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Form(form): Form<ReviewForm>,
) -> Result<Response, PageError> {
    let api = &web.api;
    let done = |id| format!("/products/{id}?notice=reviewed");
    act_on_product(&web, &visitor, &id, done, |id, caller| async move {
        let body = json!({ "rating": form.rating, "comment": form.comment });
        let path = format!("/api/products/{id}/reviews");
        api.post::<_, serde_json::Value>(&caller, &path, &body)
            .await
    })
    .await
}
