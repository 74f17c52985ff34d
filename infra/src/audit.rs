//! Reads of the event history for auditors: the global feed by position and one aggregate's
//! stream, as published (secrets removed, personal fields sealed).

use sqlx::PgPool;

use eshop_projections::RelayedEvent;

use crate::relay::without_unpublished_fields;

type Row = (
    i64,
    String,
    String,
    i64,
    String,
    String,
    serde_json::Value,
    serde_json::Value,
    chrono::DateTime<chrono::Utc>,
);

const COLUMNS: &str = "position, aggregate_type, aggregate_id, sequence, event_type, \
                       event_version, payload, metadata, recorded_at";

fn envelope(row: Row) -> RelayedEvent {
    let (
        position,
        aggregate_type,
        aggregate_id,
        sequence,
        event_type,
        event_version,
        payload,
        metadata,
        recorded_at,
    ) = row;
    RelayedEvent {
        payload: without_unpublished_fields(&aggregate_type, payload),
        position,
        aggregate_type,
        aggregate_id,
        sequence: u64::try_from(sequence).unwrap_or_default(),
        event_type,
        event_version,
        recorded_at,
        metadata,
    }
}

/// Committed events after `after_position`, by position. A position is taken at insert, so
/// a transaction still in flight may later fill a gap below the last one shown: a reader that
/// follows the shop live should subscribe to the NATS stream instead.
pub async fn feed(
    pool: &PgPool,
    after_position: i64,
    limit: i64,
) -> Result<Vec<RelayedEvent>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
    ))
    .bind(after_position)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(envelope).collect())
}

/// One aggregate's events in sequence.
pub async fn stream(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<RelayedEvent>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence"
    ))
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(envelope).collect())
}
