//! Reads of the event history for auditors: the global feed by position and one aggregate's
//! stream, as published (secrets removed, personal fields sealed).

use sqlx::PgPool;

use eshop_projections::RelayedEvent;

use crate::relay::{EventRow, PUBLISHED_COLUMNS};

/// The event history, read for auditors.
#[derive(Clone)]
pub struct AuditLog {
    pool: PgPool,
}

impl AuditLog {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Committed events after `after_position`, by position. A position is taken at insert,
    /// so a transaction still in flight may later fill a gap below the last one shown: a
    /// reader that follows the shop live should subscribe to the NATS stream instead.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn feed(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<RelayedEvent>, sqlx::Error> {
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "SELECT {PUBLISHED_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
        ))
        .bind(after_position)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(EventRow::published).collect())
    }

    /// One aggregate's events in sequence.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<RelayedEvent>, sqlx::Error> {
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "SELECT {PUBLISHED_COLUMNS} FROM events
              WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence"
        ))
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(EventRow::published).collect())
    }
}
