//! The export: every event as published (the envelope of docs/events.md), in commit-safe order,
//! a page at a time so that memory stays the same whatever the size. Resumable: `after` names
//! the position of the last event read, and the export goes on from its place in the order.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use eshop_projections::RelayedEvent;

use crate::commit_order::{CommitPoint, COMMIT_SAFE_AFTER};
use crate::relay::{EventRow, PUBLISHED_COLUMNS};

/// Where an export stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// After the event at this position (in commit order).
    Position(i64),
    /// Only events recorded at or before this time.
    Time(DateTime<Utc>),
}

#[derive(Debug, Clone, Default)]
pub struct ExportRange {
    /// The position of the last event already read (0: from the start).
    pub after: i64,
    pub until: Option<Until>,
    pub aggregate_type: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no event has the position {position} (`{field}`)")]
    UnknownPosition { field: &'static str, position: i64 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Rows per page: large enough that a round trip is a small part of a page's cost.
pub const PAGE_SIZE: i64 = 5000;

#[derive(sqlx::FromRow)]
struct ExportRow {
    xid: i64,
    #[sqlx(flatten)]
    event: EventRow,
}

/// An export in progress.
pub struct Export {
    pool: PgPool,
    cursor: CommitPoint,
    end: Option<CommitPoint>,
    until_time: Option<DateTime<Utc>>,
    aggregate_type: Option<String>,
    page_size: i64,
    finished: bool,
    /// The page query: `$1, $2` the cursor, then the bounds present, then the limit.
    sql: String,
}

async fn commit_point_of(
    pool: &PgPool,
    field: &'static str,
    position: i64,
) -> Result<CommitPoint, ExportError> {
    let xid: Option<i64> =
        sqlx::query_scalar("SELECT xid::text::bigint FROM events WHERE position = $1")
            .bind(position)
            .fetch_optional(pool)
            .await?;
    let xid = xid.ok_or(ExportError::UnknownPosition { field, position })?;
    Ok(CommitPoint {
        xid: u64::try_from(xid).unwrap_or_default(),
        position,
    })
}

impl Export {
    pub async fn start(pool: &PgPool, range: ExportRange) -> Result<Self, ExportError> {
        Self::with_page_size(pool, range, PAGE_SIZE).await
    }

    pub async fn with_page_size(
        pool: &PgPool,
        range: ExportRange,
        page_size: i64,
    ) -> Result<Self, ExportError> {
        let cursor = if range.after == 0 {
            CommitPoint::START
        } else {
            commit_point_of(pool, "after", range.after).await?
        };
        let (end, until_time) = match range.until {
            Some(Until::Position(position)) => {
                (Some(commit_point_of(pool, "until", position).await?), None)
            }
            Some(Until::Time(time)) => (None, Some(time)),
            None => (None, None),
        };
        let mut sql = format!(
            "SELECT xid::text::bigint AS xid, {PUBLISHED_COLUMNS} FROM events WHERE {COMMIT_SAFE_AFTER}"
        );
        let mut next_parameter = 3;
        let mut parameter = || {
            next_parameter += 1;
            next_parameter - 1
        };
        if end.is_some() {
            let (xid, position) = (parameter(), parameter());
            sql += &format!(" AND (xid, position) <= (${xid}::text::xid8, ${position})");
        }
        if until_time.is_some() {
            sql += &format!(" AND recorded_at <= ${}", parameter());
        }
        if range.aggregate_type.is_some() {
            sql += &format!(" AND aggregate_type = ${}", parameter());
        }
        sql += &format!(
            " ORDER BY events.xid, events.position LIMIT ${}",
            parameter()
        );
        Ok(Self {
            pool: pool.clone(),
            cursor,
            end,
            until_time,
            aggregate_type: range.aggregate_type,
            page_size,
            finished: false,
            sql,
        })
    }

    /// The position of the last event returned (pass it as `after` to resume).
    pub fn last_position(&self) -> i64 {
        self.cursor.position
    }

    /// How many events the export has still to go, counted now (for a progress bar; events
    /// appended meanwhile add to it).
    pub async fn remaining(&self) -> Result<i64, sqlx::Error> {
        let mut sql =
            "SELECT count(*) FROM events WHERE (xid, position) > ($1::text::xid8, $2)".to_string();
        let mut next_parameter = 3;
        if self.end.is_some() {
            sql += &format!(
                " AND (xid, position) <= (${}::text::xid8, ${})",
                next_parameter,
                next_parameter + 1
            );
            next_parameter += 2;
        }
        if self.until_time.is_some() {
            sql += &format!(" AND recorded_at <= ${next_parameter}");
            next_parameter += 1;
        }
        if self.aggregate_type.is_some() {
            sql += &format!(" AND aggregate_type = ${next_parameter}");
        }
        let mut query = sqlx::query_scalar(&sql)
            .bind(self.cursor.xid.to_string())
            .bind(self.cursor.position);
        if let Some(end) = self.end {
            query = query.bind(end.xid.to_string()).bind(end.position);
        }
        if let Some(time) = self.until_time {
            query = query.bind(time);
        }
        if let Some(aggregate_type) = &self.aggregate_type {
            query = query.bind(aggregate_type.clone());
        }
        query.fetch_one(&self.pool).await
    }

    /// The next events in commit order; empty once the export is complete.
    pub async fn next_page(&mut self) -> Result<Vec<RelayedEvent>, sqlx::Error> {
        if self.finished {
            return Ok(Vec::new());
        }
        let mut query = sqlx::query_as::<_, ExportRow>(&self.sql)
            .bind(self.cursor.xid.to_string())
            .bind(self.cursor.position);
        if let Some(end) = self.end {
            query = query.bind(end.xid.to_string()).bind(end.position);
        }
        if let Some(time) = self.until_time {
            query = query.bind(time);
        }
        if let Some(aggregate_type) = &self.aggregate_type {
            query = query.bind(aggregate_type.clone());
        }
        let rows = query.bind(self.page_size).fetch_all(&self.pool).await?;
        if (rows.len() as i64) < self.page_size {
            // Events committed later come after this point: a resumed export finds them.
            self.finished = true;
        }
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let event = row.event.published();
            self.cursor = CommitPoint {
                xid: u64::try_from(row.xid).unwrap_or_default(),
                position: event.position,
            };
            events.push(event);
        }
        Ok(events)
    }
}

/// Appends `events` to `out` as NDJSON: one envelope per line, as published on NATS.
pub fn write_lines(out: &mut Vec<u8>, events: &[RelayedEvent]) -> Result<(), serde_json::Error> {
    for event in events {
        serde_json::to_writer(&mut *out, event)?;
        out.push(b'\n');
    }
    Ok(())
}
