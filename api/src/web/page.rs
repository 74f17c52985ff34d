//! The frame every page shares, the notices a redirect carries, and the error page.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::web::client::Problem;
use crate::web::form::CSRF_FIELD;
use crate::web::session::Visitor;

/// Pages load their own stylesheet and script and post only to themselves; nothing inline.
pub const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// What the header of a storefront page shows beside the links.
#[derive(Default)]
pub struct Chrome {
    /// Items in the signed-in visitor's cart.
    pub cart_items: Option<u64>,
    /// A notice to show once (from `?notice=`), or an error.
    pub flash: Option<Flash>,
}

pub enum Flash {
    Notice(String),
    Error(String),
}

impl Flash {
    pub fn error(problem: &Problem) -> Self {
        Self::Error(problem.message())
    }
}

/// A whole HTML document around `body`.
pub fn document(title: &str, nav: Markup, flash: Option<&Flash>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · eshop" }
                link rel="stylesheet" href="/assets/app.css";
                link rel="icon" href="data:,";
                script src="/assets/app.js" defer {}
            }
            body {
                (nav)
                main id="content" {
                    @if let Some(flash) = flash { (flash_markup(flash)) }
                    (body)
                }
                footer { "eshop · every change is an event" }
            }
        }
    }
}

pub fn flash_markup(flash: &Flash) -> Markup {
    match flash {
        Flash::Notice(text) => html! { p class="flash notice" role="status" { (text) } },
        Flash::Error(text) => html! { p class="flash error" role="alert" { (text) } },
    }
}

/// The storefront's header: the search box and the visitor's links.
pub fn store_nav(visitor: &Visitor, chrome: &Chrome) -> Markup {
    html! {
        header class="site" {
            a class="brand" href="/" { "eshop" }
            form id="search" action="/products" method="get" role="search" {
                input type="search" name="q" placeholder="Search the shop" aria-label="Search";
                button type="submit" { "Search" }
            }
            nav id="site-nav" {
                a href="/products" { "Catalog" }
                a href="/movies" { "Movies" }
                a href="/calendar" { "Calendar" }
                @if visitor.is_signed_in() {
                    a id="nav-cart" href="/cart" {
                        "Cart"
                        @if let Some(count) = chrome.cart_items { " (" (count) ")" }
                    }
                    a id="nav-wishlist" href="/wishlist" { "Wishlist" }
                    a id="nav-orders" href="/orders" { "Orders" }
                    a id="nav-account" href="/account" { "Account" }
                    @if visitor.sees_console() { a id="nav-admin" href="/admin" { "Console" } }
                    form id="signout" class="inline" action="/signout" method="post" {
                        (csrf_field(visitor))
                        button type="submit" { "Sign out" }
                    }
                } @else {
                    a id="nav-signin" href="/signin" { "Sign in" }
                    a id="nav-register" href="/register" { "Register" }
                }
            }
        }
    }
}

/// The storefront frame around `body`.
pub fn store_page(visitor: &Visitor, chrome: &Chrome, title: &str, body: Markup) -> Html {
    Html::new(document(
        title,
        store_nav(visitor, chrome),
        chrome.flash.as_ref(),
        body,
    ))
}

pub fn csrf_field(visitor: &Visitor) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(visitor.csrf); }
}

/// An HTML answer with the pages' security policy, not cached on the way unless `public`.
pub struct Html {
    status: StatusCode,
    markup: Markup,
}

impl Html {
    pub fn new(markup: Markup) -> Self {
        Self {
            status: StatusCode::OK,
            markup,
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn into_string(self) -> String {
        self.markup.into_string()
    }
}

impl IntoResponse for Html {
    fn into_response(self) -> Response {
        html_response(self.status, self.markup.into_string().into())
    }
}

/// `body` as a page answer.
pub fn html_response(status: StatusCode, body: bytes::Bytes) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    // A page shows the visitor's own data: private, and asked again each time.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    response
}

/// 303 to `location` (post/redirect/get), optionally with a notice code the next page shows.
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum PageError {
    /// The form's CSRF token was missing or not the visitor's.
    Csrf,
    /// The form could not be read.
    BadForm,
    /// Sign in first (then come back to this path).
    SignIn(String),
    NotFound,
    /// The API refused; its problem says why.
    Api(Problem),
}

impl From<Problem> for PageError {
    fn from(problem: Problem) -> Self {
        Self::Api(problem)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            Self::SignIn(back) => {
                return see_other(&format!("/signin?next={}", encode_component(&back)))
            }
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was not sent from this shop's page, or the page is too old. Go back, reload it and try again.".to_string(),
            ),
            Self::BadForm => (
                StatusCode::BAD_REQUEST,
                "Bad form",
                "The form could not be read.".to_string(),
            ),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such page.".to_string(),
            ),
            Self::Api(problem) if problem.status == 401 => {
                return see_other("/signin");
            }
            Self::Api(problem) => (
                StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_GATEWAY),
                "Sorry",
                problem.message(),
            ),
        };
        let body = document(
            title,
            html! { header class="site" { a class="brand" href="/" { "eshop" } nav id="site-nav" { a href="/" { "Home" } } } },
            Some(&Flash::Error(message)),
            html! { h1 { (title) } p { a href="/" { "Back to the shop" } } },
        );
        html_response(status, body.into_string().into())
    }
}

/// `value` percent-encoded for a query string.
pub fn encode_component(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|encoded| encoded.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

/// Money in minor units as text (`12.50`).
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

/// Raw, already-safe markup (for inline SVG built from numbers).
pub fn trusted(markup: String) -> PreEscaped<String> {
    PreEscaped(markup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_as_units_and_cents() {
        assert_eq!(money(1250), "12.50");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(-100), "-1.00");
    }

    #[test]
    fn a_return_path_is_encoded() {
        assert_eq!(
            encode_component("/orders/1?a=b&c"),
            "%2Forders%2F1%3Fa%3Db%26c"
        );
    }
}
