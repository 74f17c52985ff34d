//! What an operator watches, read from the systems that know it: the task and order counts by
//! status (Postgres), each durable consumer's backlog (JetStream), and this process's memory and
//! open files (`/proc`).

use std::time::Duration;

use async_nats::jetstream;
use futures::TryStreamExt;
use sqlx::PgPool;

use crate::nats::EventSubjects;
use eshop_commands::BoxError;

/// Counts by status, from the tables that hold them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StatusCounts {
    /// `queued`, `running`, `done`, `failed`.
    pub tasks: Vec<(String, i64)>,
    /// The orders read model's statuses (`placed`, `confirmed`, `failed`, ...).
    pub orders: Vec<(String, i64)>,
}

pub async fn status_counts(pool: &PgPool) -> Result<StatusCounts, BoxError> {
    let tasks: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM tasks GROUP BY status ORDER BY status")
            .fetch_all(pool)
            .await?;
    let orders: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM orders GROUP BY status ORDER BY status")
            .fetch_all(pool)
            .await?;
    let tasks = tasks
        .into_iter()
        .map(|(status, count)| (task_status_name(&status).to_string(), count))
        .collect();
    Ok(StatusCounts {
        tasks: with_zeros(tasks, &["queued", "running", "done", "failed"]),
        orders: with_zeros(
            orders,
            &[
                "placed",
                "stock_reserved",
                "paid",
                "confirmed",
                "cancelled",
                "failed",
            ],
        ),
    })
}

/// Orders placed after `after`, counted by their `OrderPlaced` events, and the newest such
/// event's position (to pass as `after` next time; `after` itself when there is none). Both
/// read the `events_by_type` index, so a call costs the new orders, not the history.
///
/// Positions are taken at insert, not at commit: an order whose transaction commits after a
/// newer one's was counted is missed. That is fine for a rate on a chart, not for accounting.
pub async fn orders_placed_after(pool: &PgPool, after: i64) -> Result<(i64, i64), sqlx::Error> {
    let (count, newest): (i64, Option<i64>) = sqlx::query_as(
        "SELECT count(*), max(position) FROM events
          WHERE event_type = 'OrderPlaced' AND position > $1",
    )
    .bind(after)
    .fetch_one(pool)
    .await?;
    Ok((count, newest.unwrap_or(after)))
}

/// The newest `OrderPlaced` event's position (0 when there is none): where counting starts.
pub async fn newest_order_placed(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let newest: Option<i64> =
        sqlx::query_scalar("SELECT max(position) FROM events WHERE event_type = 'OrderPlaced'")
            .fetch_one(pool)
            .await?;
    Ok(newest.unwrap_or(0))
}

/// Every known status, 0 where no row has it, so a dashboard's series exist from the start.
fn with_zeros(mut counts: Vec<(String, i64)>, known: &[&str]) -> Vec<(String, i64)> {
    for status in known {
        if !counts.iter().any(|(present, _)| present == status) {
            counts.push(((*status).to_string(), 0));
        }
    }
    counts.sort();
    counts
}

/// The stored task states under the names operators know from task queues.
fn task_status_name(stored: &str) -> &str {
    match stored {
        "PENDING" => "queued",
        "PROCESSING" => "running",
        "DONE" => "done",
        "FAILED" => "failed",
        other => other,
    }
}

/// One durable consumer's backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerBacklog {
    pub stream: String,
    pub consumer: String,
    /// Messages not yet delivered to it.
    pub pending: u64,
    /// Delivered, not yet acknowledged.
    pub ack_pending: u64,
}

/// Every durable consumer of the event and task streams (projections, mailer, order worker,
/// task worker, and any downstream consumer an operator added).
pub async fn consumer_backlogs(
    jetstream: &jetstream::Context,
    subjects: &EventSubjects,
) -> Result<Vec<ConsumerBacklog>, BoxError> {
    let mut backlogs = Vec::new();
    for stream_name in [subjects.stream_name(), subjects.tasks_stream_name()] {
        let Ok(stream) = jetstream.get_stream(&stream_name).await else {
            continue;
        };
        let mut consumers = stream.consumers();
        while let Some(info) = consumers.try_next().await? {
            backlogs.push(ConsumerBacklog {
                stream: stream_name.clone(),
                consumer: info.name,
                pending: info.num_pending,
                ack_pending: info.num_ack_pending as u64,
            });
        }
    }
    backlogs.sort_by(|a, b| (&a.stream, &a.consumer).cmp(&(&b.stream, &b.consumer)));
    Ok(backlogs)
}

/// Whether JetStream answers within `limit` with the event stream's state.
pub async fn jetstream_answers(
    jetstream: &jetstream::Context,
    subjects: &EventSubjects,
    limit: Duration,
) -> Result<(), String> {
    match tokio::time::timeout(limit, jetstream.get_stream(subjects.stream_name())).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
    }
}

/// Whether Postgres answers within `limit`.
pub async fn postgres_answers(pool: &PgPool, limit: Duration) -> Result<(), String> {
    match tokio::time::timeout(limit, sqlx::query("SELECT 1").execute(pool)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
    }
}

/// This process's resident memory and open file descriptors (Linux; `None` elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessFigures {
    pub resident_bytes: Option<u64>,
    pub open_files: Option<u64>,
}

pub fn process_figures() -> ProcessFigures {
    let resident_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| resident_from_status(&status));
    let open_files = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count() as u64);
    ProcessFigures {
        resident_bytes,
        open_files,
    }
}

/// `VmRSS:   123456 kB` in `/proc/self/status`, in bytes.
fn resident_from_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_from_the_status_file_in_bytes() {
        let status = "Name:\teshop\nVmPeak:\t  999 kB\nVmRSS:\t   2048 kB\nThreads:\t4\n";
        assert_eq!(resident_from_status(status), Some(2 * 1024 * 1024));
        assert_eq!(resident_from_status("Name:\teshop\n"), None);
    }

    #[test]
    fn this_process_has_memory_and_open_files() {
        let figures = process_figures();
        assert!(figures.resident_bytes.unwrap() > 0);
        assert!(figures.open_files.unwrap() > 0);
    }

    #[test]
    fn task_states_read_as_queue_states() {
        assert_eq!(task_status_name("PENDING"), "queued");
        assert_eq!(task_status_name("PROCESSING"), "running");
        assert_eq!(task_status_name("FAILED"), "failed");
    }
}
