//! Reads of the event history for auditors: the global feed by position (with filters), one
//! aggregate's stream, one correlation's story, an aggregate's state as of a moment, the export,
//! and the hash chain that makes the history tamper-evident. Events appear as published
//! (secrets removed, personal fields sealed).

pub mod chain;
pub mod export;
pub mod sealer;
pub mod state;
pub mod verify;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};

use eshop_projections::RelayedEvent;

use crate::relay::{EventRow, PUBLISHED_COLUMNS};

/// Which events the feed shows; every filter set must match.
#[derive(Debug, Clone, Default)]
pub struct FeedFilter {
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub event_type: Option<String>,
    /// A user id or `system` (the metadata's `actor`).
    pub actor: Option<String>,
    pub correlation_id: Option<String>,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
}

impl FeedFilter {
    fn push_conditions(&self, query: &mut QueryBuilder<'_, Postgres>) {
        let text_filters = [
            ("aggregate_type", &self.aggregate_type),
            ("aggregate_id", &self.aggregate_id),
            ("event_type", &self.event_type),
            // The expressions of the events_by_actor and events_by_correlation indexes.
            ("(metadata ->> 'actor')", &self.actor),
            ("(metadata ->> 'correlation_id')", &self.correlation_id),
        ];
        for (column, value) in text_filters {
            if let Some(value) = value {
                query
                    .push(format!(" AND {column} = "))
                    .push_bind(value.clone());
            }
        }
        if let Some(from) = self.from {
            query.push(" AND recorded_at >= ").push_bind(from);
        }
        if let Some(to) = self.to {
            query.push(" AND recorded_at < ").push_bind(to);
        }
    }
}

/// Committed events after `after_position` that pass `filter`, by position. A position is
/// taken at insert, so a transaction still in flight may later fill a gap below the last one
/// shown: a reader that follows the shop live should subscribe to the NATS stream (or use the
/// export, which reads in commit-safe order).
pub async fn feed(
    pool: &PgPool,
    after_position: i64,
    limit: i64,
    filter: &FeedFilter,
) -> Result<Vec<RelayedEvent>, sqlx::Error> {
    let mut query = QueryBuilder::new(format!(
        "SELECT {PUBLISHED_COLUMNS} FROM events WHERE position > "
    ));
    query.push_bind(after_position);
    filter.push_conditions(&mut query);
    query.push(" ORDER BY position LIMIT ").push_bind(limit);
    let rows: Vec<EventRow> = query.build_query_as().fetch_all(pool).await?;
    Ok(rows.into_iter().map(EventRow::published).collect())
}

/// One aggregate's events in sequence.
pub async fn stream(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<RelayedEvent>, sqlx::Error> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {PUBLISHED_COLUMNS} FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence"
    ))
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(EventRow::published).collect())
}

/// Every event one request or one order process caused, across aggregates, in commit order.
///
/// A request's events carry its correlation id; the order process correlates its steps with
/// the order's id. So the story of a purchase joins both: the events of `correlation_id`, those
/// of every order placed under it, and, when `correlation_id` is an order's id, those of the
/// request that placed it.
pub async fn correlation(
    pool: &PgPool,
    correlation_id: &str,
) -> Result<Vec<RelayedEvent>, sqlx::Error> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "WITH story(correlation_id) AS (
             SELECT $1::text
             UNION
             SELECT aggregate_id FROM events
              WHERE (metadata ->> 'correlation_id') = $1
                AND aggregate_type = 'order' AND sequence = 1
             UNION
             SELECT metadata ->> 'correlation_id' FROM events
              WHERE aggregate_type = 'order' AND aggregate_id = $1 AND sequence = 1
         )
         SELECT {PUBLISHED_COLUMNS} FROM events
          WHERE (metadata ->> 'correlation_id') IN (SELECT correlation_id FROM story)
          ORDER BY xid, position"
    ))
    .bind(correlation_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(EventRow::published).collect())
}
