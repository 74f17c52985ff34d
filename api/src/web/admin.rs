//! The operations console (`/admin`): admins, and auditors where reading is enough.
//!
//! Every page reads the JSON API with the visitor's token, so the API's roles decide: an
//! auditor reads the event history, and a page or form that needs the admin role shows the
//! API's refusal. Only the overview's charts and status table read the process's own figures
//! (the same ones `/metrics` shows).

pub mod events;
pub mod live;
pub mod mail;
pub mod overview;
pub mod projections;
pub mod schedules;
pub mod tasks;
pub mod users;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{html, Markup};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::web::client::Problem;
use crate::web::page::{document, see_other, store_nav, Chrome, Flash, Html, PageError};
use crate::web::session::Visitor;
use crate::web::WebState;

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/admin", get(overview::page))
        .route("/admin/live", get(overview::live))
        .route("/admin/events", get(events::feed))
        .route(
            "/admin/streams/{aggregate_type}/{aggregate_id}",
            get(events::stream),
        )
        .route("/admin/projections", get(projections::list))
        .route(
            "/admin/projections/{name}/rebuild",
            post(projections::rebuild),
        )
        .route("/admin/tasks", get(tasks::list))
        .route("/admin/tasks/sales-report", post(tasks::sales_report))
        .route("/admin/tasks/{id}", get(tasks::show))
        .route("/admin/tasks/{id}/live", get(tasks::live))
        .route(
            "/admin/schedules",
            get(schedules::list).post(schedules::create),
        )
        .route("/admin/schedules/{id}", get(schedules::show))
        .route("/admin/schedules/{id}/pause", post(schedules::pause))
        .route("/admin/schedules/{id}/resume", post(schedules::resume))
        .route("/admin/schedules/{id}/retime", post(schedules::retime))
        .route("/admin/schedules/{id}/runs/live", get(schedules::live_runs))
        .route("/admin/mail", get(mail::list))
        .route("/admin/users", get(users::list))
        .route("/admin/users/{id}/roles", post(users::grant_role))
        .route(
            "/admin/users/{id}/roles/{role}/revoke",
            post(users::revoke_role),
        )
        .route("/admin/users/{id}/deactivate", post(users::deactivate))
        .route("/admin/users/{id}/reactivate", post(users::reactivate))
        .route("/admin/users/{id}/erase", post(users::erase))
}

/// The console's pages, in the sidebar's order: (path, label, whether auditors read it).
const SECTIONS: [(&str, &str, bool); 7] = [
    ("/admin", "Overview", true),
    ("/admin/events", "Events", true),
    ("/admin/projections", "Projections", false),
    ("/admin/tasks", "Tasks", false),
    ("/admin/schedules", "Schedules", false),
    ("/admin/mail", "Mail log", false),
    ("/admin/users", "Users", false),
];

/// What a redirect after a form says on the next page (`?notice=`): only these texts, so a
/// link cannot make the console say anything else.
const NOTICES: [(&str, &str); 10] = [
    ("created", "The schedule was created."),
    ("paused", "The schedule is paused."),
    ("resumed", "The schedule runs again."),
    ("retimed", "The schedule has its new time."),
    ("granted", "The role was granted."),
    ("revoked", "The role was revoked."),
    (
        "deactivated",
        "The account was deactivated; its sessions ended.",
    ),
    ("reactivated", "The account was reactivated."),
    ("erased", "The account's personal data was erased."),
    ("started", "The task was queued."),
];

/// A console request: a signed-in admin or auditor, the state, and the notice to show.
#[derive(Clone)]
pub struct Console {
    pub web: WebState,
    pub visitor: Visitor,
    notice: Option<&'static str>,
    /// The sidebar's entry this page belongs to.
    section: &'static str,
}

impl FromRequestParts<WebState> for Console {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, web: &WebState) -> Result<Self, PageError> {
        let visitor = Visitor::from_request_parts(parts, web)
            .await
            .unwrap_or_else(|never| match never {});
        let visitor = console_visitor(visitor, parts.uri.path())?;
        let notice = parts
            .uri
            .query()
            .and_then(|query| serde_urlencoded::from_str::<Vec<(String, String)>>(query).ok())
            .and_then(|pairs| {
                pairs
                    .into_iter()
                    .find(|(name, _)| name == "notice")
                    .map(|(_, code)| code)
            })
            .and_then(|code| {
                NOTICES
                    .iter()
                    .find(|(known, _)| *known == code)
                    .map(|(_, text)| *text)
            });
        // One stream's page belongs with the feed it is reached from.
        let path = match parts.uri.path() {
            stream if stream.starts_with("/admin/streams/") => "/admin/events",
            path => path,
        };
        let section = SECTIONS
            .iter()
            .rev()
            .map(|(link, _, _)| *link)
            .find(|link| path == *link || path.starts_with(&format!("{link}/")))
            .unwrap_or("/admin");
        Ok(Self {
            web: web.clone(),
            visitor,
            notice,
            section,
        })
    }
}

/// The visitor, when they may see the console; otherwise sign in first (or 403 when signed in
/// without the role).
pub fn console_visitor(visitor: Visitor, path: &str) -> Result<Visitor, PageError> {
    if !visitor.is_signed_in() {
        return Err(PageError::SignIn(path.to_string()));
    }
    if !visitor.sees_console() {
        return Err(PageError::Api(Problem {
            status: 403,
            code: "forbidden".into(),
            title: "The console is for admins and auditors.".into(),
            ..Default::default()
        }));
    }
    Ok(visitor)
}

impl Console {
    pub fn is_admin(&self) -> bool {
        self.visitor.has_role(eshop_domain::values::Role::Admin)
    }

    /// Whether the API lets this session read the console now (a page that shows the process's
    /// own figures asks, since the session cookie alone does not say whether it was revoked).
    pub async fn may_read(&self) -> Result<(), Problem> {
        self.get::<serde_json::Value>("/api/audit/events?limit=1")
            .await
            .map(|_| ())
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Problem> {
        self.web.api.get(&self.visitor.caller, path).await
    }

    /// A console page: the site's header, the sidebar, then `body`.
    pub fn page(&self, title: &str, body: Markup) -> Html {
        let flash = self.notice.map(|text| Flash::Notice(text.to_string()));
        self.frame(title, flash.as_ref(), body)
    }

    fn frame(&self, title: &str, flash: Option<&Flash>, body: Markup) -> Html {
        let admin = self.is_admin();
        let frame = html! {
            div class="layout-console" {
                aside id="console-nav" {
                    @for (path, label, auditors) in SECTIONS {
                        @if admin || auditors {
                            a href=(path) aria-current=[(path == self.section).then_some("page")] { (label) }
                        }
                    }
                }
                section class="console-page" { (body) }
            }
        };
        Html::new(document(
            title,
            store_nav(&self.visitor, &Chrome::default()),
            flash,
            frame,
        ))
    }

    /// The page for `answer`: `body` of its value, or the API's refusal in the console frame.
    pub fn render<T>(
        &self,
        title: &str,
        answer: Result<T, Problem>,
        body: impl FnOnce(T) -> Markup,
    ) -> Response {
        match answer {
            Ok(value) => self.page(title, body(value)).into_response(),
            Err(problem) => self.refused(title, problem, None),
        }
    }

    /// The API's refusal as a console page with its status (a lost session: sign in again).
    pub fn refused(&self, title: &str, problem: Problem, back: Option<&str>) -> Response {
        if problem.status == 401 {
            return PageError::Api(problem).into_response();
        }
        let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_GATEWAY);
        let body = html! {
            h1 { (title) }
            @if let Some(back) = back { p { a href=(back) { "Back" } } }
        };
        self.frame(title, Some(&Flash::error(&problem)), body)
            .with_status(status)
            .into_response()
    }

    /// Sends a form's command to the API; on success 303 to where `next` says (given the
    /// answer), otherwise the refusal with a link back.
    pub async fn command<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        back: &str,
        next: impl FnOnce(serde_json::Value) -> String,
    ) -> Response {
        match self
            .web
            .api
            .send::<B, serde_json::Value>(&self.visitor.caller, method, path, body)
            .await
        {
            Ok(answer) => see_other(&next(answer)),
            Err(problem) => self.refused("Not done", problem, Some(back)),
        }
    }
}

/// Where a command that queued a task goes next: that task's page.
pub fn task_page(answer: serde_json::Value) -> String {
    match answer["task_id"].as_str() {
        Some(task) => format!("/admin/tasks/{}?notice=started", segment(task)),
        None => "/admin/tasks".to_string(),
    }
}

/// A form with nothing but its CSRF token (which `Form` checks).
#[derive(Deserialize)]
pub struct Empty {}

/// A table of `rows`, each a `tr` of class `row_class` holding the cells `cells` draws.
pub fn table<T>(
    id: &str,
    row_class: &str,
    headers: &[&str],
    rows: &[T],
    cells: impl Fn(&T) -> Markup,
) -> Markup {
    html! {
        table id=(id) {
            thead { tr { @for header in headers { th { (header) } } } }
            tbody {
                @for row in rows { tr class=(row_class) { (cells(row)) } }
                @if rows.is_empty() {
                    tr class="empty" { td colspan=(headers.len()) class="muted" { "Nothing here yet." } }
                }
            }
        }
    }
}

/// A time as the console shows it (UTC, to the second).
pub fn when(time: &DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A time from a form: RFC 3339 as is, a `datetime-local` value (no zone) read as UTC, empty
/// as absent. Anything else goes to the API as typed, which says what is wrong with it.
pub fn form_time(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    if DateTime::parse_from_rfc3339(raw).is_ok() {
        return Some(raw.to_string());
    }
    ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(raw, format).ok())
        .map(|time| time.and_utc().to_rfc3339())
        .or_else(|| Some(raw.to_string()))
}

/// One path segment percent-encoded (an aggregate id may hold anything).
pub fn segment(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// A query string of the non-empty pairs (with its `?`), or nothing.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let present: Vec<_> = pairs
        .iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .collect();
    if present.is_empty() {
        return String::new();
    }
    format!(
        "?{}",
        serde_urlencoded::to_string(present).unwrap_or_default()
    )
}

/// JSON as indented text for a `pre`.
pub fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_form_time_reads_as_utc_and_a_zoned_one_stays() {
        assert_eq!(
            form_time("2026-01-02T03:04").as_deref(),
            Some("2026-01-02T03:04:00+00:00")
        );
        assert_eq!(
            form_time("2026-01-02T03:04:05+02:00").as_deref(),
            Some("2026-01-02T03:04:05+02:00")
        );
        assert_eq!(form_time("  "), None);
        assert_eq!(form_time("soon").as_deref(), Some("soon"));
    }

    #[test]
    fn a_segment_keeps_only_unreserved_bytes() {
        assert_eq!(segment("order"), "order");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn a_query_leaves_out_empty_values() {
        assert_eq!(query(&[("a", ""), ("b", " ")]), "");
        assert_eq!(query(&[("a", "x y"), ("b", "")]), "?a=x+y");
    }
}
