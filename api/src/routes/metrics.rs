//! `GET /metrics`: Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::http_metrics::escape_label;
use crate::state::{process_figures, AppState, ConsumerBacklog, ProjectionReport};

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
    state.http_metrics.render(&mut text);
    operations(&state, &mut text).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// One metric family with labelled samples.
fn family(text: &mut String, name: &str, help: &str, samples: &[(String, String)]) {
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(text, "{name} {value}");
        } else {
            let _ = writeln!(text, "{name}{{{labels}}} {value}");
        }
    }
}

fn label(key: &str, value: &str) -> String {
    format!("{key}=\"{}\"", escape_label(value))
}

/// Projection lag, consumer backlogs, the pool, task and order counts, and the process. A
/// dependency that does not answer leaves its families out rather than failing the scrape.
async fn operations(state: &AppState, text: &mut String) {
    if let Ok(reports) = state.projection_reports().await {
        let by_projection = |value: &dyn Fn(&ProjectionReport) -> String| {
            reports
                .iter()
                .map(|report| (label("projection", &report.name), value(report)))
                .collect::<Vec<_>>()
        };
        family(
            text,
            "eshop_projection_lag_events",
            "Events on the stream a projection has not applied yet.",
            &by_projection(&|report| report.lag_events.to_string()),
        );
        family(
            text,
            "eshop_projection_lag_seconds",
            "How long a lagging projection has gone without applying an event (0 when caught up).",
            &by_projection(&|report| report.lag_seconds.to_string()),
        );
    }
    if let Ok(backlogs) = state.consumer_backlogs().await {
        let samples = |value: &dyn Fn(&ConsumerBacklog) -> u64| {
            backlogs
                .iter()
                .map(|backlog| {
                    (
                        format!(
                            "{},{}",
                            label("stream", &backlog.stream),
                            label("consumer", &backlog.consumer)
                        ),
                        value(backlog).to_string(),
                    )
                })
                .collect::<Vec<_>>()
        };
        family(
            text,
            "eshop_consumer_pending_messages",
            "Messages a durable JetStream consumer has not been delivered yet.",
            &samples(&|backlog| backlog.pending),
        );
        family(
            text,
            "eshop_consumer_ack_pending_messages",
            "Messages delivered to a durable consumer and not acknowledged yet.",
            &samples(&|backlog| backlog.ack_pending),
        );
    }
    let pool = &state.pool;
    let idle = pool.num_idle() as u32;
    family(
        text,
        "db_client_connections_usage",
        "Postgres pool connections by state (sqlx does not expose waiting acquirers).",
        &[
            (
                label("state", "used"),
                pool.size().saturating_sub(idle).to_string(),
            ),
            (label("state", "idle"), idle.to_string()),
        ],
    );
    family(
        text,
        "db_client_connections_max",
        "The Postgres pool's size limit.",
        &[(
            String::new(),
            pool.options().get_max_connections().to_string(),
        )],
    );
    if let Ok(counts) = state.status_counts().await {
        let by_status = |rows: &[(String, i64)]| {
            rows.iter()
                .map(|(status, count)| (label("status", status), count.to_string()))
                .collect::<Vec<_>>()
        };
        family(
            text,
            "eshop_tasks",
            "Background tasks by status (queued, running, done, failed).",
            &by_status(&counts.tasks),
        );
        family(
            text,
            "eshop_orders",
            "Orders by status in the orders read model (placed, confirmed, failed, ...).",
            &by_status(&counts.orders),
        );
    }
    let process = process_figures();
    if let Some(bytes) = process.resident_bytes {
        family(
            text,
            "process_resident_memory_bytes",
            "Resident memory of this eshop process.",
            &[(String::new(), bytes.to_string())],
        );
    }
    if let Some(files) = process.open_files {
        family(
            text,
            "process_open_fds",
            "Open file descriptors of this eshop process.",
            &[(String::new(), files.to_string())],
        );
    }
}
