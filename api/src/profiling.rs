//! `Server-Timing` on every answer: the database time and statement count, what the cache did
//! and the total (`db;dur=1.9;desc="2 queries", cache;dur=0.3;desc="miss", total;dur=4.2`); a
//! movie list page assembled from cached cards also says how many it found and loaded
//! (`fragments;desc="18 cached, 2 loaded"`). The statements are those recorded in the request's
//! profile (`eshop_infra::profile`): the movies reads and anything else that records there.
//! With `ESHOP_PROFILE_SQL=true` the request's log line lists each statement and its duration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use eshop_infra::profile::Profile;

use crate::state::AppState;

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The header's value for a finished request.
pub fn header_value(profile: &Profile, total: Duration) -> String {
    let (count, database) = profile.database();
    let noun = if count == 1 { "query" } else { "queries" };
    let mut value = format!("db;dur={:.1};desc=\"{count} {noun}\"", millis(database));
    if let (Some(outcome), spent) = profile.cache() {
        value.push_str(&format!(
            ", cache;dur={:.1};desc=\"{}\"",
            millis(spent),
            outcome.as_str()
        ));
    }
    if let Some((cached, loaded)) = profile.fragments() {
        value.push_str(&format!(
            ", fragments;desc=\"{cached} cached, {loaded} loaded\""
        ));
    }
    value.push_str(&format!(", total;dur={:.1}", millis(total)));
    value
}

pub async fn server_timing(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let profile = Arc::new(Profile::default());
    let mut response = profile.clone().scope(next.run(request)).await;
    let total = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&header_value(&profile, total)) {
        response.headers_mut().insert("server-timing", value);
    }
    if state.profile_sql {
        let statements: Vec<String> = profile
            .statements()
            .iter()
            .map(|(label, spent)| format!("{label} {:.2}ms", millis(*spent)))
            .collect();
        tracing::info!(
            statements = %statements.join(", "),
            total_ms = millis(total),
            "sql profile"
        );
    }
    response
}
