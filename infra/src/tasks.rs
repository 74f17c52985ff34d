//! Background tasks: a `tasks` row is what a client polls (PENDING → PROCESSING → DONE or
//! FAILED, with progress); the work travels on a JetStream work-queue stream that every
//! replica's worker pulls from (no home-made queue, no leader: JetStream hands each message to
//! one puller at a time).
//!
//! A worker marks the task PROCESSING, runs it while telling JetStream it is still at it, records
//! the outcome with a conditional update (only a task that is not finished yet can finish), and
//! only then acknowledges. A worker that dies mid-task stops acknowledging; JetStream redelivers
//! the message after `ack_wait` to another worker, which runs it again: task runners must make a
//! second run change nothing (a replayed command carries the same Idempotency-Key), and a task
//! already finished is acknowledged without running.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::message::AckKind;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::consumer::{ConsumerRunner, ConsumerSpec, Handled, Handler, Settle};
use crate::nats::EventSubjects;
use crate::shutdown::Shutdown;

use eshop_commands::BoxError;

pub const CONSUMER: &str = "task_worker";

pub const PENDING: &str = "PENDING";
pub const PROCESSING: &str = "PROCESSING";
pub const DONE: &str = "DONE";
pub const FAILED: &str = "FAILED";

#[derive(Debug, Clone, Serialize)]
pub struct TaskRecord {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub progress: i16,
    pub input: Value,
    pub result: Option<Value>,
    pub error: Option<Value>,
    pub owner_id: Option<Uuid>,
    #[serde(skip)]
    pub owner_roles: Vec<String>,
    #[serde(skip)]
    pub owner_session_id: Option<Uuid>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// False for a row whose stored JSON cannot be decoded (nested too deep, by an older
    /// version): it shows as FAILED `unreadable_task`, is never run, and is purged in time.
    #[serde(skip)]
    pub readable: bool,
}

/// A row as stored; its JSON columns are read as text and decoded here, so that one row no
/// decoder accepts cannot fail a whole list.
#[derive(sqlx::FromRow)]
struct TaskRow {
    id: Uuid,
    kind: String,
    status: String,
    progress: i16,
    input: String,
    result: Option<String>,
    error: Option<String>,
    owner_id: Option<Uuid>,
    owner_roles: Vec<String>,
    owner_session_id: Option<Uuid>,
    attempts: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub const UNREADABLE_TASK: &str = "unreadable_task";

fn unreadable_problem() -> Value {
    serde_json::json!({
        "code": UNREADABLE_TASK,
        "detail": "this task's stored request or answer cannot be read; it is kept until purged",
    })
}

impl From<TaskRow> for TaskRecord {
    fn from(row: TaskRow) -> Self {
        let decode = |text: &str| serde_json::from_str::<Value>(text);
        let input = decode(&row.input);
        let result = row.result.as_deref().map(decode).transpose();
        let error = row.error.as_deref().map(decode).transpose();
        let (status, input, result, error, readable) = match (input, result, error) {
            (Ok(input), Ok(result), Ok(error)) => (row.status, input, result, error, true),
            _ => (
                FAILED.to_string(),
                Value::Null,
                None,
                Some(unreadable_problem()),
                false,
            ),
        };
        Self {
            id: row.id,
            kind: row.kind,
            status,
            progress: row.progress,
            input,
            result,
            error,
            owner_id: row.owner_id,
            owner_roles: row.owner_roles,
            owner_session_id: row.owner_session_id,
            attempts: row.attempts,
            created_at: row.created_at,
            updated_at: row.updated_at,
            readable,
        }
    }
}

impl TaskRecord {
    pub fn is_finished(&self) -> bool {
        self.status == DONE || self.status == FAILED
    }
}

/// Who asked for a task: the user, the session they asked in, and their roles then.
#[derive(Debug, Clone)]
pub struct TaskOwner {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub roles: Vec<String>,
}

const COLUMNS: &str = "id, kind, status, progress, input::text AS input, result::text AS result, error::text AS error, owner_id, owner_roles, owner_session_id, attempts, created_at, updated_at";

/// The `tasks` table.
#[derive(Clone)]
pub struct PgTasks {
    pool: PgPool,
}

impl PgTasks {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn create(
        &self,
        kind: &str,
        input: &Value,
        owner: Option<&TaskOwner>,
    ) -> Result<TaskRecord, sqlx::Error> {
        sqlx::query_as::<_, TaskRow>(&format!(
            "INSERT INTO tasks (id, kind, status, input, owner_id, owner_roles, owner_session_id)
             VALUES ($1, $2, 'PENDING', $3, $4, $5, $6) RETURNING {COLUMNS}"
        ))
        // Random, not time-ordered: a status URL must not be guessable.
        .bind(Uuid::new_v4())
        .bind(kind)
        .bind(input)
        .bind(owner.map(|owner| owner.user_id))
        .bind(owner.map(|owner| owner.roles.clone()).unwrap_or_default())
        .bind(owner.map(|owner| owner.session_id))
        .fetch_one(&self.pool)
        .await
        .map(TaskRecord::from)
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<TaskRecord>, sqlx::Error> {
        sqlx::query_as::<_, TaskRow>(&format!("SELECT {COLUMNS} FROM tasks WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(TaskRecord::from))
    }

    /// Newest first; one owner's, or everyone's. `before` is the last page's last task.
    pub async fn list(
        &self,
        owner_id: Option<Uuid>,
        limit: i64,
        before: Option<(DateTime<Utc>, Uuid)>,
    ) -> Result<Vec<TaskRecord>, sqlx::Error> {
        let (before_at, before_id) = before.unzip();
        sqlx::query_as::<_, TaskRow>(&format!(
            "SELECT {COLUMNS} FROM tasks
              WHERE ($1::uuid IS NULL OR owner_id = $1)
                AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
              ORDER BY created_at DESC, id DESC LIMIT $4"
        ))
        .bind(owner_id)
        .bind(before_at)
        .bind(before_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map(|rows| rows.into_iter().map(TaskRecord::from).collect())
    }

    /// Marks the task PROCESSING (one more attempt); `None` when it is finished already.
    pub async fn start(&self, id: Uuid) -> Result<Option<TaskRecord>, sqlx::Error> {
        sqlx::query_as::<_, TaskRow>(&format!(
            "UPDATE tasks SET status = 'PROCESSING', attempts = attempts + 1, updated_at = now()
              WHERE id = $1 AND status IN ('PENDING', 'PROCESSING') RETURNING {COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map(|row| row.map(TaskRecord::from))
    }

    pub async fn set_progress(&self, id: Uuid, percent: u8) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE tasks SET progress = greatest(progress, $2), updated_at = now()
              WHERE id = $1 AND status = 'PROCESSING'",
        )
        .bind(id)
        .bind(i16::from(percent.min(100)))
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    /// Deletes tasks that finished longer ago than `retention`, and tasks nothing has touched
    /// for as long (abandoned: a row no worker can run, such as an unreadable one); returns
    /// how many.
    pub async fn purge_finished(&self, retention: Duration) -> Result<u64, sqlx::Error> {
        Ok(
            sqlx::query("DELETE FROM tasks WHERE updated_at < now() - $1 * interval '1 second'")
                .bind(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX))
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// Records the outcome unless the task finished already; true when this call finished it.
    pub async fn finish(&self, id: Uuid, outcome: &Outcome) -> Result<bool, sqlx::Error> {
        let (status, result, error) = match outcome {
            Outcome::Done(result) => (DONE, Some(result), None),
            Outcome::Failed(error) => (FAILED, None, Some(error)),
            Outcome::Retry(_) => return Ok(false),
        };
        Ok(sqlx::query(
            "UPDATE tasks SET status = $2, result = $3, error = $4,
                    progress = CASE WHEN $2 = 'DONE' THEN 100 ELSE progress END, updated_at = now()
              WHERE id = $1 AND status IN ('PENDING', 'PROCESSING')",
        )
        .bind(id)
        .bind(status)
        .bind(result)
        .bind(error)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }
}

/// Puts tasks on the work queue.
#[derive(Clone)]
pub struct TaskQueue {
    jetstream: jetstream::Context,
    subjects: EventSubjects,
}

impl TaskQueue {
    pub fn new(jetstream: jetstream::Context, subjects: EventSubjects) -> Self {
        Self {
            jetstream,
            subjects,
        }
    }

    /// Queues the task with what its runner needs beyond the task row (`work`: for a command,
    /// the request, secrets included, which therefore never go into the `tasks` table; the
    /// message is deleted once the task is acknowledged). The task id is the message id, so a
    /// repeat within the duplicate window is dropped. Returns once JetStream has it.
    pub async fn publish(&self, task: &TaskRecord, work: Value) -> Result<(), BoxError> {
        let body = serde_json::to_vec(&serde_json::json!({"task_id": task.id, "work": work}))?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", task.id.to_string().as_str());
        self.jetstream
            .publish_with_headers(self.subjects.task(&task.kind), headers, body.into())
            .await?
            .await?;
        Ok(())
    }
}

/// How a run of a task ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done(Value),
    Failed(Value),
    /// Could not run now (a dependency is down): the message comes back later.
    Retry(String),
}

/// Lets a running task report how far it got.
#[derive(Clone)]
pub struct Progress {
    tasks: PgTasks,
    id: Uuid,
}

impl Progress {
    pub fn new(tasks: PgTasks, id: Uuid) -> Self {
        Self { tasks, id }
    }

    /// Records `percent` (it never goes down); a failure to record it does not stop the task.
    pub async fn report(&self, percent: u8) {
        if let Err(error) = self.tasks.set_progress(self.id, percent).await {
            tracing::warn!(task = %self.id, error = %error, "cannot record progress");
        }
    }
}

/// What runs a task of each kind.
pub trait TaskRunner: Send + Sync + 'static {
    /// `work` is what was queued with the task.
    fn run(
        &self,
        task: TaskRecord,
        work: Value,
        progress: Progress,
    ) -> impl Future<Output = Outcome> + Send;
}

/// A queued message: the task and its work.
#[derive(Debug, serde::Deserialize)]
pub struct QueuedTask {
    pub task_id: Uuid,
    #[serde(default)]
    pub work: Value,
}

#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Tasks this process runs at once.
    pub concurrency: usize,
    /// How long JetStream waits for a sign of life before handing the task to another worker.
    pub ack_wait: Duration,
    /// Runs of one task after which a task that keeps asking to retry is failed.
    pub max_attempts: i32,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            ack_wait: Duration::from_secs(60),
            max_attempts: 5,
        }
    }
}

pub struct TaskWorker<R> {
    tasks: PgTasks,
    jetstream: jetstream::Context,
    subjects: EventSubjects,
    runner: Arc<R>,
    settings: WorkerSettings,
}

impl<R: TaskRunner> TaskWorker<R> {
    pub fn new(
        tasks: PgTasks,
        jetstream: jetstream::Context,
        subjects: EventSubjects,
        runner: Arc<R>,
        settings: WorkerSettings,
    ) -> Self {
        Self {
            tasks,
            jetstream,
            subjects,
            runner,
            settings,
        }
    }

    /// The consumer every worker shares: one task per free slot.
    pub fn runner(&self) -> ConsumerRunner {
        ConsumerRunner::new(self.jetstream.clone(), spec(&self.subjects, &self.settings))
    }

    pub async fn run(self, shutdown: Shutdown) {
        let runner = self.runner();
        runner.run(Arc::new(self), shutdown).await;
    }

    async fn handle_one(&self, message: &jetstream::Message) -> Settle {
        let Ok(QueuedTask { task_id: id, work }) = serde_json::from_slice(&message.payload) else {
            tracing::error!(subject = %message.subject, "a task message without a task id; dropped");
            return Settle::Term;
        };
        let task = match self.tasks.start(id).await {
            Ok(Some(task)) => task,
            // Finished by an earlier delivery (or unknown): nothing left to do.
            Ok(None) => return Settle::Ack,
            Err(error) => {
                tracing::warn!(task = %id, error = %error, "cannot start the task; it will come back");
                return Settle::Nak(Some(Duration::from_secs(2)));
            }
        };
        if !task.readable {
            // Stored by an older version in a shape no decoder takes: it can never run.
            let outcome = Outcome::Failed(unreadable_problem());
            return if self.tasks.finish(id, &outcome).await.is_ok() {
                Settle::Ack
            } else {
                Settle::Leave
            };
        }
        let attempts = task.attempts;
        if attempts > self.settings.max_attempts {
            // Every earlier run died without an outcome (a task that kills its worker, say):
            // stop handing it out.
            let outcome = Outcome::Failed(serde_json::json!({
                "code": "task_abandoned",
                "detail": format!("{} runs ended without an outcome", attempts - 1),
            }));
            return if self.tasks.finish(id, &outcome).await.is_ok() {
                Settle::Ack
            } else {
                Settle::Leave
            };
        }
        let progress = Progress::new(self.tasks.clone(), id);
        let run = self.runner.run(task, work, progress);
        tokio::pin!(run);
        let mut alive = tokio::time::interval(self.settings.ack_wait / 3);
        alive.tick().await;
        let outcome = loop {
            tokio::select! {
                outcome = &mut run => break outcome,
                _ = alive.tick() => {
                    // Still working: JetStream must not hand the task to someone else yet.
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            }
        };
        let outcome = match outcome {
            Outcome::Retry(reason) if attempts >= self.settings.max_attempts => {
                Outcome::Failed(serde_json::json!({
                    "code": "service_unavailable",
                    "detail": format!("gave up after {attempts} attempts: {reason}"),
                }))
            }
            other => other,
        };
        if let Outcome::Retry(reason) = &outcome {
            tracing::info!(task = %id, reason, "task will be retried");
            return Settle::Nak(Some(Duration::from_secs(2)));
        }
        match self.tasks.finish(id, &outcome).await {
            // A lost ack means a redelivery, which finds the task finished.
            Ok(_) => Settle::Ack,
            Err(error) => {
                tracing::warn!(task = %id, error = %error, "cannot record the outcome; the task will run again");
                Settle::Nak(Some(Duration::from_secs(2)))
            }
        }
    }
}

/// The durable consumer every worker shares, as the runner reads it.
fn spec(subjects: &EventSubjects, settings: &WorkerSettings) -> ConsumerSpec {
    ConsumerSpec {
        ack_wait: settings.ack_wait,
        concurrency: settings.concurrency.max(1),
        first_pause: Duration::from_secs(1),
        ..ConsumerSpec::new(CONSUMER, subjects.tasks_stream_name(), subjects.all_tasks())
    }
}

/// The durable consumer every worker shares.
pub async fn consumer(
    jetstream: &jetstream::Context,
    subjects: &EventSubjects,
    ack_wait: Duration,
) -> Result<jetstream::consumer::Consumer<pull::Config>, BoxError> {
    let settings = WorkerSettings {
        ack_wait,
        ..WorkerSettings::default()
    };
    ConsumerRunner::new(jetstream.clone(), spec(subjects, &settings))
        .consumer()
        .await
}

impl<R: TaskRunner> Handler for TaskWorker<R> {
    async fn handle(&self, batch: Vec<jetstream::Message>) -> Handled {
        let mut settled = Vec::with_capacity(batch.len());
        for message in &batch {
            settled.push(self.handle_one(message).await);
        }
        Handled::Settled(settled)
    }
}
