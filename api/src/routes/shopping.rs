//! The cart, the wishlist, and reviews. (Checking the cart out is in `orders`.)

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, put};
use axum::Router;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use eshop_commands::context::derived_id;
use eshop_domain::cart::{Cart, CartCommand};
use eshop_domain::product::Product;
use eshop_domain::review::{Review, ReviewCommand};
use eshop_domain::wishlist::{Wishlist, WishlistCommand};
use eshop_projections::shopping::{CartItem, ReviewRecord};

use crate::auth::CurrentUser;
use crate::command::{execute, Answer};
use crate::error::ApiError;
use crate::request::{ApiQuery, JsonBody, RequestMeta};
use crate::routes::parse_id;
use crate::state::read_document;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/cart", get(show_cart))
        .route(
            "/api/cart/items/{product_id}",
            put(set_cart_item).delete(remove_cart_item),
        )
        .route("/api/wishlist", get(show_wishlist))
        .route(
            "/api/wishlist/items/{product_id}",
            put(add_wish).delete(remove_wish),
        )
        .route(
            "/api/products/{id}/reviews",
            get(list_reviews).post(write_review),
        )
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadParams {
    min_version: Option<u64>,
}

async fn product_exists(state: &AppState, product_id: Uuid) -> Result<(), ApiError> {
    let listed = state
        .bus
        .read::<Product, _>(&product_id.to_string(), |product, _| product.is_listed())
        .await?;
    if listed {
        Ok(())
    } else {
        Err(ApiError::NotFound("product"))
    }
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct CartView {
    items: Vec<CartItem>,
    version: u64,
}

fn cart_view(cart: &Cart) -> CartView {
    CartView {
        items: cart
            .items
            .iter()
            .map(|(product_id, quantity)| CartItem {
                product_id: *product_id,
                quantity: *quantity,
            })
            .collect(),
        version: 0,
    }
}

async fn show_cart(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiQuery(params): ApiQuery<ReadParams>,
) -> Result<Response, ApiError> {
    let cart = read_document(
        &state.carts,
        user.id,
        own_version(&state, "cart", user.id, params.min_version).await?,
    )
    .await?;
    let view = cart.map_or(
        CartView {
            items: Vec::new(),
            version: 0,
        },
        |cart| CartView {
            items: cart.items,
            version: cart.version,
        },
    );
    Answer::ok(view).map(Answer::into_response)
}

async fn run_cart(
    state: &AppState,
    user: &CurrentUser,
    meta: &RequestMeta,
    body: &serde_json::Value,
    command: CartCommand,
) -> Result<Response, ApiError> {
    execute(
        state,
        meta,
        &user.id.to_string(),
        user.actor(),
        body,
        |context| async move {
            let executed = state
                .bus
                .execute_with::<Cart, _>(
                    &user.id.to_string(),
                    command,
                    &context,
                    meta.expected_version,
                    cart_view,
                )
                .await?;
            Answer::ok(CartView {
                version: executed.version,
                ..executed.aggregate
            })
        },
    )
    .await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuantityRequest {
    quantity: i64,
}

async fn set_cart_item(
    State(state): State<AppState>,
    user: CurrentUser,
    meta: RequestMeta,
    Path(product_id): Path<String>,
    JsonBody { value, raw }: JsonBody<QuantityRequest>,
) -> Result<Response, ApiError> {
    let product_id = parse_id(&product_id, "product")?;
    product_exists(&state, product_id).await?;
    let command = CartCommand::SetItem {
        product_id,
        quantity: value.quantity,
    };
    run_cart(&state, &user, &meta, &raw, command).await
}

async fn remove_cart_item(
    State(state): State<AppState>,
    user: CurrentUser,
    meta: RequestMeta,
    Path(product_id): Path<String>,
) -> Result<Response, ApiError> {
    let product_id = parse_id(&product_id, "product")?;
    run_cart(
        &state,
        &user,
        &meta,
        &serde_json::Value::Null,
        CartCommand::RemoveItem { product_id },
    )
    .await
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct WishlistView {
    items: Vec<Uuid>,
    version: u64,
}

async fn show_wishlist(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiQuery(params): ApiQuery<ReadParams>,
) -> Result<Response, ApiError> {
    let wishlist = read_document(
        &state.wishlists,
        user.id,
        own_version(&state, "wishlist", user.id, params.min_version).await?,
    )
    .await?;
    let view = wishlist.map_or(
        WishlistView {
            items: Vec::new(),
            version: 0,
        },
        |wishlist| WishlistView {
            items: wishlist.items,
            version: wishlist.version,
        },
    );
    Answer::ok(view).map(Answer::into_response)
}

async fn run_wishlist(
    state: &AppState,
    user: &CurrentUser,
    meta: &RequestMeta,
    command: WishlistCommand,
) -> Result<Response, ApiError> {
    execute(
        state,
        meta,
        &user.id.to_string(),
        user.actor(),
        &serde_json::Value::Null,
        |context| async move {
            let executed = state
                .bus
                .execute_with::<Wishlist, _>(
                    &user.id.to_string(),
                    command,
                    &context,
                    meta.expected_version,
                    |wishlist| wishlist.items.iter().copied().collect::<Vec<_>>(),
                )
                .await?;
            Answer::ok(WishlistView {
                items: executed.aggregate,
                version: executed.version,
            })
        },
    )
    .await
}

async fn add_wish(
    State(state): State<AppState>,
    user: CurrentUser,
    meta: RequestMeta,
    Path(product_id): Path<String>,
) -> Result<Response, ApiError> {
    let product_id = parse_id(&product_id, "product")?;
    product_exists(&state, product_id).await?;
    run_wishlist(&state, &user, &meta, WishlistCommand::Add { product_id }).await
}

async fn remove_wish(
    State(state): State<AppState>,
    user: CurrentUser,
    meta: RequestMeta,
    Path(product_id): Path<String>,
) -> Result<Response, ApiError> {
    let product_id = parse_id(&product_id, "product")?;
    run_wishlist(&state, &user, &meta, WishlistCommand::Remove { product_id }).await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewRequest {
    #[schemars(range(min = 1, max = 5))]
    rating: u8,
    #[serde(default)]
    comment: String,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct ReviewView {
    id: Uuid,
    product_id: Uuid,
    user_id: Uuid,
    rating: u8,
    comment: String,
    version: u64,
}

/// One review per user and product: its id is derived from both.
fn review_id(user_id: Uuid, product_id: Uuid) -> Uuid {
    derived_id(&["review", &user_id.to_string(), &product_id.to_string()])
}

async fn write_review(
    State(state): State<AppState>,
    user: CurrentUser,
    meta: RequestMeta,
    Path(product_id): Path<String>,
    JsonBody { value, raw }: JsonBody<ReviewRequest>,
) -> Result<Response, ApiError> {
    let product_id = parse_id(&product_id, "product")?;
    if value
        .comment
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ApiError::field(
            "comment",
            "must not contain control characters other than line breaks and tabs",
        ));
    }
    product_exists(&state, product_id).await?;
    let id = review_id(user.id, product_id);
    let state = &state;
    let user_id = user.id;
    execute(
        state,
        &meta,
        &user.id.to_string(),
        user.actor(),
        &raw,
        |context| async move {
            let command = ReviewCommand::Write {
                user_id,
                product_id,
                rating: value.rating,
                comment: value.comment,
            };
            let executed = state
                .bus
                .execute_with::<Review, _>(&id.to_string(), command, &context, None, |review| {
                    (review.rating.unwrap_or_default(), review.comment.clone())
                })
                .await?;
            let (rating, comment) = executed.aggregate;
            Answer::created(ReviewView {
                id,
                product_id,
                user_id,
                rating,
                comment,
                version: executed.version,
            })
        },
    )
    .await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    #[schemars(range(min = 1, max = 200))]
    limit: Option<i64>,
}

async fn list_reviews(
    State(state): State<AppState>,
    Path(product_id): Path<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Response, ApiError> {
    let product_id = parse_id(&product_id, "product")?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 200"));
    }
    let reviews: Vec<ReviewView> = state
        .reviews
        .by_key(product_id, limit)
        .await?
        .into_iter()
        .map(|review: ReviewRecord| ReviewView {
            id: review.id,
            product_id: review.product_id,
            user_id: review.user_id,
            rating: review.rating,
            comment: review.comment,
            version: review.version,
        })
        .collect();
    Answer::ok(serde_json::json!({ "items": reviews })).map(Answer::into_response)
}

/// Read your own writes: the caller's own cart or wishlist as of every change already stored
/// (one read of the store), or `min_version` if that is newer.
async fn own_version(
    state: &AppState,
    aggregate_type: &str,
    id: Uuid,
    min_version: Option<u64>,
) -> Result<Option<u64>, ApiError> {
    let current = state
        .bus
        .store()
        .current_version(aggregate_type, &id.to_string())
        .await?;
    let wanted = min_version.unwrap_or(0).max(current);
    Ok((wanted > 0).then_some(wanted))
}
