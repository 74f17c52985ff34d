//! `GET /metrics`: Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = String::new();
    let mut gauge = |name: &str, help: &str, value: String| {
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    let relay = &state.relay;
    gauge(
        "eshop_relay_leading",
        "1 when this replica runs the relay.",
        u8::from(relay.leading.load(Ordering::Relaxed)).to_string(),
    );
    gauge(
        "eshop_relay_published_total",
        "Events this replica published and saw acknowledged.",
        relay.published.load(Ordering::Relaxed).to_string(),
    );
    let oldest = relay.oldest_transaction();
    gauge(
        "eshop_relay_horizon_blocked_seconds",
        "Age of the oldest transaction holding an xid; newer events wait for it.",
        oldest.as_ref().map_or(0.0, |tx| tx.age_seconds).to_string(),
    );
    gauge(
        "eshop_relay_horizon_blocking_xid",
        "The xid of that transaction (0 when none).",
        oldest.map_or_else(|| "0".to_string(), |tx| tx.xid),
    );
    let cache = &state.cache.stats;
    for (name, help, value) in [
        (
            "eshop_cache_hits_total",
            "Reads served from Redis.",
            &cache.hits,
        ),
        (
            "eshop_cache_misses_total",
            "Reads Redis did not have.",
            &cache.misses,
        ),
        (
            "eshop_cache_fallbacks_total",
            "Reads served from Postgres because Redis did not answer.",
            &cache.fallbacks,
        ),
        (
            "eshop_cache_loads_total",
            "Loads from Postgres for the cache (concurrent misses share one).",
            &cache.loads,
        ),
        (
            "eshop_throttle_refused_total",
            "Requests refused with 429 by a rate limit.",
            &state.limiter.stats.refused,
        ),
        (
            "eshop_throttle_fail_open_total",
            "Rate-limit checks that let a request through because Redis did not answer.",
            &state.limiter.stats.fail_open,
        ),
    ] {
        gauge(name, help, value.load(Ordering::Relaxed).to_string());
    }
    let mail = state.outbox.stats();
    for (name, help, value) in [
        (
            "eshop_mail_sent_total",
            "Mails this replica handed to the SMTP server (or wrote as files).",
            &mail.sent,
        ),
        (
            "eshop_mail_failed_total",
            "Mails refused for good (5xx) or given up after repeated transient failures.",
            &mail.failed,
        ),
        (
            "eshop_mail_retried_total",
            "Transient send failures (4xx, connection refused), each retried with backoff.",
            &mail.retried,
        ),
        (
            "eshop_mail_skipped_total",
            "Mails not sent because the user has no address (erased).",
            &mail.skipped,
        ),
    ] {
        gauge(name, help, value.load(Ordering::Relaxed).to_string());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
