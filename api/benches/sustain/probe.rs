//! What the open-model purchase bench samples every second: how far behind each consumer of the
//! event stream is (events and seconds), the mail backlog, and CPU (this process without its
//! load generator, and Postgres) read from /proc.

use std::collections::HashMap;

use async_nats::jetstream::{self, consumer::pull};
use sqlx::PgPool;

/// The consumers a purchase feeds: the four read models it changes, the order process and the
/// mailer. (`carts`, `wishlists`, `reviews` see no purchase event.)
pub const CONSUMERS: &[(&str, &str)] = &[
    ("products", "projection_products"),
    ("users", "projection_users"),
    ("orders", "projection_orders"),
    ("payments", "projection_payments"),
    ("order process", "order_process"),
    ("mailer", "mailer"),
];

/// One consumer's lag: events delivered-or-pending and not acknowledged, and the age of the
/// oldest of them (from its `recorded_at`: relay latency included).
#[derive(Debug, Clone, Copy, Default)]
pub struct Lag {
    pub events: u64,
    pub seconds: f64,
}

fn age_of(payload: &[u8]) -> Option<f64> {
    let body: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let recorded: chrono::DateTime<chrono::Utc> =
        body.get("recorded_at")?.as_str()?.parse().ok()?;
    Some(
        (chrono::Utc::now() - recorded)
            .to_std()
            .map_or(0.0, |age| age.as_secs_f64()),
    )
}

pub async fn lag(jetstream: &jetstream::Context, stream: &str, consumer: &str) -> Lag {
    let Ok(stream) = jetstream.get_stream(stream).await else {
        return Lag::default();
    };
    let Ok(mut found) = stream.get_consumer::<pull::Config>(consumer).await else {
        return Lag::default();
    };
    let Ok(info) = found.info().await else {
        return Lag::default();
    };
    let events = info.num_pending + info.num_ack_pending as u64;
    if events == 0 {
        return Lag::default();
    }
    let filter = info.config.filter_subject.clone();
    let oldest = stream
        .get_first_raw_message_by_subject(&filter, info.ack_floor.stream_sequence + 1)
        .await;
    Lag {
        events,
        seconds: oldest
            .ok()
            .and_then(|message| age_of(&message.payload))
            .unwrap_or(0.0),
    }
}

/// Mails recorded and not sent yet, and the age of the oldest.
pub async fn mail_pending(pool: &PgPool) -> (i64, f64) {
    sqlx::query_as(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at))::float8, 0)
           FROM email_log WHERE status = 'pending'",
    )
    .fetch_one(pool)
    .await
    .unwrap_or((0, 0.0))
}

/// Linux reports CPU times in clock ticks of 1/100 s to user space (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

fn ticks(stat: &str) -> Option<u64> {
    // Fields after the command (which may hold spaces) end with ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// CPU seconds so far: this process without its load generator's threads (named `loadgen`),
/// Postgres backends of our database, and every Postgres process (others' work included).
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    eshop: u64,
    ours: HashMap<u32, u64>,
    all: HashMap<u32, u64>,
}

pub fn cpu_sample(database: &str) -> CpuSample {
    let mut sample = CpuSample::default();
    let mut loadgen = 0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let path = task.path();
            let comm = read(&format!("{}/comm", path.display())).unwrap_or_default();
            if comm.trim() == "loadgen" {
                loadgen += read(&format!("{}/stat", path.display()))
                    .and_then(|stat| ticks(&stat))
                    .unwrap_or(0);
            }
        }
    }
    let total = read("/proc/self/stat")
        .and_then(|stat| ticks(&stat))
        .unwrap_or(0);
    sample.eshop = total.saturating_sub(loadgen);
    if let Ok(processes) = std::fs::read_dir("/proc") {
        for process in processes.flatten() {
            let Some(pid) = process.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if read(&format!("/proc/{pid}/comm")).map(|c| c.trim().to_string())
                != Some("postgres".into())
            {
                continue;
            }
            let Some(used) = read(&format!("/proc/{pid}/stat")).and_then(|stat| ticks(&stat))
            else {
                continue;
            };
            sample.all.insert(pid, used);
            // A backend's title: "postgres: [cluster: ]user database host(port) state".
            let title = read(&format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if title
                .split(|c: char| c.is_whitespace() || c == '\0')
                .any(|word| word == database)
            {
                sample.ours.insert(pid, used);
            }
        }
    }
    sample
}

/// Percent of one core each used between two samples `seconds` apart: (eshop, our Postgres
/// backends, all of Postgres).
pub fn cpu_percent(before: &CpuSample, after: &CpuSample, seconds: f64) -> (f64, f64, f64) {
    let spent = |before: &HashMap<u32, u64>, after: &HashMap<u32, u64>| -> u64 {
        after
            .iter()
            .map(|(pid, used)| used.saturating_sub(before.get(pid).copied().unwrap_or(0)))
            .sum()
    };
    let percent = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / seconds.max(0.001) * 100.0;
    (
        percent(after.eshop.saturating_sub(before.eshop)),
        percent(spent(&before.ours, &after.ours)),
        percent(spent(&before.all, &after.all)),
    )
}

/// This process's resident memory in MB (the load generator's share included).
pub fn rss_mb() -> f64 {
    read("/proc/self/status")
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The machine's load averages, as `uptime` shows them.
pub fn load_average() -> String {
    read("/proc/loadavg")
        .map(|line| {
            line.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}
