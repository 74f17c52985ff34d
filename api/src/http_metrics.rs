//! Request counts and latencies per route, under OpenTelemetry's HTTP server metric names in
//! Prometheus form: `http_server_request_duration_seconds` (a histogram labelled by method,
//! route template and status) and `http_server_active_requests`.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// OpenTelemetry's recommended buckets for HTTP server durations, in seconds.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The label of requests that matched no route: one series for every unknown path, so a
/// scanner cannot grow the set of series without bound.
const UNMATCHED: &str = "unmatched";

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct SeriesKey {
    method: String,
    route: String,
    status: u16,
}

#[derive(Default)]
struct Histogram {
    /// Observations at or below each bucket's bound (not cumulative; summed when rendered).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, seconds: f64) {
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }
}

/// Shared by every request of one server; rendered by `GET /metrics`.
#[derive(Default)]
pub struct HttpMetrics {
    series: RwLock<HashMap<SeriesKey, Arc<Histogram>>>,
    active: AtomicI64,
}

impl HttpMetrics {
    fn histogram(&self, key: SeriesKey) -> Arc<Histogram> {
        if let Some(found) = self.series.read().expect("metrics lock").get(&key) {
            return found.clone();
        }
        self.series
            .write()
            .expect("metrics lock")
            .entry(key)
            .or_default()
            .clone()
    }

    /// Requests answered so far, every route and status together (the console's chart).
    pub fn requests_total(&self) -> u64 {
        self.series
            .read()
            .expect("metrics lock")
            .values()
            .map(|histogram| histogram.count.load(Ordering::Relaxed))
            .sum()
    }

    /// Appends the two metrics in the Prometheus text format.
    pub fn render(&self, text: &mut String) {
        let _ = writeln!(
            text,
            "# HELP http_server_active_requests Requests being answered now.\n\
             # TYPE http_server_active_requests gauge\n\
             http_server_active_requests {}",
            self.active.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            text,
            "# HELP http_server_request_duration_seconds Time to answer a request.\n\
             # TYPE http_server_request_duration_seconds histogram"
        );
        let series = self.series.read().expect("metrics lock");
        let mut keys: Vec<&SeriesKey> = series.keys().collect();
        keys.sort();
        for key in keys {
            let histogram = &series[key];
            let labels = format!(
                "http_request_method=\"{}\",http_route=\"{}\",http_response_status_code=\"{}\"",
                key.method,
                escape_label(&key.route),
                key.status
            );
            let mut cumulative = 0;
            for (bound, bucket) in BUCKETS.iter().zip(&histogram.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(
                    text,
                    "http_server_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = histogram.count.load(Ordering::Relaxed);
            let sum = histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                text,
                "http_server_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}\n\
                 http_server_request_duration_seconds_sum{{{labels}}} {sum}\n\
                 http_server_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
    }
}

/// Escapes a label value as the text format asks (backslash, quote, newline).
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Counts the request while it runs and records its duration under its route template.
pub async fn record(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_string();
    metrics.active.fetch_add(1, Ordering::Relaxed);
    let response = next.run(request).await;
    metrics.active.fetch_sub(1, Ordering::Relaxed);
    let key = SeriesKey {
        method,
        route,
        status: response.status().as_u16(),
    };
    metrics
        .histogram(key)
        .observe(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_renders_cumulative_buckets_a_sum_and_a_count() {
        let metrics = HttpMetrics::default();
        let key = SeriesKey {
            method: "GET".into(),
            route: "/api/products/{id}".into(),
            status: 200,
        };
        metrics.histogram(key.clone()).observe(0.003);
        metrics.histogram(key.clone()).observe(0.2);
        metrics.histogram(key).observe(30.0);
        let mut text = String::new();
        metrics.render(&mut text);
        let labels = "http_request_method=\"GET\",http_route=\"/api/products/{id}\",http_response_status_code=\"200\"";
        for (bound, expected) in [
            ("0.005", 1),
            ("0.1", 1),
            ("0.25", 2),
            ("10", 2),
            ("+Inf", 3),
        ] {
            let line = format!(
                "http_server_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {expected}\n"
            );
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        assert!(text.contains(&format!(
            "http_server_request_duration_seconds_count{{{labels}}} 3\n"
        )));
        assert!(text.contains(&format!(
            "http_server_request_duration_seconds_sum{{{labels}}} 30.203\n"
        )));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
