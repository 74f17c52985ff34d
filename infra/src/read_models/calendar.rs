//! The economic calendar's table (`calendar_events`: one JSON document per entry, with the
//! columns its list pages filter and sort by) and its queries.

use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

use eshop_projections::cached::Entry;
use eshop_projections::calendar::{CalendarQuery, CalendarRecord};

use super::progress::VersionWaits;
use super::{JsonTable, Records};
use crate::profile::timed;

impl JsonTable for CalendarRecord {
    const TABLE: &'static str = "calendar_events";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("date", "(record->>'date')::date"),
        ("time", "(record->>'time')::time"),
        ("name", "record->>'name'"),
        ("country", "record->>'country'"),
        ("importance", "record->>'importance'"),
        ("deleted", "(record->>'deleted')::boolean"),
    ];

    fn cached_as(&self) -> Option<Entry> {
        Some(Entry::CalendarEvent(self.id))
    }
}

/// One page of entries: a single statement (the cursor's sort key is read inside it).
const LIST: &str = "
SELECT record - 'revisions'
  FROM calendar_events
 WHERE NOT deleted
   AND (cardinality($1::text[]) = 0 OR country = ANY($1))
   AND (cardinality($2::text[]) = 0 OR importance = ANY($2))
   AND ($3::date IS NULL OR date >= $3)
   AND ($4::date IS NULL OR date <= $4)
   AND ($5::uuid IS NULL
        OR (date, time, name, id) > (SELECT date, time, name, id FROM calendar_events WHERE id = $5))
 ORDER BY date, time, name, id
 LIMIT $6";

#[derive(Clone)]
pub struct PgCalendar {
    pool: PgPool,
    records: Records<CalendarRecord>,
}

impl PgCalendar {
    pub fn new(pool: PgPool) -> Self {
        Self {
            records: Records::new(pool.clone()),
            pool,
        }
    }

    /// Waits for versions on the process's shared listener.
    pub fn waiting_on(self, waits: VersionWaits) -> Self {
        Self {
            records: self.records.waiting_on(waits),
            ..self
        }
    }

    /// An entry with its revisions (deleted ones too: the caller decides).
    pub async fn get(&self, id: Uuid) -> Result<Option<CalendarRecord>, sqlx::Error> {
        self.records.get(id).await
    }

    pub async fn wait_for_version(
        &self,
        id: Uuid,
        version: u64,
        timeout: std::time::Duration,
    ) -> Result<Option<CalendarRecord>, sqlx::Error> {
        self.records.wait_for_version(id, version, timeout).await
    }

    /// A page ordered by date, time, name (and id), without revisions.
    pub async fn list(&self, query: &CalendarQuery) -> Result<Vec<CalendarRecord>, sqlx::Error> {
        let importances: Vec<&str> = query.importances.iter().map(|i| i.as_str()).collect();
        let statement = sqlx::query_as(LIST)
            .bind(&query.countries)
            .bind(&importances)
            .bind(query.from)
            .bind(query.to)
            .bind(query.after)
            .bind(i64::from(query.limit))
            .fetch_all(&self.pool);
        let rows: Vec<(Json<CalendarRecord>,)> = timed("calendar.list", statement).await?;
        Ok(rows.into_iter().map(|(Json(record),)| record).collect())
    }
}
