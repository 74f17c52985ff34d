//! Operations views for admins.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use eshop_infra::projector::{report, ProjectionReport};
use eshop_infra::read_models::documents::Document;
use eshop_infra::read_models::orders::OrdersProjection;
use eshop_infra::read_models::payments::PaymentsProjection;
use eshop_infra::read_models::products::ProductsProjection;
use eshop_infra::read_models::users::UsersProjection;
use eshop_infra::read_models::ReadModel;
use eshop_projections::shopping::{CartRecord, ReviewRecord, WishlistRecord};

use crate::auth::AdminUser;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/admin/projections", get(projections))
}

/// Every projection: how far it got, how far behind it is, and whether it is stopped.
async fn projections(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> Result<Json<Vec<ProjectionReport>>, ApiError> {
    let names = [
        ProductsProjection::NAME,
        UsersProjection::NAME,
        OrdersProjection::NAME,
        PaymentsProjection::NAME,
        CartRecord::NAME,
        WishlistRecord::NAME,
        ReviewRecord::NAME,
    ];
    report(&state.pool, &state.jetstream, &state.subjects, &names)
        .await
        .map(Json)
        .map_err(ApiError::Unavailable)
}
