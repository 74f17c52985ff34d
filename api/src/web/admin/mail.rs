//! `/admin/mail`: the mail sent-log, newest first, by status.

use axum::extract::Query;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::html;
use serde::Deserialize;

use crate::web::admin::{query, table, when, Console};

const PAGE_SIZE: usize = 50;
const STATUSES: [&str; 4] = ["pending", "sent", "failed", "skipped"];

#[derive(Deserialize)]
pub struct Mail {
    template: String,
    recipient: Option<String>,
    subject: Option<String>,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
pub struct MailLog {
    items: Vec<Mail>,
}

/// `?status=&before=`.
#[derive(Deserialize, Default)]
pub struct Filters {
    #[serde(default)]
    status: String,
    #[serde(default)]
    before: String,
}

pub async fn list(console: Console, Query(filters): Query<Filters>) -> Response {
    let limit = PAGE_SIZE.to_string();
    let answer = console
        .get::<MailLog>(&format!(
            "/api/admin/emails{}",
            query(&[
                ("status", &filters.status),
                ("before", &filters.before),
                ("limit", &limit)
            ])
        ))
        .await;
    console.render("Mail log", answer, |log| {
        let older = (log.items.len() == PAGE_SIZE)
            .then(|| log.items.last())
            .flatten()
            .map(|mail| mail.created_at.to_rfc3339());
        html! {
            h1 { "Mail log" }
            form id="mail-filters" class="filters" method="get" action="/admin/mail" {
                label { "Status "
                    select name="status" {
                        option value="" { "any" }
                        @for status in STATUSES {
                            option value=(status) selected[filters.status == status] { (status) }
                        }
                    }
                }
                button type="submit" { "Show" }
            }
            (table(
                "mail",
                "mail",
                &["Recorded", "Template", "To", "Subject", "Status", "Attempts", "Sent", "Last error"],
                &log.items,
                |mail| html! {
                    td { (when(&mail.created_at)) }
                    td { code { (mail.template) } }
                    td { (mail.recipient.as_deref().unwrap_or("(erased)")) }
                    td { (mail.subject.as_deref().unwrap_or_default()) }
                    td { span class="status" data-status=(mail.status) { (mail.status) } }
                    td { (mail.attempts) }
                    td { @if let Some(sent) = &mail.sent_at { (when(sent)) } }
                    td { @if let Some(error) = &mail.last_error { span class="field-error" { (error) } } }
                },
            ))
            @if let Some(before) = older {
                nav class="pagination" {
                    a rel="next" href={ "/admin/mail" (query(&[("status", &filters.status), ("before", &before)])) } { "Older →" }
                }
            }
        }
    })
}
