//! One lock per aggregate: commands on one aggregate within this process queue instead of
//! colliding, so optimistic conflicts only happen between replicas.
//!
//! Locks are per aggregate rather than a fixed set of stripes shared by hashing: with stripes,
//! a batch (which holds four locks) collided with an unrelated aggregate's stripe most of the
//! time under load, and queued behind it. An entry lives while someone holds or waits for it.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

use super::CacheKey;

/// The table is swept of unused entries when it grows past this, or twice its last live size.
const SWEEP_AT_LEAST: usize = 1024;

#[derive(Default)]
struct Table {
    locks: HashMap<CacheKey, Arc<Mutex<()>>>,
    sweep_at: usize,
}

#[derive(Default)]
pub(super) struct AggregateLocks {
    table: std::sync::Mutex<Table>,
}

/// Held until dropped.
pub(crate) struct AggregateLock {
    _guard: OwnedMutexGuard<()>,
}

impl AggregateLocks {
    pub(super) async fn lock(
        &self,
        aggregate_type: &'static str,
        aggregate_id: &str,
    ) -> AggregateLock {
        let mutex = {
            let mut table = self
                .table
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if table.locks.len() >= table.sweep_at.max(SWEEP_AT_LEAST) {
                // An entry only the table holds has no holder and no waiter: a later lock
                // makes a new one.
                table.locks.retain(|_, mutex| Arc::strong_count(mutex) > 1);
                table.sweep_at = table.locks.len() * 2;
            }
            Arc::clone(
                table
                    .locks
                    .entry((aggregate_type, aggregate_id.to_string()))
                    .or_default(),
            )
        };
        AggregateLock {
            _guard: mutex.lock_owned().await,
        }
    }

    #[cfg(test)]
    pub(super) fn entries(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .locks
            .len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_aggregate_is_held_by_one_at_a_time_and_others_are_free() {
        let locks = AggregateLocks::default();
        let held = locks.lock("product", "p1").await;
        let same = tokio::time::timeout(Duration::from_millis(50), locks.lock("product", "p1"));
        assert!(same.await.is_err(), "a second holder of p1 got in");
        let other = tokio::time::timeout(Duration::from_millis(50), locks.lock("product", "p2"));
        assert!(other.await.is_ok(), "p2 waited for p1");
        let other_type = tokio::time::timeout(Duration::from_millis(50), locks.lock("user", "p1"));
        assert!(other_type.await.is_ok(), "user p1 waited for product p1");
        drop(held);
        let again = tokio::time::timeout(Duration::from_millis(50), locks.lock("product", "p1"));
        assert!(
            again.await.is_ok(),
            "p1 stayed locked after its holder let go"
        );
    }

    #[tokio::test]
    async fn unused_entries_are_swept_and_held_ones_kept() {
        let locks = AggregateLocks::default();
        let held = locks.lock("product", "kept").await;
        for n in 0..10 * SWEEP_AT_LEAST {
            drop(locks.lock("order", &n.to_string()).await);
        }
        assert!(
            locks.entries() <= SWEEP_AT_LEAST + 1,
            "{} entries left",
            locks.entries()
        );
        let same = tokio::time::timeout(Duration::from_millis(50), locks.lock("product", "kept"));
        assert!(same.await.is_err(), "the sweep dropped a held lock");
        drop(held);
    }
}
