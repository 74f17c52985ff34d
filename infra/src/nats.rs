//! NATS JetStream: the `ESHOP_EVENTS` stream and its subject scheme.
//!
//! A prefix (empty in production) namespaces the stream and its subjects, so parallel tests
//! each get their own stream on one server.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use eshop_commands::BoxError;

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("cannot connect to NATS")]
    Connect(#[source] async_nats::ConnectError),
    #[error("cannot create or update the stream {0}")]
    Stream(String, #[source] BoxError),
}

/// Names of the event stream and its subjects.
#[derive(Debug, Clone)]
pub struct EventSubjects {
    prefix: String,
}

impl EventSubjects {
    /// `prefix` must be a valid subject token (letters, digits, `_`, `-`) or empty.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    /// The prefix (`ESHOP_NATS_PREFIX`), empty in production.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn stream_name(&self) -> String {
        if self.prefix.is_empty() {
            "ESHOP_EVENTS".to_string()
        } else {
            format!("{}_ESHOP_EVENTS", self.prefix.to_uppercase())
        }
    }

    fn root(&self) -> String {
        if self.prefix.is_empty() {
            "eshop.events".to_string()
        } else {
            format!("{}.eshop.events", self.prefix)
        }
    }

    pub fn subject(&self, aggregate_type: &str, aggregate_id: &str) -> String {
        format!("{}.{aggregate_type}.{aggregate_id}", self.root())
    }

    /// Every event of one aggregate type.
    pub fn of_type(&self, aggregate_type: &str) -> String {
        format!("{}.{aggregate_type}.>", self.root())
    }

    pub fn all(&self) -> String {
        format!("{}.>", self.root())
    }

    /// The work-queue stream of background tasks (`TASKS`, or `<P>_ESHOP_TASKS`).
    pub fn tasks_stream_name(&self) -> String {
        if self.prefix.is_empty() {
            "ESHOP_TASKS".to_string()
        } else {
            format!("{}_ESHOP_TASKS", self.prefix.to_uppercase())
        }
    }

    fn tasks_root(&self) -> String {
        if self.prefix.is_empty() {
            "eshop.tasks".to_string()
        } else {
            format!("{}.eshop.tasks", self.prefix)
        }
    }

    /// The subject a task of this kind is queued on.
    pub fn task(&self, kind: &str) -> String {
        format!("{}.{kind}", self.tasks_root())
    }

    pub fn all_tasks(&self) -> String {
        format!("{}.>", self.tasks_root())
    }

    /// The stream that keeps the hash chain's seals (`ESHOP_SEALS`, or `<P>_ESHOP_SEALS`).
    pub fn seals_stream_name(&self) -> String {
        if self.prefix.is_empty() {
            "ESHOP_SEALS".to_string()
        } else {
            format!("{}_ESHOP_SEALS", self.prefix.to_uppercase())
        }
    }

    /// The subject seals are published on: `eshop.seals`, prefixed like the events.
    pub fn seals(&self) -> String {
        if self.prefix.is_empty() {
            "eshop.seals".to_string()
        } else {
            format!("{}.eshop.seals", self.prefix)
        }
    }
}

/// How long JetStream remembers `Nats-Msg-Id`s to drop a re-published event.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);

pub async fn connect(url: &str) -> Result<jetstream::Context, NatsError> {
    let client = async_nats::ConnectOptions::new()
        .name("eshop")
        .retry_on_initial_connect()
        .connect(url)
        .await
        .map_err(NatsError::Connect)?;
    Ok(jetstream::new(client))
}

/// Creates the task work queue (each message is removed once a worker acknowledges it), or
/// brings an existing one to this configuration.
pub async fn ensure_task_stream(
    jetstream: &jetstream::Context,
    subjects: &EventSubjects,
) -> Result<(), NatsError> {
    let config = stream::Config {
        name: subjects.tasks_stream_name(),
        subjects: vec![subjects.all_tasks()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::WorkQueue,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    };
    // NATS 2.9 removes an account's storage folder when its last stream goes, and a create
    // racing with that fails once ("error creating store for stream"); the next one succeeds.
    const ATTEMPTS: u32 = 5;
    let mut attempt = 1;
    loop {
        match jetstream.create_or_update_stream(config.clone()).await {
            Ok(_) => return Ok(()),
            Err(error) if attempt < ATTEMPTS => {
                tracing::warn!(error = %error, attempt, "creating the task stream failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(error) => {
                return Err(NatsError::Stream(
                    subjects.tasks_stream_name(),
                    Box::new(error),
                ))
            }
        }
    }
}

/// Creates the event stream, or brings an existing one to this configuration.
pub async fn ensure_event_stream(
    jetstream: &jetstream::Context,
    subjects: &EventSubjects,
    max_age: Option<Duration>,
) -> Result<(), NatsError> {
    let config = stream::Config {
        name: subjects.stream_name(),
        subjects: vec![subjects.all()],
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        max_age: max_age.unwrap_or_default(),
        ..Default::default()
    };
    // NATS 2.9 removes an account's storage folder when its last stream goes, and a create
    // racing with that fails ("error creating store for stream"); the next attempt succeeds.
    let mut attempt = 1;
    loop {
        match jetstream.create_or_update_stream(config.clone()).await {
            Ok(_) => return Ok(()),
            Err(error) if attempt < STREAM_CREATE_ATTEMPTS => {
                tracing::warn!(error = %error, attempt, "creating the event stream failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(error) => {
                return Err(NatsError::Stream(subjects.stream_name(), Box::new(error)));
            }
        }
    }
}

const STREAM_CREATE_ATTEMPTS: u32 = 5;

/// Creates the stream that keeps every seal (never expiring), or brings an existing one to this
/// configuration.
pub async fn ensure_seal_stream(
    jetstream: &jetstream::Context,
    subjects: &EventSubjects,
) -> Result<(), NatsError> {
    let config = stream::Config {
        name: subjects.seals_stream_name(),
        subjects: vec![subjects.seals()],
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    };
    let mut attempt = 1;
    loop {
        match jetstream.create_or_update_stream(config.clone()).await {
            Ok(_) => return Ok(()),
            Err(error) if attempt < STREAM_CREATE_ATTEMPTS => {
                tracing::warn!(error = %error, attempt, "creating the seal stream failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(error) => {
                return Err(NatsError::Stream(
                    subjects.seals_stream_name(),
                    Box::new(error),
                ));
            }
        }
    }
}
