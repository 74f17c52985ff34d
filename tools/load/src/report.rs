//! The run's report: a Markdown summary per endpoint, and an HTML page with two plots
//! (latency over time, throughput over time) drawn as SVG.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::{Outcome, Sample};

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

/// One row of the summary.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointFigures {
    pub endpoint: String,
    pub requests: usize,
    pub refused: usize,
    pub errors: usize,
    pub per_second: f64,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
}

fn figures(endpoint: &str, samples: &[&Sample], seconds: f64) -> EndpointFigures {
    let mut latencies: Vec<Duration> = samples.iter().map(|sample| sample.latency).collect();
    latencies.sort_unstable();
    let count = |outcome| samples.iter().filter(|s| s.outcome == outcome).count();
    EndpointFigures {
        endpoint: endpoint.to_string(),
        requests: samples.len(),
        refused: count(Outcome::Refused),
        errors: count(Outcome::Error),
        per_second: samples.len() as f64 / seconds.max(f64::EPSILON),
        p50: percentile(&latencies, 0.50),
        p95: percentile(&latencies, 0.95),
        p99: percentile(&latencies, 0.99),
    }
}

/// Per endpoint, then all together (last).
pub fn by_endpoint(samples: &[Sample], duration: Duration) -> Vec<EndpointFigures> {
    let seconds = duration.as_secs_f64();
    let mut groups: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for sample in samples {
        groups.entry(sample.endpoint).or_default().push(sample);
    }
    let mut rows: Vec<EndpointFigures> = groups
        .iter()
        .map(|(endpoint, group)| figures(endpoint, group, seconds))
        .collect();
    let all: Vec<&Sample> = samples.iter().collect();
    rows.push(figures("all", &all, seconds));
    rows
}

pub fn markdown(rows: &[EndpointFigures], rate: u32, duration: Duration) -> String {
    let mut text = format!(
        "Open model: {rate} arrivals/s for {} s (browse 70 %, search 15 %, cart and purchase 10 %, login 5 %). Latency counts from when a request was due.\n\n",
        duration.as_secs()
    );
    text.push_str(
        "| endpoint | requests | req/s | refused (4xx) | errors (5xx, none) | p50 | p95 | p99 |\n",
    );
    text.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for row in rows {
        text.push_str(&format!(
            "| {} | {} | {:.1} | {} | {} | {} | {} | {} |\n",
            row.endpoint,
            row.requests,
            row.per_second,
            row.refused,
            row.errors,
            ms(row.p50),
            ms(row.p95),
            ms(row.p99)
        ));
    }
    text
}

/// Per second of the run: (p50, p99) latency of the requests due in it, and the answers that
/// arrived in it (successful, refused, errors).
struct Second {
    p50: f64,
    p99: f64,
    answered: [usize; 3],
}

fn seconds(samples: &[Sample], duration: Duration) -> Vec<Second> {
    let count = duration.as_secs().max(1) as usize;
    let mut due: Vec<Vec<Duration>> = vec![Vec::new(); count];
    let mut answered = vec![[0usize; 3]; count];
    for sample in samples {
        let index = (sample.due.as_secs() as usize).min(count - 1);
        due[index].push(sample.latency);
        let answered_at = ((sample.due + sample.latency).as_secs() as usize).min(count - 1);
        let kind = match sample.outcome {
            Outcome::Success => 0,
            Outcome::Refused => 1,
            Outcome::Error => 2,
        };
        answered[answered_at][kind] += 1;
    }
    due.into_iter()
        .zip(answered)
        .map(|(mut latencies, answered)| {
            latencies.sort_unstable();
            Second {
                p50: percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
                p99: percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
                answered,
            }
        })
        .collect()
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
const MARGIN: f64 = 48.0;

/// A line plot of `series` (name, colour, one value per second), with its axes.
fn plot(title: &str, unit: &str, series: &[(&str, &str, Vec<f64>)]) -> String {
    let points = series
        .iter()
        .map(|(_, _, values)| values.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let top = series
        .iter()
        .flat_map(|(_, _, values)| values.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.1;
    let x = |index: usize| MARGIN + (WIDTH - 2.0 * MARGIN) * index as f64 / (points - 1) as f64;
    let y = |value: f64| HEIGHT - MARGIN - (HEIGHT - 2.0 * MARGIN) * value / top;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="#fff"/><text x="{MARGIN}" y="20" font-weight="bold">{title}</text>"##
    );
    svg.push_str(&format!(
        r##"<line x1="{MARGIN}" y1="{b}" x2="{r}" y2="{b}" stroke="#999"/><line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{b}" stroke="#999"/>"##,
        b = HEIGHT - MARGIN,
        r = WIDTH - MARGIN
    ));
    for tick in 0..=4 {
        let value = top * f64::from(tick) / 4.0;
        svg.push_str(&format!(
            r##"<text x="{}" y="{:.1}" text-anchor="end" fill="#555">{value:.0}</text><line x1="{MARGIN}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="#eee"/>"##,
            MARGIN - 4.0,
            y(value) + 4.0,
            y(value),
            WIDTH - MARGIN,
            y(value)
        ));
    }
    svg.push_str(&format!(
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">seconds into the run (0–{}) · {unit}</text>"##,
        WIDTH / 2.0,
        HEIGHT - 12.0,
        points
    ));
    for (position, (name, colour, values)) in series.iter().enumerate() {
        let line: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(index, value)| format!("{:.1},{:.1}", x(index), y(*value)))
            .collect();
        svg.push_str(&format!(
            r##"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/><text x="{}" y="20" fill="{colour}">{name}</text>"##,
            line.join(" "),
            WIDTH - MARGIN - 90.0 * (series.len() - position) as f64 + 20.0,
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// Latency over time: p50 and p99 of the requests due in each second.
pub fn latency_plot(samples: &[Sample], duration: Duration) -> String {
    let seconds = seconds(samples, duration);
    plot(
        "Latency (from when each request was due)",
        "ms",
        &[
            ("p50", "#1f5fbf", seconds.iter().map(|s| s.p50).collect()),
            ("p99", "#b3261e", seconds.iter().map(|s| s.p99).collect()),
        ],
    )
}

/// Throughput over time: answers per second by outcome.
pub fn throughput_plot(samples: &[Sample], duration: Duration) -> String {
    let seconds = seconds(samples, duration);
    let of = |kind: usize| seconds.iter().map(|s| s.answered[kind] as f64).collect();
    plot(
        "Throughput (answers per second)",
        "answers/s",
        &[
            ("2xx", "#1d7a3a", of(0)),
            ("4xx", "#8a5a00", of(1)),
            ("errors", "#b3261e", of(2)),
        ],
    )
}

/// Writes `summary.md`, `latency.svg`, `throughput.svg` and `report.html` (all of them in one
/// page) into `dir`; returns the summary.
pub fn write(
    dir: &Path,
    samples: &[Sample],
    rate: u32,
    duration: Duration,
) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    let summary = markdown(&by_endpoint(samples, duration), rate, duration);
    let latency = latency_plot(samples, duration);
    let throughput = throughput_plot(samples, duration);
    std::fs::write(dir.join("summary.md"), &summary)?;
    std::fs::write(dir.join("latency.svg"), &latency)?;
    std::fs::write(dir.join("throughput.svg"), &throughput)?;
    let table = html_table(&by_endpoint(samples, duration));
    std::fs::write(
        dir.join("report.html"),
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>eshop load report</title><style>body{{font-family:sans-serif;margin:2rem}}table{{border-collapse:collapse}}td,th{{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}}td:first-child,th:first-child{{text-align:left}}</style></head><body><h1>eshop load report</h1><p>Open model: {rate} arrivals/s for {} s; latency counts from when each request was due.</p>{table}<h2>Latency</h2>{latency}<h2>Throughput</h2>{throughput}</body></html>",
            duration.as_secs()
        ),
    )?;
    Ok(summary)
}

fn html_table(rows: &[EndpointFigures]) -> String {
    let mut html = String::from("<table><tr><th>endpoint</th><th>requests</th><th>req/s</th><th>refused</th><th>errors</th><th>p50</th><th>p95</th><th>p99</th></tr>");
    for row in rows {
        // Endpoints are this program's own constants: nothing to escape but braces.
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            row.endpoint, row.requests, row.per_second, row.refused, row.errors, ms(row.p50), ms(row.p95), ms(row.p99)
        ));
    }
    html.push_str("</table>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(endpoint: &'static str, due_ms: u64, latency_ms: u64, outcome: Outcome) -> Sample {
        Sample {
            endpoint,
            due: Duration::from_millis(due_ms),
            latency: Duration::from_millis(latency_ms),
            outcome,
        }
    }

    #[test]
    fn figures_per_endpoint_count_refusals_and_errors_apart() {
        let samples = vec![
            sample("GET /a", 0, 10, Outcome::Success),
            sample("GET /a", 100, 20, Outcome::Refused),
            sample("GET /a", 200, 30, Outcome::Error),
            sample("GET /b", 300, 40, Outcome::Success),
        ];
        let rows = by_endpoint(&samples, Duration::from_secs(2));
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].endpoint, "GET /a");
        assert_eq!(
            (rows[0].requests, rows[0].refused, rows[0].errors),
            (3, 1, 1)
        );
        assert_eq!(rows[0].p50, Duration::from_millis(20));
        assert_eq!(rows[0].p99, Duration::from_millis(30));
        assert!((rows[0].per_second - 1.5).abs() < 1e-9);
        assert_eq!(rows[2].endpoint, "all");
        assert_eq!(rows[2].requests, 4);
    }

    #[test]
    fn a_request_answered_late_counts_in_the_second_it_was_answered() {
        let samples = vec![sample("GET /a", 500, 1_700, Outcome::Success)];
        let seconds = seconds(&samples, Duration::from_secs(3));
        assert_eq!(seconds[0].answered, [0, 0, 0]);
        assert_eq!(seconds[2].answered, [1, 0, 0]);
        assert!((seconds[0].p99 - 1_700.0).abs() < 1e-9);
    }

    #[test]
    fn the_plots_are_svg_with_one_line_per_series() {
        let samples = vec![sample("GET /a", 0, 10, Outcome::Success)];
        let latency = latency_plot(&samples, Duration::from_secs(2));
        assert!(latency.starts_with("<svg"));
        assert_eq!(latency.matches("<polyline").count(), 2);
        assert_eq!(
            throughput_plot(&samples, Duration::from_secs(2))
                .matches("<polyline")
                .count(),
            3
        );
    }
}
