//! The storefront: what shoppers and visitors see.

pub mod home;
pub mod sign_in;

use axum::routing::{get, post};
use axum::Router;

use crate::web::session::Visitor;
use crate::web::WebState;

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/", get(home::home))
        .route("/signin", get(sign_in::sign_in_page).post(sign_in::sign_in))
        .route(
            "/register",
            get(sign_in::register_page).post(sign_in::register),
        )
        .route("/signout", post(sign_in::sign_out))
}

/// Items in the signed-in visitor's cart, for the header (none when anonymous or unknown).
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
