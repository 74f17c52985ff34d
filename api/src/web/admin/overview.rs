//! `/admin`: three small charts that move while you look (requests per second, purchases per
//! second, projection lag), and where projections, consumers and tasks stand.
//!
//! `/admin/live` samples every second, for as long as the page is open, this process's request
//! counter, the `OrderPlaced` events stored since the previous sample (an index range, however
//! long the history) and the projections' reports; each chart keeps the last minute.

// Rates and chart coordinates are fractions by nature; no money is counted here.
#![allow(clippy::float_arithmetic)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use tokio::sync::Mutex;

use crate::state::AppState;
use crate::web::admin::live::{self, Update};
use crate::web::admin::{table, Console};

/// Samples a chart keeps: a minute, one a second.
const SAMPLES: usize = 60;
/// Samples between two checks that the visitor's session still may read the console.
const RECHECK_EVERY: u64 = 15;
const WIDTH: f64 = 300.0;
const HEIGHT: f64 = 60.0;
/// Room above the top and below the bottom, so that a line at zero shows.
const PADDING: f64 = 3.0;

pub async fn page(console: Console) -> Response {
    if let Err(problem) = console.may_read().await {
        return console.refused("Console", problem, None);
    }
    let status = status_tables(&console.web.app).await;
    console
        .page(
            "Console",
            html! {
                h1 { "Operations console" }
                div class="charts" data-live="/admin/live" { (charts(&History::default())) }
                (status)
            },
        )
        .into_response()
}

/// Every second, the charts redrawn with one more sample; every so often the API is asked
/// whether the visitor's session may still read (the stream ends when not).
pub async fn live(console: Console) -> impl IntoResponse {
    let history = Arc::new(Mutex::new(History::default()));
    live::poll(Duration::from_secs(1), move || {
        let console = console.clone();
        let history = history.clone();
        async move {
            let mut history = history.lock().await;
            if history.samples % RECHECK_EVERY == 0 {
                console.may_read().await.ok()?;
            }
            let sample = Sample::take(&console.web.app, history.orders_after).await;
            history.record(sample);
            Some(Update::new(charts(&history), false))
        }
    })
}

/// The counters at one moment.
struct Sample {
    at: Instant,
    requests: u64,
    /// Orders placed since the previous sample, and the position counting goes on after;
    /// absent when Postgres did not answer.
    placed: Option<(i64, i64)>,
    /// The largest lag of any projection, in seconds.
    lag_seconds: Option<f64>,
}

impl Sample {
    async fn take(app: &AppState, orders_after: Option<i64>) -> Self {
        let placed = app.orders_placed_after(orders_after).await.ok();
        let lag_seconds = app.projection_reports().await.ok().map(|reports| {
            reports
                .iter()
                .map(|report| report.lag_seconds)
                .fold(0.0, f64::max)
        });
        Self {
            at: Instant::now(),
            requests: app.http_metrics.requests_total(),
            placed,
            lag_seconds,
        }
    }
}

/// The last minute of each chart, and the counters its rates are taken from.
#[derive(Default)]
struct History {
    requests: VecDeque<f64>,
    purchases: VecDeque<f64>,
    lag: VecDeque<f64>,
    last: Option<Sample>,
    /// Where the next count of placed orders starts (none yet: the next sample finds it).
    orders_after: Option<i64>,
    /// Samples recorded so far.
    samples: u64,
}

impl History {
    fn record(&mut self, sample: Sample) {
        if let Some(last) = &self.last {
            let seconds = sample.at.duration_since(last.at).as_secs_f64().max(0.001);
            let requests = sample.requests.saturating_sub(last.requests);
            let placed = sample.placed.map_or(0, |(placed, _)| placed);
            push(&mut self.requests, requests as f64 / seconds);
            push(&mut self.purchases, placed as f64 / seconds);
        }
        if let Some((_, newest)) = sample.placed {
            self.orders_after = Some(newest);
        }
        let lag = sample
            .lag_seconds
            .or_else(|| self.lag.back().copied())
            .unwrap_or(0.0);
        push(&mut self.lag, lag);
        self.last = Some(sample);
        self.samples += 1;
    }
}

fn push(series: &mut VecDeque<f64>, value: f64) {
    if series.len() == SAMPLES {
        series.pop_front();
    }
    series.push_back(value);
}

fn charts(history: &History) -> Markup {
    html! {
        (chart("chart-requests", "Requests per second", &history.requests))
        (chart("chart-purchases", "Purchases per second", &history.purchases))
        (chart("chart-lag", "Projection lag (max seconds)", &history.lag))
    }
}

/// One series as an inline SVG line, newest at the right, scaled to its own largest value.
fn chart(id: &str, label: &str, series: &VecDeque<f64>) -> Markup {
    let top = series.iter().copied().fold(1.0, f64::max);
    let step = WIDTH / (SAMPLES - 1) as f64;
    let offset = SAMPLES - series.len();
    let points = series
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let x = (offset + index) as f64 * step;
            let y = HEIGHT - PADDING - value / top * (HEIGHT - 2.0 * PADDING);
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ");
    html! {
        figure class="chart" {
            figcaption {
                (label) ": "
                @match series.back() {
                    Some(now) => { strong class="value" { (format!("{now:.1}")) } }
                    None => { span class="muted" { "collecting…" } }
                }
                span class="muted" { " (scale " (format!("{top:.1}")) ")" }
            }
            svg id=(id) viewBox="0 0 300 60" preserveAspectRatio="none" role="img" aria-label=(label) {
                polyline points=(points) vector-effect="non-scaling-stroke" {}
            }
        }
    }
}

/// Projections, consumers' backlogs and tasks by status, as this process sees them now.
async fn status_tables(app: &AppState) -> Markup {
    let projections = app.projection_reports().await.unwrap_or_default();
    let backlogs = app.consumer_backlogs().await.unwrap_or_default();
    let tasks = app
        .status_counts()
        .await
        .map(|counts| counts.tasks)
        .unwrap_or_default();
    html! {
        div class="status-tables" {
            section {
                h2 { "Projections" }
                (table("status-projections", "projection-status", &["Name", "Status", "Behind", "Lag (s)"], &projections, |report| html! {
                    td { (report.name) }
                    td { span class="status" data-status=(report.status) { (report.status) } }
                    td { (report.lag_events) }
                    td { (format!("{:.1}", report.lag_seconds)) }
                }))
            }
            section {
                h2 { "Consumers" }
                (table("status-consumers", "consumer", &["Stream", "Consumer", "Pending", "Unacknowledged"], &backlogs, |backlog| html! {
                    td { (backlog.stream) }
                    td { (backlog.consumer) }
                    td { (backlog.pending) }
                    td { (backlog.ack_pending) }
                }))
            }
            section {
                h2 { "Tasks" }
                (table("status-tasks", "task-count", &["Status", "Tasks"], &tasks, |(status, count)| html! {
                    td { (status.to_lowercase()) }
                    td { (count) }
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seconds: u64, requests: u64, placed: i64) -> Sample {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        Sample {
            at: *START.get_or_init(Instant::now) + Duration::from_secs(seconds),
            requests,
            placed: Some((placed, 100 + seconds as i64)),
            lag_seconds: Some(seconds as f64),
        }
    }

    #[test]
    fn rates_are_the_counters_growth_per_second() {
        let mut history = History::default();
        history.record(sample(0, 100, 0));
        history.record(sample(2, 140, 4));
        assert_eq!(history.requests, [20.0]);
        assert_eq!(history.purchases, [2.0]);
        assert_eq!(history.lag, [0.0, 2.0]);
        assert_eq!(history.orders_after, Some(102));
    }

    #[test]
    fn a_chart_keeps_the_last_minute() {
        let mut history = History::default();
        for second in 0..(SAMPLES as u64 + 10) {
            history.record(sample(second, second, 0));
        }
        assert_eq!(history.lag.len(), SAMPLES);
        assert_eq!(history.lag.back(), Some(&(SAMPLES as f64 + 9.0)));
    }

    #[test]
    fn a_chart_draws_one_point_per_sample() {
        let series: VecDeque<f64> = [0.0, 5.0, 10.0].into_iter().collect();
        let svg = chart("chart-requests", "Requests", &series).into_string();
        assert!(svg.contains(r#"id="chart-requests""#), "{svg}");
        let points = svg
            .split("points=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next());
        assert_eq!(
            points.map(|points| points.split(' ').count()),
            Some(3),
            "{svg}"
        );
    }
}
