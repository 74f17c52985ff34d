//! Buying: one-call purchases from the wallet, orders paid by any method, reading and
//! cancelling one's orders. The order process manager does the work; these handlers place the
//! order and wait for it a little.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use eshop_commands::order_process::{self, PurchaseError, PurchaseRequest};
use eshop_commands::CommandContext;
use eshop_domain::cart::{Cart, CartCommand};
use eshop_domain::order::{Order, OrderCommand, OrderLine, OrderStatus, PaymentInstrument};
use eshop_domain::product::Product;
use eshop_domain::values::{PaymentMethod, Role};
use eshop_infra::simulated_gateway::{tokenize_card, tokenize_paypal};
use eshop_projections::order::{OrderRecord, TimelineEntry};

use crate::auth::CurrentUser;
use crate::command::{execute, Answer};
use crate::error::{ApiError, FieldError};
use crate::request::{ApiQuery, JsonBody, RequestMeta};
use crate::routes::{parse_id, PageParams};
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
        .route("/api/cart/checkout", post(checkout))
}

#[derive(Debug, Serialize)]
struct PaymentSummary {
    id: Option<Uuid>,
    method: PaymentMethod,
    card_last4: Option<String>,
}

#[derive(Debug, Serialize)]
struct OrderView {
    id: Uuid,
    status: OrderStatus,
    reason: Option<String>,
    lines: Vec<OrderLine>,
    total_cents: i64,
    payment: PaymentSummary,
    timeline: Vec<TimelineEntry>,
    version: u64,
}

impl From<OrderRecord> for OrderView {
    fn from(record: OrderRecord) -> Self {
        Self {
            id: record.id,
            status: record.status,
            reason: record.reason,
            lines: record.lines,
            total_cents: record.total_cents,
            payment: PaymentSummary {
                id: record.payment_id,
                method: record.payment_method,
                card_last4: record.card_last4,
            },
            timeline: record.timeline,
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
        status: order.status,
        reason: order.reason.clone(),
        lines: order.lines.clone(),
        total_cents: order.total_cents,
        payment: PaymentSummary {
            id: order.payment_id,
            method: payment.method,
            card_last4: payment.card_last4,
        },
        timeline: Vec::new(),
        version,
    }
}

/// Why an order failed, as the error a buyer sees.
fn failure(reason: Option<&str>) -> ApiError {
    let (code, detail) = match reason {
        Some(order_process::OUT_OF_STOCK) => {
            ("out_of_stock", "not enough of a product is in stock")
        }
        Some(order_process::INSUFFICIENT_BALANCE) => {
            ("insufficient_balance", "the wallet balance is too low")
        }
        Some(order_process::PRODUCT_UNAVAILABLE) => {
            ("product_unavailable", "a product is no longer sold")
        }
        Some(order_process::ACCOUNT_DEACTIVATED) => {
            ("user_deactivated", "this account is deactivated")
        }
        Some(order_process::PAYMENT_DECLINED) => ("payment_declined", "the payment was declined"),
        _ => ("order_failed", "the order could not be completed"),
    };
    ApiError::Conflict {
        code,
        detail: detail.into(),
    }
}

/// Prices the lines from the products themselves (the event store, not a read model).
async fn priced_lines(
    state: &AppState,
    wanted: &[(Uuid, i64)],
) -> Result<Vec<OrderLine>, ApiError> {
    let mut lines = Vec::with_capacity(wanted.len());
    let mut errors = Vec::new();
    for (index, (product_id, quantity)) in wanted.iter().enumerate() {
        let (listed, unit_price_cents) = state
            .bus
            .read::<Product, _>(&product_id.to_string(), |product, _| {
                (product.is_listed(), product.price_cents)
            })
            .await?;
        if listed {
            lines.push(OrderLine {
                product_id: *product_id,
                quantity: *quantity,
                unit_price_cents,
            });
        } else {
            errors.push(FieldError::new(
                format!("lines[{index}].product_id"),
                "no such product",
            ));
        }
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Places a new order (`order_id` is fresh); answers with the order as placed.
async fn place(
    state: &AppState,
    context: &CommandContext,
    order_id: Uuid,
    customer_id: Uuid,
    lines: Vec<OrderLine>,
    payment: PaymentInstrument,
) -> Result<Order, ApiError> {
    let order = order_id.to_string();
    state.bus.assume_new::<Order>(&order);
    let placed = state
        .bus
        .execute_with::<Order, _>(
            &order,
            OrderCommand::Place {
                customer_id,
                lines,
                payment,
            },
            context,
            None,
            Order::clone,
        )
        .await?;
    Ok(placed.aggregate)
}

/// Drives the order (as placed) for up to `wait`; `None` when it has not finished by then (the
/// order worker carries on).
async fn wait_for_outcome(
    state: &AppState,
    order_id: Uuid,
    placed: Order,
    wait: Duration,
) -> Option<OrderStatus> {
    let advanced = state.process.advance_from(order_id, Some(placed));
    match tokio::time::timeout(wait, advanced).await {
        Ok(Ok(status)) => Some(status),
        Ok(Err(error)) => {
            tracing::warn!(%order_id, error = %error, "the order will finish in the background");
            None
        }
        Err(_) => None,
    }
}

fn pending(order_id: Uuid) -> Result<Answer, ApiError> {
    Answer::accepted(json!({
        "order_id": order_id,
        "status_url": format!("/api/orders/{order_id}"),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurchaseBody {
    product_id: String,
    quantity: i64,
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
            let request = PurchaseRequest {
                order_id: context.new_aggregate_id(),
                customer_id: user.id,
                product_id,
                quantity: value.quantity,
            };
            let purchasing = state.process.purchase(&request, &context);
            let Ok(outcome) = tokio::time::timeout(PURCHASE_WAIT, purchasing).await else {
                // The commit may still land: the order's address says what became of it.
                return pending(request.order_id);
            };
            let purchased = match outcome {
                Ok(purchased) => purchased,
                Err(PurchaseError::ProductUnavailable) => {
                    return Err(ApiError::NotFound("product"))
                }
                Err(PurchaseError::Refused(refusal)) => return Err(refusal.into()),
                Err(PurchaseError::Process(error)) => return Err(error.into()),
            };
            match purchased.order.status {
                OrderStatus::Confirmed => Answer::created(json!({
                    "order_id": request.order_id,
                    "status": "confirmed",
                    "total_cents": purchased.order.total_cents,
                    "balance_cents": purchased.balance_cents,
                    "version": purchased.order_version,
                })),
                _ => Err(failure(purchased.order.reason.as_deref())),
            }
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineRequest {
    product_id: String,
    quantity: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentRequest {
    method: String,
    card: Option<String>,
    paypal_email: Option<String>,
    bank_account: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderRequest {
    lines: Vec<LineRequest>,
    payment: PaymentRequest,
}

/// The gateway's token stands in for the card: the number goes no further than this function.
fn instrument(payment: &PaymentRequest) -> Result<PaymentInstrument, ApiError> {
    let method = PaymentMethod::parse(&payment.method)
        .map_err(|invalid| ApiError::field("payment.method", invalid.0))?;
    let (token, card_last4) = match method {
        PaymentMethod::Balance => (None, None),
        PaymentMethod::Card => {
            let number = payment
                .card
                .as_deref()
                .ok_or_else(|| ApiError::field("payment.card", "is required to pay by card"))?;
            let (token, last4) = tokenize_card(number)
                .map_err(|_| ApiError::field("payment.card", "is not a valid card number"))?;
            (Some(token), Some(last4))
        }
        PaymentMethod::Paypal => {
            let email = payment.paypal_email.as_deref().ok_or_else(|| {
                ApiError::field("payment.paypal_email", "is required to pay with PayPal")
            })?;
            eshop_domain::values::EmailAddress::parse(email)
                .map_err(|invalid| ApiError::field("payment.paypal_email", invalid.0))?;
            (Some(tokenize_paypal(email)), None)
        }
        PaymentMethod::BankTransfer => {
            let account = payment.bank_account.as_deref().unwrap_or_default().trim();
            if account.is_empty() || account.len() > 64 {
                return Err(ApiError::field(
                    "payment.bank_account",
                    "is required, up to 64 characters",
                ));
            }
            (None, None)
        }
    };
    Ok(PaymentInstrument {
        method,
        token,
        card_last4,
    })
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

/// Places the order, then answers 201 if it finished within `wait`, else 202 (and the order
/// goes on in the background).
async fn place_and_answer(
    state: &AppState,
    context: &CommandContext,
    order_id: Uuid,
    customer_id: Uuid,
    lines: Vec<OrderLine>,
    payment: PaymentInstrument,
    wait: Duration,
) -> Result<Answer, ApiError> {
    let placed = place(state, context, order_id, customer_id, lines, payment).await?;
    if wait.is_zero() {
        let process = state.process.clone();
        tokio::spawn(async move {
            if let Err(error) = process.advance_from(order_id, Some(placed)).await {
                tracing::warn!(%order_id, error = %error, "the order will finish in the background");
            }
        });
        return pending(order_id);
    }
    match wait_for_outcome(state, order_id, placed, wait).await {
        Some(_) => {
            let order = state.bus.load::<Order>(&order_id.to_string()).await?;
            Answer::created(view_of(order_id, &order.aggregate, order.version))
        }
        None => pending(order_id),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckoutRequest {
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
    let payment = instrument(&value.payment)?;
    let wait = preferred_wait(&headers);
    let state = &state;
    execute(
        state,
        &meta,
        &user.id.to_string(),
        user.actor(),
        &raw,
        |context| async move {
            let cart = state.bus.load::<Cart>(&user.id.to_string()).await?;
            if cart.aggregate.items.is_empty() {
                return Err(ApiError::Unprocessable {
                    code: "cart_empty",
                    detail: "the cart is empty".into(),
                });
            }
            let wanted: Vec<(Uuid, i64)> = cart
                .aggregate
                .items
                .iter()
                .map(|(id, qty)| (*id, *qty))
                .collect();
            let order_id = context.new_aggregate_id();
            let lines = priced_lines(state, &wanted).await?;
            // A command id of its own: one command id appends to one aggregate.
            let emptying = CommandContext::step(
                context.actor,
                context.request_id.clone(),
                &["checkout", &order_id.to_string()],
            )
            .correlated_with(context.correlation_id);
            state
                .bus
                .execute_with::<Cart, _>(
                    &user.id.to_string(),
                    CartCommand::CheckOut { order_id },
                    &emptying,
                    Some(cart.version),
                    |_| (),
                )
                .await?;
            place_and_answer(state, &context, order_id, user.id, lines, payment, wait).await
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
    let payment = instrument(&value.payment)?;
    let mut wanted = Vec::with_capacity(value.lines.len());
    for (index, line) in value.lines.iter().enumerate() {
        let product_id = line.product_id.parse::<Uuid>().map_err(|_| {
            ApiError::field(
                &format!("lines[{index}].product_id"),
                "must be a product id",
            )
        })?;
        wanted.push((product_id, line.quantity));
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
            let order_id = context.new_aggregate_id();
            let lines = priced_lines(state, &wanted).await?;
            place_and_answer(state, &context, order_id, user.id, lines, payment, wait).await
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
    let record = state
        .orders
        .get(id)
        .await?
        .ok_or(ApiError::NotFound("order"))?;
    visible_to(&user, record.customer_id)?;
    Answer::ok(OrderView::from(record)).map(Answer::into_response)
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
    let records = state.orders.for_customer(user.id, before, limit).await?;
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
    let order = state.bus.load::<Order>(&order_id.to_string()).await?;
    let customer_id = order
        .aggregate
        .customer_id
        .ok_or(ApiError::NotFound("order"))?;
    visible_to(&user, customer_id)?;
    let state = &state;
    execute(
        state,
        &meta,
        &user.id.to_string(),
        user.actor(),
        &serde_json::Value::Null,
        |context| async move {
            let executed = state
                .bus
                .execute_with::<Order, _>(
                    &order_id.to_string(),
                    OrderCommand::Cancel {
                        reason: "cancelled by the customer".into(),
                    },
                    &context,
                    meta.expected_version,
                    |order| view_of(order_id, order, 0),
                )
                .await?;
            // Undo the reservations now; the order worker would do it too.
            if let Err(error) = state.process.advance(order_id).await {
                tracing::warn!(%order_id, error = %error, "the cancellation will be undone in the background");
            }
            Answer::ok(OrderView {
                version: executed.version,
                ..executed.aggregate
            })
        },
    )
    .await
}
