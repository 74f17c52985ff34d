//! Payments: one's own (admins see all). The card shows as its last four digits only.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use uuid::Uuid;

use cqrs_es::Aggregate;
use eshop_domain::payment::Payment;
use eshop_domain::values::Role;

use crate::auth::CurrentUser;
use crate::command::Answer;
use crate::error::ApiError;
use crate::request::ApiQuery;
use crate::routes::{after_own_writes, parse_id, PageParams, READ_YOUR_WRITES_WAIT};
use crate::state::AppState;
use crate::views::Page;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/payments", get(list))
        .route("/api/payments/{id}", get(show))
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "payment")?;
    // Read your own writes: as of every change already stored (one read of the store).
    let current = state
        .bus
        .store()
        .current_version("payment", &id.to_string())
        .await?;
    let caught_up = if current == 0 {
        None
    } else {
        state
            .payments
            .wait_for_version(id, current, crate::routes::READ_YOUR_WRITES_WAIT)
            .await?
    };
    let record = match caught_up {
        Some(record) => Some(record),
        None => state.payments.get(id).await?,
    };
    let record = record
        .filter(|record| record.customer_id == user.id || user.has_role(Role::Admin))
        .ok_or(ApiError::NotFound("payment"))?;
    Answer::ok(record).map(Answer::into_response)
}

async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Response, ApiError> {
    let limit = params.limit(20, 100)?;
    let before = match params.cursor.as_deref() {
        Some(raw) => Some(
            raw.parse::<Uuid>()
                .map_err(|_| ApiError::field("cursor", "is not a cursor from a previous page"))?,
        ),
        None => None,
    };
    // Read your own writes: the payments this caller's orders took are listed as answered.
    let payments = &state.payments;
    after_own_writes(&state, user.id, Payment::TYPE, |mine| async move {
        payments
            .wait_for_versions(&mine, READ_YOUR_WRITES_WAIT)
            .await
    })
    .await?;
    let whose = (!user.has_role(Role::Admin)).then_some(user.id);
    let records = state.payments.list(whose, before, limit).await?;
    let next_cursor = (records.len() as i64 == limit)
        .then(|| records.last().map(|record| record.id.to_string()))
        .flatten();
    Answer::ok(Page {
        items: records,
        next_cursor,
    })
    .map(Answer::into_response)
}
