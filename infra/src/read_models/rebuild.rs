//! Rebuild without downtime: a read model is built again from the event store beside the live
//! one, then takes its place in one transaction.
//!
//! 1. Its tables are created empty in a schema of their own (`eshop_rebuild_<name>`, `LIKE` the
//!    live ones, keys but no other index yet), and a connection whose `search_path` puts that
//!    schema first runs the same generic code the live builder runs (`apply_events`: the pure
//!    `ReadModel::apply`, the table's `load` and `upsert`) over the store's events, a page at
//!    a time, in the commit-safe order of the relay (`(xid, position)`, below the horizon).
//! 2. The live tables' indexes are created on the new ones (same names), which are analysed.
//! 3. It catches up again, then swaps: one transaction takes the live tables `ACCESS EXCLUSIVE`
//!    (the live builder and readers wait a moment; neither fails), applies every event committed
//!    since, moves the live tables out (`eshop_retired_<name>`) and the new ones in. The live
//!    builder then goes on from its own stream position over the new tables: what the rebuild
//!    already applied it skips by version, and nothing committed after the swap is in them yet.
//!    Reads see the old tables until the swap and the whole new ones after: never empty, never
//!    partial, never older (every event the live builder applied had committed before the swap).
//! 4. The cache is dropped, the rows that moved ahead are announced (read-your-writes waiters),
//!    and the retired tables are dropped.
//!
//! Only projections run: the mailer and the order worker are not read models, and nothing here
//! publishes or sends. One rebuild per read model at a time (an advisory lock); its progress is
//! kept in `projection_rebuilds` for `GET /api/admin/projections`.

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

use eshop_projections::RelayedEvent;

use super::{apply_events, fold_events, progress, ApplyError, StoreReader, Table};
use crate::cache::Cache;
use crate::leader::lock_key;
use crate::personal_data::PersonalDataKeys;
use crate::relay::{EventRow, PUBLISHED_COLUMNS};

#[derive(Debug, Clone, Copy)]
pub struct RebuildSettings {
    /// Events read and applied in one step.
    pub page: i64,
    /// How long the swap waits for the live tables before it lets readers go on and retries.
    pub lock_timeout: Duration,
    /// Swaps tried (each after catching up again) before the rebuild gives up.
    pub swap_attempts: u32,
    /// Records kept in memory while building (each written once per this many): events of
    /// one aggregate fold into its record before the record is written.
    pub fold_records: usize,
}

impl Default for RebuildSettings {
    fn default() -> Self {
        Self {
            page: 5000,
            lock_timeout: Duration::from_secs(2),
            swap_attempts: 10,
            fold_records: 50_000,
        }
    }
}

/// What a rebuild needs, whatever the read model.
#[derive(Clone)]
pub struct RebuildContext {
    pub pool: PgPool,
    /// Dropped after the swap (none: nothing cached).
    pub cache: Option<Arc<Cache>>,
    pub settings: RebuildSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Starting,
    /// Applying the store's events to the new tables.
    Building,
    /// Creating the live tables' indexes on the new ones.
    Indexing,
    /// Applying what was appended meanwhile, then swapping.
    Swapping,
    Done,
    Failed,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Building => "building",
            Self::Indexing => "indexing",
            Self::Swapping => "swapping",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// How far a rebuild got (sent on the caller's `watch` channel and kept for the report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RebuildProgress {
    pub phase: Phase,
    pub events_done: u64,
    /// The read model's events when it started (more may be appended meanwhile).
    pub events_total: u64,
}

impl RebuildProgress {
    pub const START: Self = Self {
        phase: Phase::Starting,
        events_done: 0,
        events_total: 0,
    };

    /// 0 to 100; 100 only once swapped.
    pub fn percent(&self) -> u8 {
        match self.phase {
            Phase::Done => 100,
            _ if self.events_total == 0 => 0,
            _ => u8::try_from((self.events_done * 99 / self.events_total).min(99)).unwrap_or(99),
        }
    }
}

/// A finished rebuild.
#[derive(Debug, Clone, Serialize)]
pub struct Rebuilt {
    pub name: String,
    pub events: u64,
    pub rows: i64,
    pub seconds: f64,
    pub events_per_second: f64,
    /// Rows whose version the rebuilt table had ahead of the live one at the swap.
    pub rows_ahead: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("no read model is called {0:?}")]
    Unknown(String),
    #[error("a rebuild of {0} is already running")]
    AlreadyRunning(String),
    #[error("the live tables of {0} stayed busy: no swap after every attempt")]
    SwapTimedOut(String),
    #[error("cannot rebuild {name}: {detail}")]
    Unsupported { name: String, detail: String },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Keeps the caller's channel and the `projection_rebuilds` row up to date.
struct Reporter {
    pool: PgPool,
    name: &'static str,
    progress: watch::Sender<RebuildProgress>,
    current: RebuildProgress,
}

impl Reporter {
    async fn set(&mut self, phase: Phase, done: u64) {
        if phase != self.current.phase {
            tracing::info!(
                read_model = self.name,
                phase = phase.as_str(),
                events = done,
                "rebuild"
            );
        }
        self.current.phase = phase;
        self.current.events_done = done;
        self.current.events_total = self.current.events_total.max(done);
        let _ = self.progress.send(self.current);
        let recorded = sqlx::query(
            "UPDATE projection_rebuilds SET phase = $2, events_done = $3, events_total = $4, updated_at = now()
              WHERE name = $1",
        )
        .bind(self.name)
        .bind(phase.as_str())
        .bind(i64::try_from(self.current.events_done).unwrap_or(i64::MAX))
        .bind(i64::try_from(self.current.events_total).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await;
        if let Err(error) = recorded {
            tracing::warn!(read_model = self.name, error = %error, "cannot record the rebuild's progress");
        }
    }

    async fn finish(&mut self, error: Option<String>) {
        let phase = if error.is_some() {
            Phase::Failed
        } else {
            Phase::Done
        };
        self.current.phase = phase;
        let _ = self.progress.send(self.current);
        let recorded = sqlx::query(
            "UPDATE projection_rebuilds SET phase = $2, error = $3, updated_at = now(), finished_at = now()
              WHERE name = $1",
        )
        .bind(self.name)
        .bind(phase.as_str())
        .bind(error)
        .execute(&self.pool)
        .await;
        if let Err(error) = recorded {
            tracing::warn!(read_model = self.name, error = %error, "cannot record the rebuild's end");
        }
    }
}

/// The lock that lets one rebuild of a read model run at a time (held by its connection).
fn rebuild_lock(name: &str) -> i64 {
    lock_key(&format!("eshop-rebuild-{name}"))
}

/// A name Postgres takes as an identifier without quoting.
fn plain_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// Rebuilds read model `R`, stored in `Table` tables, beside the live one and swaps it in (see
/// the module's description). The default rebuild of every registered `Table`.
pub async fn shadow_tables<R: Table>(
    context: RebuildContext,
    progress: watch::Sender<RebuildProgress>,
) -> Result<Rebuilt, RebuildError> {
    let name = R::NAME;
    if !plain_identifier(name) || !R::TABLES.iter().all(|table| plain_identifier(table)) {
        return Err(RebuildError::Unsupported {
            name: name.into(),
            detail: "names must be lower-case identifiers".into(),
        });
    }
    let mut lock = context.pool.acquire().await?.detach();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(rebuild_lock(name))
        .fetch_one(&mut lock)
        .await?;
    if !locked {
        return Err(RebuildError::AlreadyRunning(name.into()));
    }
    sqlx::query(
        "INSERT INTO projection_rebuilds (name, phase, events_done, events_total, started_at, updated_at, finished_at, error)
         VALUES ($1, 'starting', 0, 0, now(), now(), NULL, NULL)
         ON CONFLICT (name) DO UPDATE SET phase = 'starting', events_done = 0, events_total = 0,
             started_at = now(), updated_at = now(), finished_at = NULL, error = NULL",
    )
    .bind(name)
    .execute(&context.pool)
    .await?;
    let mut reporter = Reporter {
        pool: context.pool.clone(),
        name,
        progress,
        current: RebuildProgress::START,
    };
    let started = Instant::now();
    let outcome = Shadow::<R>::start(&context).await;
    let outcome = match outcome {
        Ok(mut shadow) => {
            let outcome = shadow.run(&context, &mut reporter).await;
            if outcome.is_err() {
                shadow.discard().await;
            }
            outcome.map(|rows_ahead| (shadow, rows_ahead))
        }
        Err(error) => Err(error),
    };
    let result = match outcome {
        Ok((shadow, rows_ahead)) => {
            reporter.finish(None).await;
            let seconds = started.elapsed().as_secs_f64();
            #[allow(clippy::cast_precision_loss)] // a rate, not money
            let events_per_second = shadow.applied as f64 / seconds.max(1e-9);
            Ok(Rebuilt {
                name: name.into(),
                events: shadow.applied,
                rows: shadow.rows,
                seconds,
                events_per_second,
                rows_ahead,
            })
        }
        Err(error) => {
            tracing::error!(read_model = name, error = %error, "the rebuild failed; the live read model is unchanged");
            reporter.finish(Some(error.to_string())).await;
            Err(error)
        }
    };
    let _ = lock.close().await;
    result
}

/// A read model's new tables while they are built.
struct Shadow<R> {
    connection: PgConnection,
    /// Where the live tables are (the pool's current schema).
    live: String,
    schema: String,
    retired: String,
    keys: PersonalDataKeys,
    store: StoreReader,
    /// The last event applied, in commit order (`xid` as text, position).
    cursor: (String, i64),
    applied: u64,
    rows: i64,
    model: PhantomData<fn() -> R>,
}

/// The `(xid, position)` and the event of a row.
#[derive(sqlx::FromRow)]
struct OrderedRow {
    xid: String,
    #[sqlx(flatten)]
    event: EventRow,
}

impl<R: Table> Shadow<R> {
    /// Empty new tables, with the live ones' columns, defaults, checks and keys.
    async fn start(context: &RebuildContext) -> Result<Self, RebuildError> {
        let name = R::NAME;
        let mut connection = context.pool.acquire().await?.detach();
        let live: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&mut connection)
            .await?;
        let schema = format!("eshop_rebuild_{name}");
        let retired = format!("eshop_retired_{name}");
        // Left over by a rebuild that died: this one holds the lock, nobody else uses them.
        for leftover in [&schema, &retired] {
            sqlx::query(&format!("DROP SCHEMA IF EXISTS {leftover} CASCADE"))
                .execute(&mut connection)
                .await?;
        }
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut connection)
            .await?;
        for table in R::TABLES {
            sqlx::query(&format!(
                "CREATE TABLE {schema}.{table} (LIKE \"{live}\".{table} INCLUDING ALL EXCLUDING INDEXES)"
            ))
            .execute(&mut connection)
            .await?;
            // Keys first: the upserts' ON CONFLICT needs them.
            let keys: Vec<(String, String)> = sqlx::query_as(
                "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
                  WHERE conrelid = format('%I.%I', $1::text, $2::text)::regclass AND contype IN ('p', 'u', 'x')",
            )
            .bind(&live)
            .bind(table)
            .fetch_all(&mut connection)
            .await?;
            for (key, definition) in keys {
                sqlx::query(&format!(
                    "ALTER TABLE {schema}.{table} ADD CONSTRAINT \"{key}\" {definition}"
                ))
                .execute(&mut connection)
                .await?;
            }
        }
        // From here on this connection's unqualified table names are the new tables (the
        // store's and every other table stay the live schema's).
        sqlx::query(&format!("SET search_path TO {schema}, \"{live}\""))
            .execute(&mut connection)
            .await?;
        // A generic plan of the page query (whatever the cursor) sorted every remaining event
        // of the type for each page: 0.6 s a page over 200,000 events, against 15 ms planned
        // for the cursor at hand (the commit-order index, read in order).
        sqlx::query("SET plan_cache_mode = force_custom_plan")
            .execute(&mut connection)
            .await?;
        let keys = PersonalDataKeys::new(context.pool.clone());
        Ok(Self {
            connection,
            live,
            schema,
            retired,
            store: StoreReader::new(keys.clone()),
            keys,
            cursor: ("0".into(), 0),
            applied: 0,
            rows: 0,
            model: PhantomData,
        })
    }

    async fn run(
        &mut self,
        context: &RebuildContext,
        reporter: &mut Reporter,
    ) -> Result<usize, RebuildError> {
        let total: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = $1")
                .bind(R::AGGREGATE_TYPE)
                .fetch_one(&mut self.connection)
                .await?;
        reporter.current.events_total = u64::try_from(total).unwrap_or_default();
        reporter.set(Phase::Building, 0).await;
        self.catch_up(context, Some(reporter)).await?;
        reporter.set(Phase::Indexing, self.applied).await;
        self.create_indexes().await?;
        reporter.set(Phase::Swapping, self.applied).await;
        for attempt in 1..=context.settings.swap_attempts {
            self.catch_up(context, Some(reporter)).await?;
            match self.swap(context).await {
                Ok(()) => return Ok(self.after_swap(context).await),
                Err(RebuildError::Database(error)) if is_lock_timeout(&error) => {
                    tracing::info!(
                        read_model = R::NAME,
                        attempt,
                        "the live tables are busy; catching up again before the next swap"
                    );
                }
                Err(error) => return Err(error),
            }
        }
        Err(RebuildError::SwapTimedOut(R::NAME.into()))
    }

    /// Applies the events after the cursor up to the commit-safe horizon (nothing can later
    /// commit before it), page by page, folding them into records kept in memory that are
    /// written once per `fold_records` (and at the end). A connection of its own reads the next
    /// page while this one folds the last.
    async fn catch_up(
        &mut self,
        context: &RebuildContext,
        mut reporter: Option<&mut Reporter>,
    ) -> Result<(), RebuildError> {
        let page = context.settings.page;
        let mut reader = context.pool.acquire().await?.detach();
        sqlx::query("SET plan_cache_mode = force_custom_plan")
            .execute(&mut reader)
            .await?;
        let (pages, mut arriving) = tokio::sync::mpsc::channel(2);
        let (mut cursor, keys) = (self.cursor.clone(), self.keys.clone());
        let reading = tokio::spawn(async move {
            loop {
                let read = Self::read_page(&mut reader, &mut cursor, page, true, &keys).await;
                let last = !matches!(&read, Ok(events) if events.len() as i64 == page);
                let sent = pages
                    .send(read.map(|events| (events, cursor.clone())))
                    .await;
                if sent.is_err() || last {
                    break;
                }
            }
            let _ = reader.close().await;
        });
        let mut records: HashMap<Uuid, R> = HashMap::new();
        let mut dirty: HashSet<Uuid> = HashSet::new();
        while let Some(read) = arriving.recv().await {
            let (events, cursor) = read?;
            let timer = Instant::now();
            fold_events(
                &mut self.connection,
                &mut records,
                &mut dirty,
                &events,
                &self.store,
            )
            .await?;
            self.cursor = cursor;
            self.applied += events.len() as u64;
            tracing::debug!(
                read_model = R::NAME,
                events = events.len(),
                fold_ms = timer.elapsed().as_millis(),
                "page"
            );
            if records.len() >= context.settings.fold_records {
                self.flush(&mut records, &mut dirty).await?;
            }
            if let Some(reporter) = reporter.as_deref_mut() {
                reporter.set(reporter.current.phase, self.applied).await;
            }
        }
        let _ = reading.await;
        self.flush(&mut records, &mut dirty).await
    }

    /// Writes the records that changed, in statements of a few thousand, and forgets them all.
    async fn flush(
        &mut self,
        records: &mut HashMap<Uuid, R>,
        dirty: &mut HashSet<Uuid>,
    ) -> Result<(), RebuildError> {
        let changed: Vec<&R> = dirty.iter().filter_map(|id| records.get(id)).collect();
        let mut tx = self.connection.begin().await?;
        for chunk in changed.chunks(5000) {
            R::upsert(&mut tx, chunk).await?;
        }
        tx.commit().await?;
        records.clear();
        dirty.clear();
        Ok(())
    }

    /// The read model's next events after `cursor` in `(xid, position)` order, personal fields
    /// opened; moves the cursor. `safe`: only below the horizon (otherwise every committed
    /// event, for the swap, which holds the live tables meanwhile).
    async fn read_page(
        connection: &mut PgConnection,
        cursor: &mut (String, i64),
        page: i64,
        safe: bool,
        keys: &PersonalDataKeys,
    ) -> Result<Vec<RelayedEvent>, RebuildError> {
        let horizon = if safe {
            "AND xid < pg_snapshot_xmin(pg_current_snapshot())"
        } else {
            ""
        };
        let rows: Vec<OrderedRow> = sqlx::query_as(&format!(
            "SELECT xid::text AS xid, {PUBLISHED_COLUMNS} FROM events
              WHERE aggregate_type = $3 AND (xid, position) > ($1::text::xid8, $2) {horizon}
              ORDER BY events.xid, events.position LIMIT $4"
        ))
        .bind(&cursor.0)
        .bind(cursor.1)
        .bind(R::AGGREGATE_TYPE)
        .bind(page)
        .fetch_all(&mut *connection)
        .await?;
        let Some(last_xid) = rows.last().map(|row| row.xid.clone()) else {
            return Ok(Vec::new());
        };
        let mut events: Vec<_> = rows.into_iter().map(|row| row.event.published()).collect();
        keys.unseal_all(events.iter_mut().map(|event| {
            (
                event.aggregate_type.as_str(),
                event.aggregate_id.as_str(),
                &mut event.payload,
            )
        }))
        .await?;
        *cursor = (last_xid, events.last().map_or(0, |event| event.position));
        Ok(events)
    }

    /// The live tables' other indexes, with their names, then fresh statistics.
    async fn create_indexes(&mut self) -> Result<(), RebuildError> {
        for table in R::TABLES {
            // Qualified names throughout (an operator class of an extension, say).
            let mut tx = self.connection.begin().await?;
            sqlx::query("SET LOCAL search_path TO pg_catalog")
                .execute(&mut *tx)
                .await?;
            let definitions: Vec<String> = sqlx::query_scalar(
                "SELECT pg_get_indexdef(indexrelid) FROM pg_index
                  WHERE indrelid = format('%I.%I', $1::text, $2::text)::regclass
                    AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = indexrelid)",
            )
            .bind(&self.live)
            .bind(table)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            let live_table = format!(" ON {}.{table} ", quote_if_needed(&self.live));
            let new_table = format!(" ON {}.{table} ", self.schema);
            for definition in definitions {
                if !definition.contains(&live_table) {
                    return Err(RebuildError::Unsupported {
                        name: R::NAME.into(),
                        detail: format!("an index this rebuild cannot copy: {definition}"),
                    });
                }
                sqlx::query(&definition.replacen(&live_table, &new_table, 1))
                    .execute(&mut self.connection)
                    .await?;
            }
            sqlx::query(&format!("ANALYZE {}.{table}", self.schema))
                .execute(&mut self.connection)
                .await?;
        }
        Ok(())
    }

    /// One transaction: the live tables held, the last events applied, the tables exchanged.
    async fn swap(&mut self, context: &RebuildContext) -> Result<(), RebuildError> {
        let cursor = self.cursor.clone();
        let applied = self.applied;
        let swapped = self.try_swap(context).await;
        if swapped.is_err() {
            // Rolled back: so are the events the attempt applied.
            self.cursor = cursor;
            self.applied = applied;
        }
        swapped
    }

    async fn try_swap(&mut self, context: &RebuildContext) -> Result<(), RebuildError> {
        let live = quote_if_needed(&self.live);
        let mut tx = self.connection.begin().await?;
        sqlx::query(&format!(
            "SET LOCAL lock_timeout = '{}ms'",
            context.settings.lock_timeout.as_millis()
        ))
        .execute(&mut *tx)
        .await?;
        let tables: Vec<String> = R::TABLES
            .iter()
            .map(|table| format!("{live}.{table}"))
            .collect();
        // The live builder waits here (its next batch reads the new tables), and so do reads.
        sqlx::query(&format!(
            "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
            tables.join(", ")
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query("SET LOCAL lock_timeout = 0")
            .execute(&mut *tx)
            .await?;
        // Every event committed by now, horizon or not: the live builder cannot have applied
        // one that is not (it only gets relayed, committed events, and it is held).
        loop {
            let events = Self::read_page(
                &mut tx,
                &mut self.cursor,
                context.settings.page,
                false,
                &self.keys,
            )
            .await?;
            apply_events::<R>(&mut tx, &events, &self.store).await?;
            self.applied += events.len() as u64;
            if (events.len() as i64) < context.settings.page {
                break;
            }
        }
        sqlx::query(&format!("CREATE SCHEMA {}", self.retired))
            .execute(&mut *tx)
            .await?;
        for table in R::TABLES {
            sqlx::query(&format!(
                "ALTER TABLE {live}.{table} SET SCHEMA {}",
                self.retired
            ))
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!(
                "ALTER TABLE {}.{table} SET SCHEMA {live}",
                self.schema
            ))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Drops the cache, announces the rows that moved ahead of the live ones, drops the retired
    /// tables. None of it can undo the swap: a failure is logged.
    async fn after_swap(&mut self, context: &RebuildContext) -> usize {
        if let Some(cache) = &context.cache {
            if !cache.invalidate_everything().await {
                tracing::warn!(read_model = R::NAME, "the cache could not be dropped after the swap; its entries expire with their TTL");
            }
        }
        let live = quote_if_needed(&self.live);
        let table = R::TABLES[0];
        let ahead: Result<Vec<(Uuid, i64)>, _> = sqlx::query_as(&format!(
            "SELECT new.id, new.version FROM {live}.{table} AS new
               LEFT JOIN {}.{table} AS old ON old.id = new.id
              WHERE old.id IS NULL OR old.version < new.version",
            self.retired
        ))
        .fetch_all(&mut self.connection)
        .await;
        let ahead: Vec<(Uuid, u64)> = match ahead {
            Ok(rows) => rows
                .into_iter()
                .map(|(id, version)| (id, u64::try_from(version).unwrap_or_default()))
                .collect(),
            Err(error) => {
                tracing::warn!(read_model = R::NAME, error = %error, "cannot list the rows the rebuild moved ahead");
                Vec::new()
            }
        };
        if let Err(error) = progress::announce(&mut self.connection, R::NAME, &ahead).await {
            tracing::warn!(read_model = R::NAME, error = %error, "cannot announce the rebuilt versions");
        }
        match sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {live}.{table}"))
            .fetch_one(&mut self.connection)
            .await
        {
            Ok(rows) => self.rows = rows,
            Err(error) => {
                tracing::warn!(read_model = R::NAME, error = %error, "cannot count the rows")
            }
        }
        self.discard().await;
        ahead.len()
    }

    /// Drops the new (unswapped) and retired tables.
    async fn discard(&mut self) {
        for schema in [&self.schema, &self.retired] {
            let dropped = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&mut self.connection)
                .await;
            if let Err(error) = dropped {
                tracing::warn!(read_model = R::NAME, error = %error, "cannot drop the rebuild's schema");
            }
        }
    }
}

/// `schema` as `pg_get_indexdef` and SQL text name it.
fn quote_if_needed(schema: &str) -> String {
    if plain_identifier(schema) {
        schema.to_string()
    } else {
        format!("\"{}\"", schema.replace('"', "\"\""))
    }
}

fn is_lock_timeout(error: &sqlx::Error) -> bool {
    // 55P03: lock_not_available.
    error
        .as_database_error()
        .and_then(|error| error.code())
        .is_some_and(|code| code == "55P03")
}

/// A rebuild's state, for `GET /api/admin/projections`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RebuildStatus {
    /// `starting`, `building`, `indexing`, `swapping`, `done`, `failed`, or `interrupted` (its
    /// process went away).
    pub phase: String,
    pub events_done: i64,
    pub events_total: i64,
    pub percent: u8,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

type StatusRow = (
    String,
    i64,
    i64,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<String>,
    bool,
);

/// The last rebuild of `name`, if any.
pub async fn status(pool: &PgPool, name: &str) -> Result<Option<RebuildStatus>, sqlx::Error> {
    // A bigint advisory lock shows in pg_locks as its high and low 32 bits.
    let key = u64::from_ne_bytes(rebuild_lock(name).to_ne_bytes());
    let (high, low) = (i64::from((key >> 32) as u32), i64::from(key as u32));
    let row: Option<StatusRow> = sqlx::query_as(
        "SELECT phase, events_done, events_total, started_at, updated_at, finished_at, error,
                EXISTS (SELECT 1 FROM pg_locks
                         WHERE locktype = 'advisory' AND granted AND objsubid = 1
                           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                           AND classid::int8 = $2 AND objid::int8 = $3) AS running
           FROM projection_rebuilds WHERE name = $1",
    )
    .bind(name)
    .bind(high)
    .bind(low)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(
        |(phase, done, total, started_at, updated_at, finished_at, error, running)| {
            let finished = phase == "done" || phase == "failed";
            let phase = if finished || running {
                phase
            } else {
                "interrupted".to_string()
            };
            let percent = if phase == "done" {
                100
            } else if total > 0 {
                u8::try_from((done.saturating_mul(99) / total).clamp(0, 99)).unwrap_or(99)
            } else {
                0
            };
            RebuildStatus {
                phase,
                events_done: done,
                events_total: total,
                percent,
                started_at,
                updated_at,
                finished_at,
                error,
            }
        },
    ))
}
