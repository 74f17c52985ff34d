//! `/admin/projections`: how far each read model got, how far behind it is, its last error,
//! and a button that rebuilds it (a task, whose page follows the rebuild).

use axum::extract::Path;
use axum::http::Method;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use crate::web::admin::{segment, table, task_page, Console, Empty};
use crate::web::form::Form;
use crate::web::page::csrf_field;

#[derive(Deserialize)]
pub struct Projection {
    name: String,
    position: i64,
    lag_events: u64,
    lag_seconds: f64,
    status: String,
    last_error: Option<String>,
    rebuild: Option<Rebuild>,
}

#[derive(Deserialize)]
pub struct Rebuild {
    phase: String,
    percent: u8,
}

pub async fn list(console: Console) -> Response {
    let answer = console
        .get::<Vec<Projection>>("/api/admin/projections")
        .await;
    console.render("Projections", answer, |projections| {
        html! {
            h1 { "Projections" }
            (table(
                "projections",
                "projection",
                &["Name", "Position", "Behind (events)", "Lag (s)", "Status", "Last error", "Last rebuild", ""],
                &projections,
                |projection| html! {
                    td { (projection.name) }
                    td { (projection.position) }
                    td { (projection.lag_events) }
                    td { (format!("{:.1}", projection.lag_seconds)) }
                    td { span class="status" data-status=(projection.status) { (projection.status) } }
                    td { @if let Some(error) = &projection.last_error { code { (error) } } }
                    td { @if let Some(rebuild) = &projection.rebuild { (rebuild.phase) " " (rebuild.percent) "%" } }
                    td {
                        @if console.web.app.is_read_model(&projection.name) {
                            form class="rebuild inline" method="post"
                                action={ "/admin/projections/" (segment(&projection.name)) "/rebuild" }
                                data-confirm={ "Rebuild " (projection.name) " from the event store?" } {
                                (csrf_field(&console.visitor))
                                button type="submit" class="secondary" { "Rebuild" }
                            }
                        }
                    }
                },
            ))
        }
    })
}

/// Queues the rebuild, then shows its task.
pub async fn rebuild(console: Console, Path(name): Path<String>, Form(_): Form<Empty>) -> Response {
    console
        .command(
            Method::POST,
            &format!("/api/admin/projections/{}/rebuild", segment(&name)),
            None::<&()>,
            "/admin/projections",
            task_page,
        )
        .await
}
