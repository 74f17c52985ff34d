//! The economic calendar: `GET /calendar?from=&to=&page=`, a table of the API's entries.

use axum::extract::{Query, State};
use maud::html;
use serde::Deserialize;

use crate::web::page::{store_page, Html, PageError};
use crate::web::session::Visitor;
use crate::web::store::{api_list_path, chrome, next_page_link};
use crate::web::WebState;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    page: String,
}

#[derive(Deserialize)]
struct CalendarEntry {
    date: String,
    time: String,
    time_zone: String,
    name: String,
    country: String,
    importance: String,
    actual: Option<String>,
    forecast: Option<String>,
    previous: Option<String>,
}

#[derive(Deserialize)]
struct CalendarPage {
    items: Vec<CalendarEntry>,
    next_cursor: Option<String>,
}

pub async fn list(
    State(web): State<WebState>,
    visitor: Visitor,
    Query(query): Query<ListQuery>,
) -> Result<Html, PageError> {
    let pairs = [
        ("from", query.from.as_str()),
        ("to", &query.to),
        ("page", &query.page),
    ];
    let entries: CalendarPage = web
        .api
        .get(
            &visitor.caller,
            &api_list_path("/api/calendar/events", &pairs),
        )
        .await?;
    let chrome = chrome(&web, &visitor, None).await;
    let body = html! {
        h1 { "Economic calendar" }
        form id="calendar-filters" class="filters" method="get" action="/calendar" {
            label for="calendar-from" { "From" }
            input id="calendar-from" type="date" name="from" value=(query.from);
            label for="calendar-to" { "To" }
            input id="calendar-to" type="date" name="to" value=(query.to);
            button type="submit" { "Show" }
        }
        table id="calendar" {
            thead { tr { th { "Date" } th { "Time" } th { "Country" } th { "Event" } th { "Importance" } th { "Actual" } th { "Forecast" } th { "Previous" } } }
            tbody {
                @for entry in &entries.items {
                    tr class="calendar-entry" {
                        td { (entry.date) }
                        td { (entry.time) " " span class="muted" { (entry.time_zone) } }
                        td { (entry.country) }
                        td { (entry.name) }
                        td { (entry.importance) }
                        td { (entry.actual.as_deref().unwrap_or("")) }
                        td { (entry.forecast.as_deref().unwrap_or("")) }
                        td { (entry.previous.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        (next_page_link("/calendar", &pairs, entries.next_cursor.as_deref()))
    };
    Ok(store_page(&visitor, &chrome, "Calendar", body))
}
