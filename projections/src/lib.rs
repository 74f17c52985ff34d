//! Read models: the envelope events travel in, how each event changes a read model (pure
//! functions, no I/O), and the query types over them. `eshop-infra` stores and serves them.

pub mod cached;
pub mod calendar;
pub mod category;
pub mod envelope;
pub mod movie;
pub mod order;
pub mod payment;
pub mod product;
pub mod query;
pub mod read_model;
pub mod search;
pub mod shopping;
pub mod user;

pub use envelope::RelayedEvent;
pub use read_model::ReadModel;

/// Why a projection could not apply an event. It stops that projection (only) until fixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectionError {
    #[error("{aggregate_type} {aggregate_id}: expected sequence {expected}, got {got}")]
    Gap {
        aggregate_type: String,
        aggregate_id: String,
        expected: u64,
        got: u64,
    },
    #[error("{aggregate_type} {aggregate_id} #{sequence}: {reason}")]
    Unreadable {
        aggregate_type: String,
        aggregate_id: String,
        sequence: u64,
        reason: String,
    },
}

/// What to do with an event given the version a row is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Already applied (a redelivery): skip it.
    Seen,
    Apply,
}

/// Rows remember the aggregate version they reflect; an event applies only on top of its
/// predecessor, so a redelivery is skipped and a gap is caught rather than papered over.
pub fn step(event: &RelayedEvent, row_version: u64) -> Result<Step, ProjectionError> {
    if event.sequence <= row_version {
        Ok(Step::Seen)
    } else if event.sequence == row_version + 1 {
        Ok(Step::Apply)
    } else {
        Err(ProjectionError::Gap {
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            expected: row_version + 1,
            got: event.sequence,
        })
    }
}
