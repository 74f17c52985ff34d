//! The event history: the global feed with the API's filters, one stream, and an aggregate's
//! state as of a moment (`/api/audit/...`, which auditors read too).

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use crate::web::admin::{form_time, pretty, query, segment, table, when, Console};

/// An event as the audit endpoints answer it.
#[derive(Deserialize)]
pub struct Event {
    position: i64,
    aggregate_type: String,
    aggregate_id: String,
    sequence: u64,
    event_type: String,
    recorded_at: DateTime<Utc>,
    #[serde(default)]
    metadata: Value,
    #[serde(default)]
    payload: Value,
}

#[derive(Deserialize)]
pub struct Feed {
    items: Vec<Event>,
    next_after: Option<i64>,
}

/// `?aggregate_type=&aggregate_id=&event_type=&actor=&correlation_id=&from=&to=&after=`.
#[derive(Deserialize, Default)]
pub struct Filters {
    #[serde(default)]
    aggregate_type: String,
    #[serde(default)]
    aggregate_id: String,
    #[serde(default)]
    event_type: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    correlation_id: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    after: String,
}

const PAGE_SIZE: &str = "50";

impl Filters {
    /// The filters as a query string, starting after `after`.
    fn query(&self, after: &str, with_limit: bool) -> String {
        let from = form_time(&self.from).unwrap_or_default();
        let to = form_time(&self.to).unwrap_or_default();
        query(&[
            ("aggregate_type", &self.aggregate_type),
            ("aggregate_id", &self.aggregate_id),
            ("event_type", &self.event_type),
            ("actor", &self.actor),
            ("correlation_id", &self.correlation_id),
            ("from", &from),
            ("to", &to),
            ("after", after),
            ("limit", if with_limit { PAGE_SIZE } else { "" }),
        ])
    }
}

pub async fn feed(console: Console, Query(filters): Query<Filters>) -> Response {
    let answer = console
        .get::<Feed>(&format!(
            "/api/audit/events{}",
            filters.query(&filters.after, true)
        ))
        .await;
    let form = filter_form(&filters);
    console.render("Events", answer, |feed| {
        html! {
            h1 { "Events" }
            (form)
            (event_table("events", &feed.items, true))
            @if let Some(next) = feed.next_after {
                nav class="pagination" {
                    a rel="next" href={ "/admin/events" (filters.query(&next.to_string(), false)) } { "Later positions →" }
                }
            }
        }
    })
}

fn filter_form(filters: &Filters) -> Markup {
    let field = |name: &str, label: &str, value: &str, placeholder: &str| {
        html! {
            label { (label) input name=(name) value=(value) placeholder=(placeholder); }
        }
    };
    html! {
        form id="event-filters" class="filters" method="get" action="/admin/events" {
            (field("aggregate_type", "Aggregate type", &filters.aggregate_type, "order"))
            (field("aggregate_id", "Aggregate id", &filters.aggregate_id, ""))
            (field("event_type", "Event type", &filters.event_type, "OrderPlaced"))
            (field("actor", "Actor", &filters.actor, "user id or system"))
            (field("correlation_id", "Correlation", &filters.correlation_id, ""))
            (field("from", "From (UTC)", &filters.from, "2026-01-01T00:00"))
            (field("to", "To (UTC)", &filters.to, ""))
            button type="submit" { "Filter" }
            a href="/admin/events" { "Clear" }
        }
    }
}

/// Events as rows of class `event`; `linked`: each names its stream with a link.
fn event_table(id: &str, events: &[Event], linked: bool) -> Markup {
    table(
        id,
        "event",
        &[
            "Position", "Recorded", "Stream", "Seq", "Type", "Actor", "Payload",
        ],
        events,
        |event| {
            let stream = format!(
                "/admin/streams/{}/{}",
                segment(&event.aggregate_type),
                segment(&event.aggregate_id)
            );
            html! {
                td { (event.position) }
                td { (when(&event.recorded_at)) }
                td {
                    @if linked { a href=(stream) { (event.aggregate_type) " " (event.aggregate_id) } }
                    @else { (event.aggregate_type) " " (event.aggregate_id) }
                }
                td {
                    @if linked { (event.sequence) }
                    @else { a href={ (stream) "?version=" (event.sequence) } title="State at this version" { (event.sequence) } }
                }
                td { code { (event.event_type) } }
                td { (event.metadata.get("actor").map(actor).unwrap_or_default()) }
                td { details { summary { "payload" } pre { (pretty(&event.payload)) } } }
            }
        },
    )
}

fn actor(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[derive(Deserialize)]
pub struct AggregateState {
    version: u64,
    recorded_at: DateTime<Utc>,
    state: Value,
}

/// `?as_of=` (a time) or `?version=`; neither: the latest state.
#[derive(Deserialize, Default)]
pub struct StateQuery {
    #[serde(default)]
    as_of: String,
    #[serde(default)]
    version: String,
}

pub async fn stream(
    console: Console,
    Path((aggregate_type, aggregate_id)): Path<(String, String)>,
    Query(wanted): Query<StateQuery>,
) -> Response {
    let base = format!(
        "/api/audit/streams/{}/{}",
        segment(&aggregate_type),
        segment(&aggregate_id)
    );
    let history = console.get::<Vec<Event>>(&base).await;
    let title = format!("{aggregate_type} {aggregate_id}");
    let history = match history {
        Ok(history) => history,
        Err(problem) => return console.refused(&title, problem, Some("/admin/events")),
    };
    let latest = history.last().map(|event| event.sequence.to_string());
    let as_of = form_time(&wanted.as_of).unwrap_or_default();
    let version = match (as_of.is_empty(), wanted.version.trim().is_empty()) {
        (true, true) => latest.unwrap_or_default(),
        (true, false) => wanted.version.trim().to_string(),
        (false, _) => String::new(),
    };
    let state = console
        .get::<AggregateState>(&format!(
            "{base}/state{}",
            query(&[("as_of", &as_of), ("version", &version)])
        ))
        .await;
    console
        .page(
            &title,
            html! {
            h1 { (aggregate_type) " " code { (aggregate_id) } }
            p { a href={ "/admin/events" (query(&[("aggregate_type", &aggregate_type), ("aggregate_id", &aggregate_id)])) } { "In the feed" } }
            section id="state-as-of" {
                h2 { "State" }
                form id="as-of" method="get" {
                    label { "As of (UTC)" input name="as_of" value=(wanted.as_of) placeholder="2026-01-01T12:00"; }
                    button type="submit" { "Show" }
                }
                @match &state {
                    Ok(state) => {
                        p class="muted" { "Version " (state.version) ", last event recorded " (when(&state.recorded_at)) }
                        pre id="state" { (pretty(&state.state)) }
                    }
                    Err(problem) => {
                        p class="flash error" role="alert" { (problem.message()) }
                        pre id="state" {}
                    }
                }
            }
            section {
                h2 { "History" }
                (event_table("history", &history, false))
            }
            },
        )
        .into_response()
}
