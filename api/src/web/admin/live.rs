//! Server-Sent Events for the console's live parts (`data-live`, see `/assets/app.js`): each
//! message is JSON `{html, done}`, the html rendered (so escaped) by maud.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use maud::Markup;
use serde::Serialize;

/// What replaces a live element's content.
#[derive(Serialize)]
pub struct Update {
    html: String,
    /// The last message: the browser stops listening.
    done: bool,
}

impl Update {
    pub fn new(markup: Markup, done: bool) -> Self {
        Self {
            html: markup.into_string(),
            done,
        }
    }
}

/// Asks `next` at once and then every `period`, and sends each update unlike the one before.
/// The stream ends after an update that is `done`, or when `next` has none (the API stopped
/// answering this visitor: the page keeps what it shows).
pub fn poll<F, Fut>(period: Duration, next: F) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Option<Update>> + Send + 'static,
{
    struct Polling<F> {
        next: F,
        last: Option<String>,
        first: bool,
    }
    let start = Polling {
        next,
        last: None,
        first: true,
    };
    let stream = futures::stream::unfold(Some(start), move |polling| async move {
        let mut polling = polling?;
        loop {
            if !polling.first {
                tokio::time::sleep(period).await;
            }
            polling.first = false;
            let update = (polling.next)().await?;
            let json = serde_json::to_string(&update).ok()?;
            if polling.last.as_deref() == Some(json.as_str()) {
                continue;
            }
            polling.last = Some(json.clone());
            let following = (!update.done).then_some(polling);
            return Some((Ok(Event::default().data(json)), following));
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
