//! The operations console (`/admin`): admins, and auditors where reading is enough.

use axum::routing::get;
use axum::Router;
use maud::html;

use crate::web::page::{document, Html, PageError};
use crate::web::session::Visitor;
use crate::web::WebState;

pub fn router() -> Router<WebState> {
    Router::new().route("/admin", get(overview))
}

/// The visitor, when they may see the console; otherwise sign in first (or 403 from the API's
/// own answer when signed in without the role).
pub fn console_visitor(visitor: Visitor, path: &str) -> Result<Visitor, PageError> {
    if !visitor.is_signed_in() {
        return Err(PageError::SignIn(path.to_string()));
    }
    if !visitor.sees_console() {
        return Err(PageError::Api(crate::web::client::Problem {
            status: 403,
            code: "forbidden".into(),
            title: "The console is for admins and auditors.".into(),
            ..Default::default()
        }));
    }
    Ok(visitor)
}

async fn overview(visitor: Visitor) -> Result<Html, PageError> {
    let visitor = console_visitor(visitor, "/admin")?;
    let nav = crate::web::page::store_nav(&visitor, &Default::default());
    Ok(Html::new(document(
        "Console",
        nav,
        None,
        html! { h1 { "Operations console" } },
    )))
}
