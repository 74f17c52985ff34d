//! The visitor's orders: `GET /orders` (history), `GET /orders/{id}` (lines, payment, status)
//! and `GET /orders/{id}/events`, the status as Server-Sent Events: the order's own events
//! from the event stream wake it, and each one re-reads the order through the API.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use eshop_commands::orders::FailureReason;

use crate::error::order_failure;
use crate::web::client::Caller;
use crate::web::page::{money, store_page, Html, PageError};
use crate::web::session::Visitor;
use crate::web::store::{
    api_list_path, chrome, next_page_link, parse_id, products_by_id, signed_in,
};
use crate::web::WebState;

#[derive(Deserialize)]
pub struct Order {
    id: Uuid,
    /// As the API names it: `placed`, `stock_reserved`, `paid`, `confirmed`, `failed`, ...
    status: String,
    reason: Option<String>,
    lines: Vec<OrderLine>,
    total_cents: i64,
    payment: Payment,
    #[serde(default)]
    timeline: Vec<Moment>,
    created_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct OrderLine {
    product_id: Uuid,
    quantity: i64,
    unit_price_cents: i64,
}

#[derive(Deserialize)]
struct Payment {
    method: String,
    card_last4: Option<String>,
}

#[derive(Deserialize)]
struct Moment {
    status: String,
    at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct OrderPage {
    items: Vec<Order>,
    next_cursor: Option<String>,
}

impl Order {
    /// No more changes will come.
    fn is_settled(&self) -> bool {
        matches!(self.status.as_str(), "confirmed" | "failed" | "cancelled")
    }
}

fn label(status: &str) -> String {
    status.replace('_', " ")
}

/// What `#order-status` holds: the status, and why it failed (the API's sentence for it).
fn status_markup(order: &Order) -> Markup {
    html! {
        span class="status" data-status=(order.status) { (label(&order.status)) }
        @if order.status == "failed" {
            @let reason = order.reason.as_deref().and_then(FailureReason::parse);
            p class="flash error" role="alert" { "Not placed: " (order_failure(reason).1) "." }
        }
        @if order.status == "cancelled" {
            @if let Some(reason) = &order.reason { p class="muted" { (reason) } }
        }
    }
}

fn api_path(id: Uuid) -> String {
    format!("/api/orders/{id}")
}

pub async fn show(
    State(web): State<WebState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Html, PageError> {
    let id = parse_id(&id)?;
    let visitor = signed_in(visitor, &format!("/orders/{id}"))?;
    let order: Order = web.api.get(&visitor.caller, &api_path(id)).await?;
    let products = products_by_id(&web, &visitor, order.lines.iter().map(|l| l.product_id)).await;
    let chrome = chrome(&web, &visitor, None).await;
    let live = (!order.is_settled()).then(|| format!("/orders/{id}/events"));
    let body = html! {
        h1 { "Order " code { (short(order.id)) } }
        div id="order-status" data-status=(order.status) data-live=[live] aria-live="polite" {
            (status_markup(&order))
        }
        table id="order-lines" {
            thead { tr { th { "Product" } th { "Quantity" } th { "Price" } th { "Subtotal" } } }
            tbody {
                @for line in &order.lines {
                    tr {
                        td {
                            a href={ "/products/" (line.product_id) } {
                                (products.get(&line.product_id).map_or("(no longer sold)", |p| p.title.as_str()))
                            }
                        }
                        td { (line.quantity) }
                        td { (money(line.unit_price_cents)) }
                        td { (money(line.unit_price_cents * line.quantity)) }
                    }
                }
            }
        }
        p { "Total: " span class="price" { (money(order.total_cents)) } }
        p { "Paid with " (payment_text(&order.payment)) }
        h2 { "History" }
        ol class="timeline" {
            @for moment in &order.timeline {
                li { (moment.at.format("%Y-%m-%d %H:%M:%S")) " — " (label(&moment.status)) }
            }
        }
    };
    Ok(store_page(&visitor, &chrome, "Order", body))
}

fn short(id: Uuid) -> String {
    id.simple().to_string()[..8].to_string()
}

fn payment_text(payment: &Payment) -> String {
    match (payment.method.as_str(), &payment.card_last4) {
        ("balance", _) => "the wallet".into(),
        ("card", Some(last4)) => format!("the card ending {last4}"),
        (method, _) => label(method),
    }
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    page: String,
}

pub async fn list(
    State(web): State<WebState>,
    visitor: Visitor,
    Query(query): Query<ListQuery>,
) -> Result<Html, PageError> {
    let visitor = signed_in(visitor, "/orders")?;
    let path = api_list_path("/api/orders", &[("limit", "20"), ("page", &query.page)]);
    let orders: OrderPage = web.api.get(&visitor.caller, &path).await?;
    let chrome = chrome(&web, &visitor, None).await;
    let body = html! {
        h1 { "Your orders" }
        @if orders.items.is_empty() { p class="muted" { "No orders yet." } }
        @else {
            table id="orders" {
                thead { tr { th { "Order" } th { "Placed" } th { "Status" } th { "Total" } } }
                tbody {
                    @for order in &orders.items {
                        tr class="order-row" {
                            td { a href={ "/orders/" (order.id) } { (short(order.id)) } }
                            td { @if let Some(at) = order.created_at { (at.format("%Y-%m-%d %H:%M")) } }
                            td { span class="status" data-status=(order.status) { (label(&order.status)) } }
                            td { (money(order.total_cents)) }
                        }
                    }
                }
            }
        }
        (next_page_link("/orders", &[("page", &query.page)], orders.next_cursor.as_deref()))
    };
    Ok(store_page(&visitor, &chrome, "Orders", body))
}

/// One SSE message: what `#order-status` shows now (app.js swaps it in), its `data-status`,
/// and whether the stream ends.
fn update(order: &Order) -> Event {
    let data = json!({
        "html": status_markup(order).into_string(),
        "attributes": { "data-status": order.status },
        "done": order.is_settled(),
    });
    Event::default().data(data.to_string())
}

/// Follows one order: its current state first, then a fresh read after each of its events,
/// until it is settled.
struct Following {
    web: WebState,
    caller: Caller,
    id: Uuid,
    wake: Option<async_nats::Subscriber>,
    current: Option<Order>,
    settled: bool,
    until: tokio::time::Instant,
}

/// How long one connection follows an order. A stream that never ends would hold the server's
/// graceful shutdown open; the browser's `EventSource` opens the next one by itself.
const FOLLOWED_AT_MOST: Duration = Duration::from_secs(30);

impl Following {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        if self.settled {
            return None;
        }
        let order = match self.current.take() {
            Some(order) => order,
            None => {
                // Without the event stream (it failed to subscribe), or after `FOLLOWED_AT_MOST`,
                // end: the browser reconnects after its retry delay and reads the order again.
                let woken = tokio::time::timeout_at(self.until, self.wake.as_mut()?.next());
                woken.await.ok()??;
                match self
                    .web
                    .api
                    .get::<Order>(&self.caller, &api_path(self.id))
                    .await
                {
                    Ok(order) => order,
                    Err(problem) => {
                        tracing::warn!(code = %problem.code, "an order's live page could not read it");
                        return None;
                    }
                }
            }
        };
        self.settled = order.is_settled();
        Some((Ok(update(&order)), self))
    }

    fn into_stream(self) -> impl Stream<Item = Result<Event, Infallible>> {
        futures::stream::unfold(self, Self::next)
    }
}

pub async fn events(
    State(web): State<WebState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    let visitor = signed_in(visitor, &format!("/orders/{id}"))?;
    // Subscribed before the first read: an event between the two still wakes the stream.
    let subject = web.app.subjects.subject("order", &id.to_string());
    let wake = match web.app.jetstream.client().subscribe(subject).await {
        Ok(subscriber) => Some(subscriber),
        Err(error) => {
            tracing::warn!(%error, "an order's live page cannot follow its events");
            None
        }
    };
    let current: Order = web.api.get(&visitor.caller, &api_path(id)).await?;
    let following = Following {
        web,
        caller: visitor.caller,
        id,
        wake,
        current: Some(current),
        settled: false,
        until: tokio::time::Instant::now() + FOLLOWED_AT_MOST,
    };
    Ok(Sse::new(following.into_stream())
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
