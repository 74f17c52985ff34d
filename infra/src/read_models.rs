//! Read models in Postgres. A read model is one unit: its record and pure `apply` (an
//! `eshop_projections::ReadModel`), its table (`Table`, or `JsonTable` for a record kept as one
//! JSON document with a few columns to query by), and its queries (`Records`, plus what its own
//! module adds). `projector::Projector` builds every one of them from the stream the same way,
//! and `registry::shop` lists the ones this shop keeps.

pub mod announcements;
pub mod calendar;
pub mod categories;
pub mod documents;
pub mod movies;
pub mod orders;
pub mod payments;
pub mod products;
pub mod progress;
pub mod rebuild;
pub mod registry;
pub mod users;

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use eshop_projections::cached::Entry;
pub use eshop_projections::ReadModel;
use eshop_projections::{ProjectionError, RelayedEvent};

use crate::personal_data::PersonalDataKeys;
use crate::relay::{EventRow, PUBLISHED_COLUMNS};
use progress::VersionWaits;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// Where a read model's records live: one row per aggregate, with its version.
pub trait Table: ReadModel {
    /// The tables it owns (a rebuild builds them anew beside these and swaps them in); the
    /// first has the record's `id` and `version` columns.
    const TABLES: &'static [&'static str];

    /// The records of `ids` that exist; with `for_update`, locked for the caller's transaction.
    fn load(
        connection: &mut PgConnection,
        ids: &[Uuid],
        for_update: bool,
    ) -> impl Future<Output = Result<Vec<Self>, sqlx::Error>> + Send;

    /// Writes `records`, each only over an older version of its row.
    fn upsert(
        connection: &mut PgConnection,
        records: &[&Self],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// The product whose cached views show this record (dropped from the cache once it changed).
    fn shown_on_product(&self) -> Option<Uuid> {
        None
    }

    /// The movie whose cached views show this record, and whether `events` (the batch that
    /// changed it) may have changed the genre counts.
    fn shown_on_movie(&self, _events: &[RelayedEvent]) -> Option<(Uuid, bool)> {
        None
    }

    /// The cached reads that show this record (dropped from the cache once it changed).
    fn cached_as(&self) -> Option<Entry> {
        self.shown_on_product().map(Entry::Product)
    }
}

/// A read model kept as one JSON document per row (`id uuid, record jsonb, version bigint`)
/// plus columns to query by, each filled by an SQL expression over `record`.
pub trait JsonTable: ReadModel + Serialize + DeserializeOwned {
    const TABLE: &'static str;
    /// `(column, expression over record)`, e.g. `("customer_id", "(record->>'customer_id')::uuid")`.
    const COLUMNS: &'static [(&'static str, &'static str)];

    fn shown_on_product(&self) -> Option<Uuid> {
        None
    }

    /// The cached reads that show this record (see `Table::cached_as`).
    fn cached_as(&self) -> Option<Entry> {
        JsonTable::shown_on_product(self).map(Entry::Product)
    }
}

impl<R: JsonTable> Table for R {
    const TABLES: &'static [&'static str] = &[R::TABLE];

    async fn load(
        connection: &mut PgConnection,
        ids: &[Uuid],
        for_update: bool,
    ) -> Result<Vec<Self>, sqlx::Error> {
        let lock = if for_update { " FOR UPDATE" } else { "" };
        let rows: Vec<(Json<R>,)> = sqlx::query_as(&format!(
            "SELECT record FROM {} WHERE id = ANY($1){lock}",
            R::TABLE
        ))
        .bind(ids)
        .fetch_all(connection)
        .await?;
        Ok(rows.into_iter().map(|(Json(record),)| record).collect())
    }

    async fn upsert(connection: &mut PgConnection, records: &[&Self]) -> Result<(), sqlx::Error> {
        if records.is_empty() {
            return Ok(());
        }
        let table = R::TABLE;
        let names: String = R::COLUMNS
            .iter()
            .map(|(name, _)| format!(", {name}"))
            .collect();
        let values: String = R::COLUMNS
            .iter()
            .map(|(_, expression)| format!(", {expression}"))
            .collect();
        let updates: String = R::COLUMNS
            .iter()
            .map(|(name, _)| format!(", {name} = EXCLUDED.{name}"))
            .collect();
        // One statement for the whole batch; `record` names the row's document in the column
        // expressions.
        sqlx::query(&format!(
            "INSERT INTO {table} (id, version, record{names})
             SELECT id, version, record{values}
               FROM UNNEST($1::uuid[], $2::bigint[], $3::jsonb[]) AS changed(id, version, record)
             ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, record = EXCLUDED.record{updates}
             WHERE {table}.version < EXCLUDED.version"
        ))
        .bind(records.iter().map(|r| r.id()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| version_column(r.version())).collect::<Vec<_>>())
        .bind(records.iter().map(|r| Json(*r)).collect::<Vec<_>>())
        .execute(connection)
        .await?;
        Ok(())
    }

    fn shown_on_product(&self) -> Option<Uuid> {
        JsonTable::shown_on_product(self)
    }

    fn cached_as(&self) -> Option<Entry> {
        JsonTable::cached_as(self)
    }
}

/// A version as the `bigint` column keeps it.
pub(crate) fn version_column(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

/// Reads what the stream skipped from the store (the truth): the events of one aggregate
/// between two sequences, as the relay publishes them, personal fields opened.
pub struct StoreReader {
    keys: PersonalDataKeys,
}

impl StoreReader {
    pub fn new(keys: PersonalDataKeys) -> Self {
        Self { keys }
    }

    /// Events `from..to` (sequences) of one aggregate, in order.
    pub async fn missing(
        &self,
        connection: &mut PgConnection,
        aggregate_type: &str,
        aggregate_id: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<RelayedEvent>, ApplyError> {
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "SELECT {PUBLISHED_COLUMNS} FROM events
              WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence >= $3 AND sequence < $4
              ORDER BY sequence"
        ))
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(version_column(from))
        .bind(version_column(to))
        .fetch_all(&mut *connection)
        .await?;
        let mut events: Vec<RelayedEvent> = rows.into_iter().map(EventRow::published).collect();
        self.keys
            .unseal_all(events.iter_mut().map(|event| {
                (
                    event.aggregate_type.as_str(),
                    event.aggregate_id.as_str(),
                    &mut event.payload,
                )
            }))
            .await?;
        Ok(events)
    }
}

/// Applies `events` (in stream order) to read model `R` inside the caller's transaction: locks
/// the rows they touch, evolves them with `R::apply`, and writes those that changed. An event
/// that arrives after a gap (its predecessors were delivered elsewhere, or not yet) first has the
/// missing events read from the store. Returns the records that changed.
pub async fn apply_events<R: Table>(
    connection: &mut PgConnection,
    events: &[RelayedEvent],
    store: &StoreReader,
) -> Result<Vec<R>, ApplyError> {
    let ids = aggregate_ids(events)?;
    let mut records: HashMap<Uuid, R> = R::load(&mut *connection, &ids, true)
        .await?
        .into_iter()
        .map(|record| (record.id(), record))
        .collect();
    let mut changed: Vec<Uuid> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for event in events {
        if let Some(id) = apply_one(&mut *connection, &mut records, event, store).await? {
            if seen.insert(id) {
                changed.push(id);
            }
        }
    }
    let changed: Vec<&R> = changed.iter().filter_map(|id| records.get(id)).collect();
    R::upsert(&mut *connection, &changed).await?;
    Ok(changed.into_iter().cloned().collect())
}

/// Like `apply_events`, but into records the caller keeps between calls (a rebuild folds many
/// events into each record before it writes it once): the records of `events` not in
/// `records` yet are read (unlocked) first; the ids that changed are added to `dirty`.
pub async fn fold_events<R: Table>(
    connection: &mut PgConnection,
    records: &mut HashMap<Uuid, R>,
    dirty: &mut std::collections::HashSet<Uuid>,
    events: &[RelayedEvent],
    store: &StoreReader,
) -> Result<(), ApplyError> {
    let missing: Vec<Uuid> = aggregate_ids(events)?
        .into_iter()
        .filter(|id| !records.contains_key(id))
        .collect();
    if !missing.is_empty() {
        for record in R::load(&mut *connection, &missing, false).await? {
            records.insert(record.id(), record);
        }
    }
    for event in events {
        if let Some(id) = apply_one(&mut *connection, records, event, store).await? {
            dirty.insert(id);
        }
    }
    Ok(())
}

/// Evolves the record of `event`'s aggregate in `records` in place (`R::evolve`), filling a
/// gap from the store; returns its id when it changed.
async fn apply_one<R: ReadModel>(
    connection: &mut PgConnection,
    records: &mut HashMap<Uuid, R>,
    event: &RelayedEvent,
    store: &StoreReader,
) -> Result<Option<Uuid>, ApplyError> {
    let id: Uuid = event
        .aggregate_id
        .parse()
        .map_err(|error| event.unreadable(error))?;
    let mut record = records.remove(&id);
    let outcome = evolve_filling_gaps(connection, &mut record, event, store).await;
    if let Some(record) = record {
        records.insert(id, record);
    }
    Ok(outcome?.then_some(id))
}

async fn evolve_filling_gaps<R: ReadModel>(
    connection: &mut PgConnection,
    record: &mut Option<R>,
    event: &RelayedEvent,
    store: &StoreReader,
) -> Result<bool, ApplyError> {
    match R::evolve(record, event) {
        Err(ProjectionError::Gap { expected, got, .. }) => {
            let missing = store
                .missing(
                    &mut *connection,
                    &event.aggregate_type,
                    &event.aggregate_id,
                    expected,
                    got,
                )
                .await?;
            // On a copy (gaps are rare): an event that fails leaves the record as it was.
            let mut filled = record.clone();
            for event in missing.iter().chain(std::iter::once(event)) {
                R::evolve(&mut filled, event)?;
            }
            *record = filled;
            Ok(true)
        }
        outcome => Ok(outcome?),
    }
}

/// The distinct aggregate ids of `events`, as UUIDs.
fn aggregate_ids(events: &[RelayedEvent]) -> Result<Vec<Uuid>, ProjectionError> {
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    let mut ids = Vec::new();
    for event in events {
        let id: Uuid = event
            .aggregate_id
            .parse()
            .map_err(|error| event.unreadable(error))?;
        if seen.insert(id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// The queries every read model answers: a record by id, and a record once it reached a version
/// (read-your-writes).
pub struct Records<R> {
    pool: PgPool,
    waits: VersionWaits,
    model: PhantomData<fn() -> R>,
}

impl<R> Clone for Records<R> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            waits: self.waits.clone(),
            model: PhantomData,
        }
    }
}

impl<R: Table> Records<R> {
    /// Waits on a listener of its own (started on the first wait); share one per process with
    /// `waiting_on`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            waits: VersionWaits::new(pool.clone()),
            pool,
            model: PhantomData,
        }
    }

    pub fn waiting_on(self, waits: VersionWaits) -> Self {
        Self { waits, ..self }
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<R>, sqlx::Error> {
        let mut connection = self.pool.acquire().await?;
        Ok(R::load(&mut connection, &[id], false).await?.pop())
    }

    /// The record once it reflects `version`, or `None` after `timeout` (see
    /// `VersionWaits::read_when`: no polling).
    pub async fn wait_for_version(
        &self,
        id: Uuid,
        version: u64,
        timeout: Duration,
    ) -> Result<Option<R>, sqlx::Error> {
        self.waits
            .read_when(R::NAME, id, version, timeout, || self.get(id), R::version)
            .await
    }

    /// Whether every record of `wanted` reflects its version, waiting up to `timeout` (see
    /// `VersionWaits::all_reached`).
    pub async fn wait_for_versions(
        &self,
        wanted: &[(Uuid, u64)],
        timeout: Duration,
    ) -> Result<bool, sqlx::Error> {
        self.waits
            .all_reached(R::NAME, R::TABLES[0], wanted, timeout)
            .await
    }
}
