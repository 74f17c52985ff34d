//! Buying: one-call purchases from the wallet, orders paid by any method, reading and
//! cancelling one's orders. Each handler maps the request to a use case of
//! `eshop_commands::orders` and its result back to HTTP.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use eshop_commands::orders::{
    CardDetails, CardInput, PaymentChoice, Placement, PurchaseOutcome, WantedLine,
};
use eshop_domain::order::{Order, OrderLine, OrderStatus, PaymentInstrument};
use eshop_domain::values::{PaymentMethod, Role};
use eshop_projections::order::{OrderFilter, OrderRecord, TimelineEntry};

use crate::auth::CurrentUser;
use crate::command::{execute, Answer};
use crate::error::ApiError;
use crate::request::{ApiQuery, JsonBody, RequestMeta};
use crate::routes::{after_own_writes, parse_id, PageParams, READ_YOUR_WRITES_WAIT};
use crate::state::AppState;
use crate::views::Page;

/// How long `POST /api/purchases` waits for the outcome before answering 202.
const PURCHASE_WAIT: Duration = Duration::from_secs(5);
/// The longest `Prefer: wait=N` honoured.
const MAX_WAIT: Duration = Duration::from_secs(10);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/purchases", post(purchase))
        .route("/api/orders", post(place_order).get(list))
        .route("/api/orders/{id}", get(show))
        .route("/api/orders/{id}/cancel", post(cancel))
        .route("/api/orders/{id}/payments", post(repay))
        .route("/api/cart/checkout", post(checkout))
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PaymentSummary {
    pub id: Option<Uuid>,
    pub method: PaymentMethod,
    pub card_last4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_brand: Option<String>,
}

/// An order as the API shows it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OrderView {
    pub id: Uuid,
    pub customer_id: Option<Uuid>,
    pub status: OrderStatus,
    pub reason: Option<String>,
    pub lines: Vec<OrderLine>,
    pub total_cents: i64,
    pub payment: PaymentSummary,
    pub timeline: Vec<TimelineEntry>,
    /// Absent in a command's answer (the order as the command left it, before any read model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    pub version: u64,
}

impl From<OrderRecord> for OrderView {
    fn from(record: OrderRecord) -> Self {
        let updated_at = record
            .updated_at
            .or_else(|| record.timeline.last().map(|entry| entry.at))
            .unwrap_or(record.created_at);
        Self {
            id: record.id,
            customer_id: Some(record.customer_id),
            status: record.status,
            reason: record.reason,
            lines: record.lines,
            total_cents: record.total_cents,
            payment: PaymentSummary {
                id: record.payment_id,
                method: record.payment_method,
                card_last4: record.card_last4,
                card_brand: record.card_brand,
            },
            timeline: record.timeline,
            created_at: Some(record.created_at),
            updated_at: Some(updated_at),
            version: record.version,
        }
    }
}

fn view_of(id: Uuid, order: &Order, version: u64) -> OrderView {
    let payment = order
        .payment
        .clone()
        .unwrap_or_else(PaymentInstrument::balance);
    OrderView {
        id,
        customer_id: order.customer_id,
        status: order.status,
        reason: order.reason.clone(),
        lines: order.lines.clone(),
        total_cents: order.total_cents,
        payment: PaymentSummary {
            id: order.payment_id,
            method: payment.method,
            card_last4: payment.card_last4,
            card_brand: payment.card_brand,
        },
        timeline: Vec::new(),
        created_at: None,
        updated_at: None,
        version,
    }
}

fn pending(order_id: Uuid) -> Result<Answer, ApiError> {
    Answer::accepted(json!({
        "order_id": order_id,
        "status_url": format!("/api/orders/{order_id}"),
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PurchaseBody {
    product_id: String,
    quantity: i64,
    #[schemars(extend("enum" = ["balance"]))]
    payment_method: String,
}

async fn purchase(
    State(state): State<AppState>,
    user: CurrentUser,
    meta: RequestMeta,
    JsonBody { value, raw }: JsonBody<PurchaseBody>,
) -> Result<Response, ApiError> {
    let product_id: Uuid = value
        .product_id
        .parse()
        .map_err(|_| ApiError::field("product_id", "must be a product id"))?;
    if value.payment_method != "balance" {
        return Err(ApiError::field(
            "payment_method",
            "purchases are paid from the wallet (\"balance\"); use /api/orders for other methods",
        ));
    }
    let state = &state;
    execute(
        state,
        &meta,
        &user.id.to_string(),
        user.actor(),
        &raw,
        |context| async move {
            let outcome = state
                .ordering
                .purchase(user.id, product_id, value.quantity, &context, PURCHASE_WAIT)
                .await?;
            match outcome {
                PurchaseOutcome::Confirmed(confirmed) => Answer::created(json!({
                    "order_id": confirmed.order_id,
                    "status": "confirmed",
                    "total_cents": confirmed.total_cents,
                    "balance_cents": confirmed.balance_cents,
                    "version": confirmed.order_version,
                })),
                // The commit may still land: the order's address says what became of it.
                PurchaseOutcome::Pending { order_id } => pending(order_id),
            }
        },
    )
    .await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LineRequest {
    product_id: String,
    quantity: i64,
}

/// A card as a payment form sends it. Not `Debug`: all but the holder is secret.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardRequest {
    pub number: String,
    pub exp_month: u32,
    pub exp_year: u32,
    pub cvc: String,
    pub holder: Option<String>,
}

/// `card`: the whole card, or (for older clients) the bare number.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum CardField {
    Number(String),
    Card(CardRequest),
}

/// How an order is paid: `method` and the detail it needs.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    #[schemars(extend("enum" = ["balance", "card", "paypal", "bank_transfer"]))]
    pub method: String,
    pub card: Option<CardField>,
    pub paypal_email: Option<String>,
    pub bank_account: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrderRequest {
    lines: Vec<LineRequest>,
    payment: PaymentRequest,
}

/// The instrument the order is paid with (a card or account tokenized by the gateway).
fn instrument(state: &AppState, payment: PaymentRequest) -> Result<PaymentInstrument, ApiError> {
    let card = payment.card.map(|card| match card {
        CardField::Number(number) => CardInput::Number(number),
        CardField::Card(card) => CardInput::Details(CardDetails {
            number: card.number,
            exp_month: card.exp_month,
            exp_year: card.exp_year,
            cvc: card.cvc,
            holder: card.holder,
        }),
    });
    let choice = PaymentChoice {
        method: payment.method,
        card,
        paypal_email: payment.paypal_email,
        bank_account: payment.bank_account,
    };
    Ok(state.ordering.payment_instrument(&choice)?)
}

/// `Prefer: wait=N` (seconds, at most 10).
fn preferred_wait(headers: &HeaderMap) -> Duration {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|part| part.trim().strip_prefix("wait="))
        .filter_map(|seconds| seconds.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .next()
        .unwrap_or_default()
        .min(MAX_WAIT)
}

/// 201 with the order if it finished within the wait, else 202 (it goes on in the background).
fn placed(placement: Placement) -> Result<Answer, ApiError> {
    match placement {
        Placement::Finished {
            order_id,
            order,
            version,
        } => Answer::created(view_of(order_id, &order, version)),
        Placement::Pending { order_id } => pending(order_id),
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckoutRequest {
    payment: PaymentRequest,
}

/// The cart becomes an order (at today's prices) and is emptied.
async fn checkout(
    State(state): State<AppState>,
    user: CurrentUser,
    meta: RequestMeta,
    headers: HeaderMap,
    JsonBody { value, raw }: JsonBody<CheckoutRequest>,
) -> Result<Response, ApiError> {
    let payment = instrument(&state, value.payment)?;
    let wait = preferred_wait(&headers);
    let state = &state;
    execute(
        state,
        &meta,
        &user.id.to_string(),
        user.actor(),
        &raw,
        |context| async move {
            placed(
                state
                    .ordering
                    .checkout(user.id, payment, &context, wait)
                    .await?,
            )
        },
    )
    .await
}

async fn place_order(
    State(state): State<AppState>,
    user: CurrentUser,
    meta: RequestMeta,
    headers: HeaderMap,
    JsonBody { value, raw }: JsonBody<OrderRequest>,
) -> Result<Response, ApiError> {
    let payment = instrument(&state, value.payment)?;
    let mut wanted = Vec::with_capacity(value.lines.len());
    for (index, line) in value.lines.iter().enumerate() {
        let product_id = line.product_id.parse::<Uuid>().map_err(|_| {
            ApiError::field(
                &format!("lines[{index}].product_id"),
                "must be a product id",
            )
        })?;
        wanted.push(WantedLine {
            product_id,
            quantity: line.quantity,
        });
    }
    let wait = preferred_wait(&headers);
    let state = &state;
    execute(
        state,
        &meta,
        &user.id.to_string(),
        user.actor(),
        &raw,
        |context| async move {
            placed(
                state
                    .ordering
                    .place(user.id, &wanted, payment, &context, wait)
                    .await?,
            )
        },
    )
    .await
}

/// Another customer's order does not exist, as far as this caller can tell.
fn visible_to(user: &CurrentUser, customer_id: Uuid) -> Result<(), ApiError> {
    if user.id == customer_id || user.has_role(Role::Admin) {
        Ok(())
    } else {
        Err(ApiError::NotFound("order"))
    }
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "order")?;
    // Read your own writes: the order as of every change already stored (one read of the
    // store; only its owner or an admin gets past the check below).
    let current = state
        .bus
        .store()
        .current_version("order", &id.to_string())
        .await?;
    let record = if current == 0 {
        None
    } else {
        state
            .orders
            .wait_for_version(id, current, crate::routes::READ_YOUR_WRITES_WAIT)
            .await?
    };
    let record = match record {
        Some(record) => record,
        None if current == 0 => return Err(ApiError::NotFound("order")),
        // Not visible in time: as it is now (an outsider still gets 404 below).
        None => state
            .orders
            .get(id)
            .await?
            .ok_or(ApiError::NotFound("order"))?,
    };
    visible_to(&user, record.customer_id)?;
    Answer::ok(OrderView::from(record)).map(Answer::into_response)
}

/// `GET /api/orders?status=&user_id=&from=&to=&limit=&cursor=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderListParams {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
    pub status: Option<OrderStatus>,
    pub user_id: Option<Uuid>,
    /// Placed at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Placed before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// Admins see every order (or one user's, with `user_id`); a customer sees their own, and
/// naming someone else is 403.
async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiQuery(params): ApiQuery<OrderListParams>,
) -> Result<Response, ApiError> {
    let customer_id = if user.has_role(Role::Admin) {
        params.user_id
    } else {
        match params.user_id {
            Some(other) if other != user.id => return Err(ApiError::Forbidden),
            _ => Some(user.id),
        }
    };
    if let (Some(from), Some(to)) = (params.from, params.to) {
        if to < from {
            return Err(ApiError::field("to", "must not be before `from`"));
        }
    }
    let filter = OrderFilter {
        customer_id,
        status: params.status,
        from: params.from,
        to: params.to,
    };
    let page = PageParams {
        cursor: params.cursor,
        limit: params.limit,
    };
    let limit = page.limit(20, 100)?;
    let before = match page.cursor.as_deref() {
        Some(raw) => Some(
            raw.parse::<Uuid>()
                .map_err(|_| ApiError::field("cursor", "is not a cursor from a previous page"))?,
        ),
        None => None,
    };
    // Read your own writes: the orders this caller placed or changed are listed as answered.
    let orders = &state.orders;
    after_own_writes(&state, user.id, Order::TYPE, |mine| async move {
        orders.wait_for_versions(&mine, READ_YOUR_WRITES_WAIT).await
    })
    .await?;
    let records = state.orders.list(&filter, before, limit).await?;
    let next_cursor = (records.len() as i64 == limit)
        .then(|| records.last().map(|record| record.id.to_string()))
        .flatten();
    Answer::ok(Page {
        items: records.into_iter().map(OrderView::from).collect::<Vec<_>>(),
        next_cursor,
    })
    .map(Answer::into_response)
}

async fn cancel(
    State(state): State<AppState>,
    user: CurrentUser,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let order_id = parse_id(&id, "order")?;
    visible_to(&user, state.ordering.customer_of(order_id).await?)?;
    let state = &state;
    execute(
        state,
        &meta,
        &user.id.to_string(),
        user.actor(),
        &serde_json::Value::Null,
        |context| async move {
            let (order, version) = state
                .ordering
                .cancel(order_id, &context, meta.expected_version)
                .await?;
            Answer::ok(view_of(order_id, &order, version))
        },
    )
    .await
}

/// Pays an order again (its payment was declined or the wallet short, or it was not taken
/// yet) with another instrument; answers like `POST /api/orders`.
async fn repay(
    State(state): State<AppState>,
    user: CurrentUser,
    meta: RequestMeta,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody { value, raw }: JsonBody<PaymentRequest>,
) -> Result<Response, ApiError> {
    let order_id = parse_id(&id, "order")?;
    visible_to(&user, state.ordering.customer_of(order_id).await?)?;
    let payment = instrument(&state, value)?;
    let wait = preferred_wait(&headers);
    let state = &state;
    execute(
        state,
        &meta,
        &user.id.to_string(),
        user.actor(),
        &raw,
        |context| async move {
            placed(
                state
                    .ordering
                    .repay(order_id, payment, &context, wait)
                    .await?,
            )
        },
    )
    .await
}
