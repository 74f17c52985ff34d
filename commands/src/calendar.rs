//! The economic calendar's use cases: importing a feed (update or create), and what an import
//! answers.

pub mod feed;

use serde::Serialize;

use eshop_domain::calendar::{CalendarCommand, CalendarError, CalendarEvent, LastChange};

use crate::bus::{CommandBus, CommandError};
use crate::context::{Actor, CommandContext};
use crate::store::{EventStore, StoreError};

pub use feed::{parse, FeedError, Row};

/// A row the import left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub line: usize,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub created: usize,
    pub revised: usize,
    pub unchanged: usize,
    pub skipped: Vec<Skipped>,
}

impl ImportReport {
    /// Adds what another part of the same import did.
    pub fn merge(&mut self, other: ImportReport) {
        self.created += other.created;
        self.revised += other.revised;
        self.unchanged += other.unchanged;
        self.skipped.extend(other.skipped);
    }
}

/// Imports `rows` one by one: a new entry is scheduled, a changed one revised, an unchanged one
/// left alone. Every writer derives an entry's id from its key, so two imports of overlapping
/// feeds meet on the same aggregate: the second append conflicts, is retried on the stored
/// entry and finds nothing left to do. `progress(done, total)` follows each row. Fails only
/// when the store is unavailable (what was imported so far stays; running again finishes).
pub async fn import<S: EventStore>(
    bus: &CommandBus<S>,
    rows: Vec<Row>,
    actor: Actor,
    request_id: &str,
    mut progress: impl FnMut(usize, usize),
) -> Result<ImportReport, StoreError> {
    let total = rows.len();
    let mut report = ImportReport::default();
    for (done, row) in rows.into_iter().enumerate() {
        let line = row.line;
        let skip = |reason: String| Skipped { line, reason };
        match row.entry {
            Err(reason) => report.skipped.push(skip(reason)),
            Ok(entry) => {
                let id = entry.key.aggregate_id().to_string();
                let context = CommandContext::new(actor, request_id);
                let outcome = bus
                    .execute_with(
                        &id,
                        CalendarCommand::Import(entry),
                        &context,
                        None,
                        |event: &CalendarEvent| event.last_change,
                    )
                    .await;
                match outcome {
                    Ok(executed) if executed.appended == 0 => report.unchanged += 1,
                    Ok(executed) => match executed.aggregate {
                        Some(LastChange::Scheduled) => report.created += 1,
                        _ => report.revised += 1,
                    },
                    Err(CommandError::Rejected(error)) => {
                        report.skipped.push(skip(error.to_string()))
                    }
                    Err(CommandError::ClaimTaken { .. }) => report
                        .skipped
                        .push(skip(CalendarError::AlreadyExists.to_string())),
                    Err(CommandError::Conflict { attempts }) => report.skipped.push(skip(format!(
                        "the entry kept changing; gave up after {attempts} attempts"
                    ))),
                    Err(CommandError::VersionMismatch { .. }) => report
                        .skipped
                        .push(skip("the entry changed meanwhile".into())),
                    Err(CommandError::Store(error)) => return Err(error),
                }
            }
        }
        progress(done + 1, total);
    }
    Ok(report)
}
