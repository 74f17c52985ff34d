//! Feeds the product index from the stream: a durable consumer per process (each replica keeps
//! its own index), batches applied to the writer, and a commit at most every `commit_every`
//! with the stream sequence in the commit's payload.
//!
//! The index, not the consumer, is the record of how far this copy got: at start the consumer
//! is placed again right after the sequence of the last commit, so whatever a killed process
//! had applied and not committed comes again (and an index started afresh is built from the
//! start of the stream). An event at or below the committed sequence is skipped, and a product
//! is written whole (delete by id, add), so a redelivery changes nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{self, Message};
use eshop_domain::review::ReviewEvent;
use eshop_projections::{ProjectionError, RelayedEvent};
use uuid::Uuid;

use crate::consumer::{ConsumerRunner, ConsumerSpec, Handled, Handler, Settle};
use crate::nats::EventSubjects;
use crate::projector::ProjectionReport;
use crate::shutdown::Shutdown;

use super::engine::SearchError;
use super::products::{Indexed, ProductIndex};

use eshop_commands::BoxError;

#[derive(Debug, Clone)]
pub struct SearchSettings {
    /// The directory of this process's index.
    pub dir: PathBuf,
    /// How often what was applied is committed (made searchable and durable), at most.
    pub commit_every: Duration,
    /// Messages applied at once.
    pub batch: usize,
    /// Suggestions kept in memory between two commits (0: every one is searched).
    pub suggestions_kept: usize,
}

/// Changes applied to the writer since the last commit.
#[derive(Default)]
struct Pending {
    /// Products as last written (the searcher does not see them before the commit).
    products: HashMap<Uuid, Indexed>,
    /// The stream sequence of the last event applied.
    sequence: u64,
}

pub struct ProductSearch {
    catalog: ProductIndex,
    pending: Mutex<Pending>,
    settings: SearchSettings,
    name: String,
}

fn sequence_of(message: &Message) -> u64 {
    message
        .info()
        .map(|info| info.stream_sequence)
        .unwrap_or_default()
}

/// The consumer's durable name: the index directory keeps a name of its own, so a replica
/// finds its consumer again after a restart, and two replicas never share one.
fn consumer_name(dir: &std::path::Path) -> Result<String, SearchError> {
    let path = dir.join("consumer");
    if let Ok(name) = std::fs::read_to_string(&path) {
        let name = name.trim();
        if !name.is_empty() {
            return Ok(name.to_string());
        }
    }
    let name = format!("search_products_{}", Uuid::now_v7().simple());
    std::fs::write(&path, &name).map_err(|source| SearchError::Io {
        dir: dir.to_path_buf(),
        source,
    })?;
    Ok(name)
}

impl ProductSearch {
    /// Opens (or starts afresh) this process's index; a second process on the same directory
    /// is refused (`SearchError::InUse`).
    pub fn open(settings: SearchSettings) -> Result<Self, SearchError> {
        let catalog = ProductIndex::open(&settings.dir, settings.suggestions_kept)?;
        let name = consumer_name(&settings.dir)?;
        Ok(Self {
            catalog,
            pending: Mutex::default(),
            settings,
            name,
        })
    }

    pub fn catalog(&self) -> &ProductIndex {
        &self.catalog
    }

    pub fn consumer_name(&self) -> &str {
        &self.name
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies events in stream order (blocking: the writer and the searcher).
    fn apply(&self, events: Vec<(u64, Result<RelayedEvent, String>)>) -> Result<(), SearchError> {
        let mut pending = self.pending();
        let guard = self.catalog.index.writer();
        let Some(writer) = guard.as_ref() else {
            return Err(SearchError::Closed);
        };
        let fields = &self.catalog.fields;
        let floor = pending
            .sequence
            .max(self.catalog.index.committed_sequence());
        for (sequence, event) in events {
            if sequence <= floor {
                continue;
            }
            pending.sequence = sequence;
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    tracing::warn!(sequence, error, "search index: unreadable message skipped");
                    continue;
                }
            };
            let changed = match event.aggregate_type.as_str() {
                "product" => {
                    let Ok(id) = event.aggregate_id.parse::<Uuid>() else {
                        continue;
                    };
                    let current = match pending.products.get(&id) {
                        Some(product) => Some(product.clone()),
                        None => self.catalog.get(id)?,
                    };
                    product_after(current, &event)
                }
                "review" => match event.decode::<ReviewEvent>() {
                    Ok(ReviewEvent::ReviewWritten {
                        product_id,
                        rating,
                        previous_rating,
                        ..
                    }) => {
                        let current = match pending.products.get(&product_id) {
                            Some(product) => Some(product.clone()),
                            None => self.catalog.get(product_id)?,
                        };
                        current.map(|mut product| {
                            product.rate(rating, previous_rating);
                            product
                        })
                    }
                    Err(error) => {
                        tracing::warn!(sequence, error = %error, "search index: unreadable review skipped");
                        None
                    }
                },
                _ => None,
            };
            if let Some(product) = changed {
                let id = product.record.id;
                writer.delete_term(fields.id_term(id));
                writer.add_document(fields.document(&product))?;
                pending.products.insert(id, product);
            }
        }
        Ok(())
    }

    /// Commits what was applied (blocking). False when there was nothing to commit.
    pub fn commit(&self) -> Result<bool, SearchError> {
        let mut pending = self.pending();
        if pending.sequence <= self.catalog.index.committed_sequence() {
            return Ok(false);
        }
        let mut guard = self.catalog.index.writer();
        let Some(writer) = guard.as_mut() else {
            return Err(SearchError::Closed);
        };
        self.catalog.index.commit(writer, pending.sequence)?;
        pending.products.clear();
        Ok(true)
    }

    /// The indexed version of a product, once searchable (0: not indexed).
    pub fn version_of(&self, id: Uuid) -> Result<u64, SearchError> {
        Ok(self
            .catalog
            .get(id)?
            .map_or(0, |product| product.record.version))
    }

    /// Waits until version `version` of product `id` is searchable; false after `timeout`.
    pub async fn wait_for_version(
        self: &Arc<Self>,
        id: Uuid,
        version: u64,
        timeout: Duration,
    ) -> Result<bool, SearchError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut commits = self.catalog.index.commits();
        loop {
            commits.borrow_and_update();
            if self.version_of(id)? >= version {
                return Ok(true);
            }
            tokio::select! {
                changed = commits.changed() => if changed.is_err() { return Ok(false) },
                () = tokio::time::sleep_until(deadline) => return Ok(false),
            }
        }
    }

    fn spec(&self, subjects: &EventSubjects) -> ConsumerSpec {
        let mut spec = ConsumerSpec::new(&self.name, subjects.stream_name(), subjects.all());
        spec.batch = self.settings.batch.max(1);
        spec.max_ack_pending = Some(100_000);
        spec
    }

    /// Places the durable consumer right after the last committed sequence.
    async fn place_consumer(
        &self,
        jetstream: &jetstream::Context,
        spec: &ConsumerSpec,
    ) -> Result<(), BoxError> {
        let stream = jetstream.get_stream(&spec.stream).await?;
        let _ = stream.delete_consumer(&spec.name).await;
        let committed = self.catalog.index.committed_sequence();
        let deliver_policy = if committed == 0 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: committed + 1,
            }
        };
        stream
            .create_consumer(pull::Config {
                durable_name: Some(spec.name.clone()),
                filter_subject: spec.filter_subject.clone(),
                deliver_policy,
                ack_policy: AckPolicy::Explicit,
                ack_wait: spec.ack_wait,
                max_ack_pending: spec.max_ack_pending.unwrap_or_default(),
                // A replica that is gone for good leaves no consumer behind.
                inactive_threshold: Duration::from_secs(24 * 3600),
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// Runs until shutdown: the consumer feeding the writer, and the commits. The last
    /// applied events are committed on the way out.
    pub async fn run(
        self: Arc<Self>,
        jetstream: jetstream::Context,
        subjects: EventSubjects,
        shutdown: Shutdown,
    ) {
        let spec = self.spec(&subjects);
        let mut pause = Duration::from_millis(200);
        loop {
            match self.place_consumer(&jetstream, &spec).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(error = %error, "search index: cannot place its consumer; retrying");
                    let mut waiting = shutdown.clone();
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = waiting.wait() => return,
                    }
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
            }
        }
        let runner = ConsumerRunner::new(jetstream, spec);
        let committer = tokio::spawn(self.clone().commit_loop(shutdown.clone()));
        runner
            .run(Arc::new(Feed(self.clone())), shutdown.clone())
            .await;
        let _ = committer.await;
        let search = self.clone();
        let closed = tokio::task::spawn_blocking(move || {
            let committed = search.commit();
            search.catalog.index.close();
            committed
        });
        match closed.await {
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "search index: the last commit failed")
            }
            Err(error) => tracing::warn!(error = %error, "search index: the last commit failed"),
            Ok(Ok(_)) => {}
        }
    }

    /// Feeds the index until it holds everything the stream held when this started, then
    /// stops (the `eshop projections rebuild search` command, and the bench). Returns the
    /// stream sequence it reached.
    pub async fn catch_up(
        self: Arc<Self>,
        jetstream: jetstream::Context,
        subjects: EventSubjects,
    ) -> Result<u64, BoxError> {
        let mut stream = jetstream.get_stream(subjects.stream_name()).await?;
        let target = stream.info().await?.state.last_sequence;
        let (stop, shutdown) = crate::shutdown::shutdown_pair();
        let feeding = tokio::spawn(self.clone().run(jetstream, subjects, shutdown));
        let mut commits = self.catalog.index.commits();
        while *commits.borrow_and_update() < target {
            if commits.changed().await.is_err() {
                break;
            }
        }
        stop.trigger();
        feeding.await?;
        Ok(self.catalog.index.committed_sequence())
    }

    async fn commit_loop(self: Arc<Self>, mut shutdown: Shutdown) {
        let mut every =
            tokio::time::interval(self.settings.commit_every.max(Duration::from_millis(10)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = shutdown.wait() => return,
            }
            let search = self.clone();
            match tokio::task::spawn_blocking(move || search.commit()).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(error = %error, "search index: commit failed"),
                Err(error) => tracing::warn!(error = %error, "search index: commit failed"),
            }
        }
    }

    /// How far this process's index got and how far behind the stream it is (as
    /// `GET /api/admin/projections` lists every read model).
    pub async fn report(
        &self,
        jetstream: &jetstream::Context,
        subjects: &EventSubjects,
    ) -> Result<ProjectionReport, BoxError> {
        let mut stream = jetstream.get_stream(subjects.stream_name()).await?;
        let info = stream.info().await?;
        let committed = self.catalog.index.committed_sequence();
        let lag_events = info.state.last_sequence.saturating_sub(committed);
        let lag_seconds = if lag_events == 0 {
            0.0
        } else {
            match stream.get_raw_message(committed + 1).await {
                Ok(message) => {
                    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
                    let behind = i128::from(now) - message.time.unix_timestamp_nanos();
                    Duration::from_nanos(u64::try_from(behind).unwrap_or_default()).as_secs_f64()
                }
                Err(_) => 0.0,
            }
        };
        Ok(ProjectionReport {
            name: "search".into(),
            position: i64::try_from(committed).unwrap_or(i64::MAX),
            lag_events,
            lag_seconds,
            status: if lag_events == 0 {
                "running"
            } else {
                "catching_up"
            }
            .into(),
            last_error: None,
            rebuild: None,
        })
    }
}

/// The product after `event`, or `None` when it changes nothing the index holds. A gap (which
/// the stream's order rules out) is applied over rather than blocking the index.
fn product_after(current: Option<Indexed>, event: &RelayedEvent) -> Option<Indexed> {
    let rating_sum = current.as_ref().map_or(0, |product| product.rating_sum);
    let record = current.map(|product| product.record);
    let applied = match eshop_projections::product::apply(record.as_ref(), event) {
        Err(ProjectionError::Gap { expected, got, .. }) => {
            tracing::warn!(product = %event.aggregate_id, expected, got, "search index: a gap in a product's events; applying over it");
            let mut behind = record.clone()?;
            behind.version = event.sequence.saturating_sub(1);
            eshop_projections::product::apply(Some(&behind), event)
        }
        other => other,
    };
    match applied {
        Ok(Some(record)) => Some(Indexed { record, rating_sum }),
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(error = %error, "search index: an event cannot be applied; skipped");
            None
        }
    }
}

/// The consumer's handler: decodes a batch and applies it off the async threads.
struct Feed(Arc<ProductSearch>);

impl Handler for Feed {
    async fn handle(&self, batch: Vec<Message>) -> Handled {
        let count = batch.len();
        let events: Vec<(u64, Result<RelayedEvent, String>)> = batch
            .iter()
            .map(|message| {
                (
                    sequence_of(message),
                    serde_json::from_slice(&message.payload).map_err(|error| error.to_string()),
                )
            })
            .collect();
        let search = self.0.clone();
        match tokio::task::spawn_blocking(move || search.apply(events)).await {
            // Acknowledged at once: the commit's payload, not the consumer, says where a
            // restart resumes, so an acknowledged event that was never committed comes again.
            Ok(Ok(())) => Handled::Settled(vec![Settle::Ack; count]),
            Ok(Err(error)) => Handled::Stopped {
                settled: Vec::new(),
                error: error.to_string(),
            },
            Err(error) => Handled::Stopped {
                settled: Vec::new(),
                error: error.to_string(),
            },
        }
    }
}
