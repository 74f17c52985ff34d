//! What one request wrote: every aggregate its commands appended to, and the version each
//! reached. The command bus notes each append here; whoever answers the request (the API's
//! `execute`) collects the notes with `recording` and remembers them for the caller, so the
//! caller's next list reads can wait for exactly those versions (read your own writes).
//!
//! The notes live in a task-local, so a use case needs no extra parameter and every step it
//! runs inline is noted, the order process's steps on the order and its payment included. Work
//! handed to another task (the purchases' product tasks, an order driven in the background) is
//! not noted there: the use case notes what it learns of it back in the request (see
//! `orders::purchases`). Outside `recording`, a note is dropped.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;

/// An aggregate a request wrote, at the version its last write reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: u64,
}

type Notes = HashMap<(String, String), u64>;

tokio::task_local! {
    static NOTES: RefCell<Notes>;
}

/// Runs `request` and answers with its outcome and what it wrote (each aggregate once, at the
/// highest version noted).
pub async fn recording<F: Future>(request: F) -> (F::Output, Vec<Written>) {
    NOTES
        .scope(RefCell::default(), async {
            let outcome = request.await;
            let notes = NOTES.with(|notes| std::mem::take(&mut *notes.borrow_mut()));
            let written = notes
                .into_iter()
                .map(|((aggregate_type, aggregate_id), version)| Written {
                    aggregate_type,
                    aggregate_id,
                    version,
                })
                .collect();
            (outcome, written)
        })
        .await
}

/// Notes that the current request's command brought the aggregate to `version` (a no-op
/// outside `recording`).
pub fn note(aggregate_type: &str, aggregate_id: &str, version: u64) {
    if version == 0 {
        return;
    }
    let _ = NOTES.try_with(|notes| {
        let mut notes = notes.borrow_mut();
        let noted = notes
            .entry((aggregate_type.to_string(), aggregate_id.to_string()))
            .or_default();
        *noted = (*noted).max(version);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_collects_the_highest_version_of_each_aggregate() {
        let ((), written) = recording(async {
            note("order", "o1", 1);
            note("order", "o1", 4);
            note("order", "o1", 3);
            note("payment", "p1", 2);
        })
        .await;
        let mut written = written;
        written.sort_by(|a, b| a.aggregate_type.cmp(&b.aggregate_type));
        assert_eq!(
            written,
            vec![
                Written {
                    aggregate_type: "order".into(),
                    aggregate_id: "o1".into(),
                    version: 4
                },
                Written {
                    aggregate_type: "payment".into(),
                    aggregate_id: "p1".into(),
                    version: 2
                },
            ]
        );
    }

    #[tokio::test]
    async fn notes_outside_a_request_are_dropped() {
        note("order", "o1", 1);
        let ((), written) = recording(async {}).await;
        assert!(written.is_empty());
    }
}
