//! Scheduled jobs: tokio-cron-scheduler's in-memory scheduler fires each schedule on every
//! replica; the replica whose insert of (schedule, tick) into `schedule_runs` wins runs the
//! tick, so a tick runs once however many replicas fire it (its storage features need protoc
//! and do not stop two replicas from firing; a unique row does). The rows are the run history.
//!
//! - Schedules live in Postgres (the built-in ones are seeded rows). Every replica polls a
//!   fingerprint of the table and rebuilds its jobs when it changes: no restart needed.
//! - A tick is the schedule's own time, not the moment a replica noticed it: for a cron
//!   expression the latest occurrence at or before now (in `ESHOP_TZ`); for an interval, the
//!   latest multiple of it since the schedule was created; for a one-off, its time.
//! - A running job's replica updates its heartbeat; a run whose heartbeat stops (its process
//!   died) is marked `interrupted` by whichever replica looks next.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use tokio_cron_scheduler::{Job, JobScheduler};
use uuid::Uuid;

use crate::shutdown::Shutdown;
pub use eshop_commands::schedules::{ScheduleInput, ScheduleRecord, ScheduleSpec, SpecError};

use eshop_commands::BoxError;

/// How often a running job's replica says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// A cron schedule that fires later than this after its occurrence skips it.
const MISFIRE_GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
/// A run whose heartbeat is older than this was cut short.
pub const LEASE: Duration = Duration::from_secs(30);

/// A `schedules` row (`ScheduleRecord` as read).
#[derive(sqlx::FromRow)]
struct ScheduleRow {
    id: Uuid,
    name: String,
    job_kind: String,
    params: Value,
    cron: Option<String>,
    every_seconds: Option<i64>,
    run_at: Option<DateTime<Utc>>,
    enabled: bool,
    builtin: bool,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

impl From<ScheduleRow> for ScheduleRecord {
    fn from(row: ScheduleRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            job_kind: row.job_kind,
            params: row.params,
            cron: row.cron,
            every_seconds: row.every_seconds,
            run_at: row.run_at,
            enabled: row.enabled,
            builtin: row.builtin,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            version: row.version,
        }
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct RunRecord {
    pub id: Uuid,
    pub schedule_id: Uuid,
    pub tick: DateTime<Utc>,
    pub status: String,
    pub owner: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub result: Option<Value>,
}

/// One claimed tick, handed to the job.
#[derive(Debug, Clone)]
pub struct JobRun {
    pub run_id: Uuid,
    pub schedule_id: Uuid,
    pub tick: DateTime<Utc>,
    pub job_kind: String,
    pub params: Value,
}

/// What runs each job kind. `Err` is recorded as the run's error.
pub trait JobRunner: Send + Sync + 'static {
    fn run(&self, job: JobRun) -> impl Future<Output = Result<Value, String>> + Send;
}

const SCHEDULE_COLUMNS: &str = "id, name, job_kind, params, cron, every_seconds, run_at, enabled, builtin, created_by, created_at, updated_at, version";

/// The `schedules` and `schedule_runs` tables.
#[derive(Clone)]
pub struct PgSchedules {
    pool: PgPool,
}

impl PgSchedules {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn list(&self) -> Result<Vec<ScheduleRecord>, sqlx::Error> {
        let rows: Vec<ScheduleRow> = sqlx::query_as(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY builtin DESC, created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(ScheduleRecord::from).collect())
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<ScheduleRecord>, sqlx::Error> {
        let row: Option<ScheduleRow> = sqlx::query_as(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(ScheduleRecord::from))
    }

    pub async fn create(
        &self,
        input: &ScheduleInput,
        created_by: Option<Uuid>,
    ) -> Result<ScheduleRecord, sqlx::Error> {
        let (cron, every, at) = input.spec.columns();
        let row: ScheduleRow = sqlx::query_as(&format!(
            "INSERT INTO schedules (id, name, job_kind, params, cron, every_seconds, run_at, enabled, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {SCHEDULE_COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(&input.name)
        .bind(&input.job_kind)
        .bind(&input.params)
        .bind(cron)
        .bind(every)
        .bind(at)
        .bind(input.enabled)
        .bind(created_by)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.into())
    }

    /// Replaces the schedule's fields; `None` when it does not exist (or, with
    /// `expected_version`, is at another version).
    pub async fn update(
        &self,
        id: Uuid,
        input: &ScheduleInput,
        expected_version: Option<i64>,
    ) -> Result<Option<ScheduleRecord>, sqlx::Error> {
        let (cron, every, at) = input.spec.columns();
        let row: Option<ScheduleRow> = sqlx::query_as(&format!(
            "UPDATE schedules SET name = $2, job_kind = $3, params = $4, cron = $5, every_seconds = $6,
                    run_at = $7, enabled = $8, updated_at = clock_timestamp(), version = version + 1
              WHERE id = $1 AND ($9::bigint IS NULL OR version = $9) RETURNING {SCHEDULE_COLUMNS}"
        ))
        .bind(id)
        .bind(&input.name)
        .bind(&input.job_kind)
        .bind(&input.params)
        .bind(cron)
        .bind(every)
        .bind(at)
        .bind(input.enabled)
        .bind(expected_version)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(ScheduleRecord::from))
    }

    pub async fn delete(&self, id: Uuid) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query("DELETE FROM schedules WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1)
    }

    /// Runs, newest tick first.
    pub async fn runs(
        &self,
        schedule_id: Uuid,
        limit: i64,
        before: Option<DateTime<Utc>>,
    ) -> Result<Vec<RunRecord>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, schedule_id, tick, status, owner, started_at, finished_at, error, result
               FROM schedule_runs
              WHERE schedule_id = $1 AND ($3::timestamptz IS NULL OR tick < $3)
              ORDER BY tick DESC LIMIT $2",
        )
        .bind(schedule_id)
        .bind(limit)
        .bind(before)
        .fetch_all(&self.pool)
        .await
    }

    /// Changes whenever a schedule is added, changed or removed.
    async fn fingerprint(&self) -> Result<(i64, Option<DateTime<Utc>>, i64), sqlx::Error> {
        sqlx::query_as(
            "SELECT count(*), max(updated_at), coalesce(sum(version), 0)::bigint FROM schedules",
        )
        .fetch_one(&self.pool)
        .await
    }

    /// Runs whose replica stopped heartbeating are marked interrupted; returns how many.
    pub async fn mark_interrupted(&self, lease: Duration) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query(
            "UPDATE schedule_runs SET status = 'interrupted', finished_at = heartbeat_at,
                    error = 'the replica running it stopped (no heartbeat since ' || heartbeat_at || ')'
              WHERE status = 'running' AND heartbeat_at < now() - $1 * interval '1 millisecond'",
        )
        .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Claims the tick: true for the one replica whose insert won.
    async fn claim(
        &self,
        run_id: Uuid,
        schedule_id: Uuid,
        tick: DateTime<Utc>,
        owner: &str,
    ) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query(
            "INSERT INTO schedule_runs (id, schedule_id, tick, status, owner)
             VALUES ($1, $2, $3, 'running', $4) ON CONFLICT (schedule_id, tick) DO NOTHING",
        )
        .bind(run_id)
        .bind(schedule_id)
        .bind(tick)
        .bind(owner)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    async fn heartbeat(&self, run_id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE schedule_runs SET heartbeat_at = now() WHERE id = $1 AND status = 'running'",
        )
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    async fn finish(
        &self,
        run_id: Uuid,
        outcome: &Result<Value, String>,
    ) -> Result<(), sqlx::Error> {
        let (status, result, error) = match outcome {
            Ok(result) => ("succeeded", Some(result), None),
            Err(error) => ("failed", None, Some(error)),
        };
        sqlx::query(
            "UPDATE schedule_runs SET status = $2, result = $3, error = $4, finished_at = now()
              WHERE id = $1",
        )
        .bind(run_id)
        .bind(status)
        .bind(result)
        .bind(error)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }
}

#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    pub tz: Tz,
    /// How often the schedules table is checked for changes.
    pub poll: Duration,
    /// Names this replica in run records.
    pub owner: String,
}

pub struct Scheduler<R> {
    schedules: PgSchedules,
    runner: Arc<R>,
    settings: SchedulerSettings,
}

struct Fired<R> {
    schedules: PgSchedules,
    runner: Arc<R>,
    schedule: ScheduleRecord,
    spec: ScheduleSpec,
    tz: Tz,
    owner: String,
    /// The last tick this replica tried to claim: firing again within it costs no query.
    last_tick: std::sync::Mutex<Option<DateTime<Utc>>>,
}

impl<R: JobRunner> Fired<R> {
    /// What every replica does when its scheduler fires: claim the tick, run it if it won.
    async fn fire(self: Arc<Self>) {
        if let ScheduleSpec::Once(at) = &self.spec {
            // tokio-cron-scheduler times one-shots in whole seconds: it may fire just early.
            if let Ok(early) = (*at - Utc::now()).to_std() {
                tokio::time::sleep(early).await;
            }
        }
        let now = Utc::now();
        let Some(tick) = self
            .spec
            .tick_at_or_before(now, self.schedule.created_at, self.tz)
        else {
            return;
        };
        if matches!(self.spec, ScheduleSpec::Cron(_)) && now - tick > MISFIRE_GRACE {
            // Fired far from any occurrence (its UTC offset changed since the jobs were built):
            // the occurrence it found is an old one, not this firing's.
            tracing::warn!(schedule = %self.schedule.name, %tick, "fired off its schedule; skipped");
            return;
        }
        {
            let mut last = self
                .last_tick
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if *last == Some(tick) {
                return;
            }
            *last = Some(tick);
        }
        let run_id = Uuid::now_v7();
        match self
            .schedules
            .claim(run_id, self.schedule.id, tick, &self.owner)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(schedule = %self.schedule.id, error = %error, "cannot claim a tick");
                return;
            }
        }
        tracing::info!(schedule = %self.schedule.name, job = %self.schedule.job_kind, %tick, "running a scheduled job");
        let job = JobRun {
            run_id,
            schedule_id: self.schedule.id,
            tick,
            job_kind: self.schedule.job_kind.clone(),
            params: self.schedule.params.clone(),
        };
        let run = self.runner.run(job);
        tokio::pin!(run);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.tick().await;
        let outcome = loop {
            tokio::select! {
                outcome = &mut run => break outcome,
                _ = heartbeat.tick() => {
                    if let Err(error) = self.schedules.heartbeat(run_id).await {
                        tracing::warn!(error = %error, "cannot record a heartbeat");
                    }
                }
            }
        };
        if let Err(error) = &outcome {
            tracing::warn!(schedule = %self.schedule.name, error = %error, "scheduled job failed");
        }
        if let Err(error) = self.schedules.finish(run_id, &outcome).await {
            tracing::warn!(error = %error, "cannot record a run's end; it will show as interrupted");
        }
    }
}

impl<R: JobRunner> Scheduler<R> {
    pub fn new(schedules: PgSchedules, runner: Arc<R>, settings: SchedulerSettings) -> Self {
        Self {
            schedules,
            runner,
            settings,
        }
    }

    pub async fn run(self, mut shutdown: Shutdown) {
        let mut scheduler = match JobScheduler::new().await {
            Ok(scheduler) => scheduler,
            Err(error) => {
                tracing::error!(error = %error, "cannot create the job scheduler; no scheduled jobs here");
                return;
            }
        };
        if let Err(error) = scheduler.start().await {
            tracing::error!(error = %error, "cannot start the job scheduler; no scheduled jobs here");
            return;
        }
        let mut jobs: HashMap<Uuid, Uuid> = HashMap::new();
        let mut seen = None;
        // tokio-cron-scheduler fixes a zone's UTC offset when a job is created: rebuilding the
        // jobs hourly follows daylight-saving changes.
        let mut rebuilt_at = tokio::time::Instant::now();
        loop {
            match self.schedules.fingerprint().await {
                Ok(fingerprint) => {
                    let stale = rebuilt_at.elapsed() > Duration::from_secs(3600);
                    if seen.as_ref() != Some(&fingerprint) || stale {
                        if let Err(error) = self.rebuild(&scheduler, &mut jobs).await {
                            tracing::warn!(error = %error, "cannot load the schedules; retrying");
                        } else {
                            seen = Some(fingerprint);
                            rebuilt_at = tokio::time::Instant::now();
                        }
                    }
                }
                Err(error) => tracing::warn!(error = %error, "cannot read the schedules"),
            }
            match self.schedules.mark_interrupted(LEASE).await {
                Ok(0) => {}
                Ok(count) => tracing::warn!(count, "scheduled runs were cut short"),
                Err(error) => tracing::warn!(error = %error, "cannot check for cut-short runs"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.poll) => {}
                () = shutdown.wait() => break,
            }
        }
        let _ = scheduler.shutdown().await;
    }

    async fn rebuild(
        &self,
        scheduler: &JobScheduler,
        jobs: &mut HashMap<Uuid, Uuid>,
    ) -> Result<(), BoxError> {
        for (_, job) in jobs.drain() {
            scheduler.remove(&job).await?;
        }
        for schedule in self.schedules.list().await? {
            if !schedule.enabled {
                continue;
            }
            let spec = match schedule.spec() {
                Ok(spec) => spec,
                Err(error) => {
                    tracing::error!(schedule = %schedule.id, error = %error, "a schedule that cannot run; skipped");
                    continue;
                }
            };
            let id = schedule.id;
            let fired = Arc::new(Fired {
                schedules: self.schedules.clone(),
                runner: self.runner.clone(),
                spec: spec.clone(),
                schedule,
                tz: self.settings.tz,
                owner: self.settings.owner.clone(),
                last_tick: std::sync::Mutex::new(None),
            });
            let callback = move |_job: Uuid, _scheduler: JobScheduler| {
                let fired = fired.clone();
                Box::pin(async move {
                    // Each run on its own task: a slow job does not hold up the scheduler.
                    tokio::spawn(fired.fire());
                }) as std::pin::Pin<Box<dyn Future<Output = ()> + Send>>
            };
            let job = match &spec {
                ScheduleSpec::Cron(expression) => {
                    Job::new_async_tz(expression.as_str(), self.settings.tz, callback)?
                }
                // Checked every second: the tick grid, not this replica's timer, decides (a timer
                // restarted by a rebuild would drift, or never reach a long interval).
                ScheduleSpec::Every(_) => {
                    Job::new_repeated_async(Duration::from_secs(1), callback)?
                }
                ScheduleSpec::Once(at) => {
                    if self.schedules.runs(id, 1, None).await?.is_empty() {
                        let wait = (*at - Utc::now()).to_std().unwrap_or_default();
                        Job::new_one_shot_async(wait, callback)?
                    } else {
                        continue;
                    }
                }
            };
            jobs.insert(id, scheduler.add(job).await?);
        }
        tracing::info!(jobs = jobs.len(), "scheduled jobs loaded");
        Ok(())
    }
}
