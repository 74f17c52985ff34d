//! One way to run a durable JetStream pull consumer, shared by the projection builders, the
//! mailer, the order worker and the task worker: the consumer is created (or found), messages
//! arrive in batches (or one per free slot, for work that runs side by side), the handler says
//! how each message is settled and the runner acknowledges, a handler that stops puts the rest
//! back and waits a growing pause, and a consumer that fails is started again with backoff. Its
//! status (for `GET /api/admin/projections` and logs) is kept as it goes.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, Consumer, DeliverPolicy};
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::{self, Message};
use futures::{FutureExt, StreamExt};
use tokio::sync::Semaphore;

use crate::shutdown::Shutdown;

use eshop_commands::BoxError;

/// How long a batch waits for a message JetStream said was pending (a bound: it comes at once).
const PENDING_WAIT: Duration = Duration::from_millis(100);

/// The next messages, in stream order, at most `batch`: the first as it comes, then those
/// already here, and, while JetStream says more are pending for this consumer (it is catching
/// up), those as they arrive. A backlog is so handled in full batches, each one transaction for
/// a projection whatever its size (in pull-sized pieces, a catch-up after an import was mostly
/// fixed costs), while a consumer that is up to date waits for nothing.
async fn next_batch<S, E>(arriving: &mut S, batch: usize) -> Option<Result<Vec<Message>, E>>
where
    S: futures::Stream<Item = Result<Message, E>> + Unpin,
{
    let first = match arriving.next().await? {
        Ok(message) => message,
        Err(error) => return Some(Err(error)),
    };
    let mut more_pending = pending_after(&first);
    let mut messages = vec![first];
    while messages.len() < batch {
        let next = if more_pending {
            tokio::time::timeout(PENDING_WAIT, arriving.next())
                .await
                .ok()
                .flatten()
        } else {
            arriving.next().now_or_never().flatten()
        };
        match next {
            Some(Ok(message)) => {
                more_pending = pending_after(&message);
                messages.push(message);
            }
            Some(Err(error)) => return Some(Err(error)),
            None => break,
        }
    }
    Some(Ok(messages))
}

/// Whether JetStream had more messages for this consumer when it delivered `message`.
fn pending_after(message: &Message) -> bool {
    message.info().is_ok_and(|info| info.pending > 0)
}

/// A durable pull consumer and how to run it.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// The durable name (also the name in logs and status).
    pub name: String,
    pub stream: String,
    pub filter_subject: String,
    /// How long JetStream waits for an acknowledgement before it delivers a message again.
    pub ack_wait: Duration,
    /// Messages delivered and not yet acknowledged, at most (`None`: the server's default).
    pub max_ack_pending: Option<i64>,
    /// Messages handed to the handler at once (in stream order).
    pub batch: usize,
    /// Handler calls running at once. Above 1, a message is taken only when a slot is free, so
    /// the others stay with JetStream for other replicas.
    pub concurrency: usize,
    /// The first pause after the handler stopped or the consumer failed; it doubles up to `max_pause`.
    pub first_pause: Duration,
    pub max_pause: Duration,
}

impl ConsumerSpec {
    pub fn new(name: &str, stream: String, filter_subject: String) -> Self {
        Self {
            name: name.to_string(),
            stream,
            filter_subject,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: None,
            batch: 1,
            concurrency: 1,
            first_pause: Duration::from_millis(200),
            max_pause: Duration::from_secs(30),
        }
    }
}

/// How to settle one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Ack,
    /// Deliver it again (after the delay).
    Nak(Option<Duration>),
    /// Never deliver it again.
    Term,
    /// Leave it: the handler settled it, or JetStream delivers it again after the ack wait.
    Leave,
}

/// What became of a batch.
#[derive(Debug)]
pub enum Handled {
    /// One settlement per message, in order.
    Settled(Vec<Settle>),
    /// The handler stopped at a message it cannot handle now: `settled` covers the messages
    /// before it; it and everything after it (buffered ones too) go back, and the runner
    /// pauses before it goes on (a growing pause while the handler keeps stopping).
    Stopped { settled: Vec<Settle>, error: String },
}

/// What a consumer does with its messages.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, batch: Vec<Message>) -> impl Future<Output = Handled> + Send;

    /// Told when the handler stopped (to record it where operators look).
    fn stopped(&self, _error: &str) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// A consumer's state, as this process sees it.
#[derive(Debug, Default)]
pub struct ConsumerStatus {
    pub handled: AtomicU64,
    pub restarts: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl ConsumerStatus {
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .map(|error| error.clone())
            .unwrap_or_default()
    }

    fn set_error(&self, error: Option<String>) {
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = error;
        }
    }
}

#[derive(Clone)]
pub struct ConsumerRunner {
    jetstream: jetstream::Context,
    spec: ConsumerSpec,
    status: Arc<ConsumerStatus>,
}

async fn settle(message: &Message, settle: Settle, name: &str) {
    let outcome = match settle {
        Settle::Ack => message.ack().await,
        Settle::Nak(delay) => message.ack_with(AckKind::Nak(delay)).await,
        Settle::Term => message.ack_with(AckKind::Term).await,
        Settle::Leave => return,
    };
    // A lost acknowledgement means a redelivery, which every handler takes in its stride.
    if let Err(error) = outcome {
        tracing::warn!(consumer = name, error = %error, "acknowledgement failed; the message will come back");
    }
}

impl ConsumerRunner {
    pub fn new(jetstream: jetstream::Context, spec: ConsumerSpec) -> Self {
        Self {
            jetstream,
            spec,
            status: Arc::default(),
        }
    }

    pub fn spec(&self) -> &ConsumerSpec {
        &self.spec
    }

    pub fn status(&self) -> Arc<ConsumerStatus> {
        self.status.clone()
    }

    fn config(&self, deliver_policy: DeliverPolicy) -> pull::Config {
        pull::Config {
            durable_name: Some(self.spec.name.clone()),
            filter_subject: self.spec.filter_subject.clone(),
            deliver_policy,
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.spec.ack_wait,
            max_ack_pending: self.spec.max_ack_pending.unwrap_or_default(),
            ..Default::default()
        }
    }

    /// The durable consumer, created when missing.
    pub async fn consumer(&self) -> Result<Consumer<pull::Config>, BoxError> {
        let stream = self.jetstream.get_stream(&self.spec.stream).await?;
        Ok(stream
            .get_or_create_consumer(&self.spec.name, self.config(DeliverPolicy::All))
            .await?)
    }

    /// For a consumer only one process reads at a time (a projection's, under its leader lock):
    /// messages a previous reader took and never settled (it died) would come back only after
    /// the ack wait. Start the consumer again from its acknowledgement floor instead, so they
    /// come at once (what was applied already is skipped by the row versions). True when it did.
    pub async fn rewind_unacknowledged(&self) -> Result<bool, BoxError> {
        let stream = self.jetstream.get_stream(&self.spec.stream).await?;
        let mut consumer: Consumer<pull::Config> = match stream.get_consumer(&self.spec.name).await
        {
            Ok(consumer) => consumer,
            Err(_) => return Ok(false),
        };
        let info = consumer.info().await?;
        if info.num_ack_pending == 0 {
            return Ok(false);
        }
        let from = info.ack_floor.stream_sequence + 1;
        tracing::info!(
            consumer = %self.spec.name,
            unacknowledged = info.num_ack_pending,
            from,
            "taking over messages a previous reader left unacknowledged"
        );
        stream.delete_consumer(&self.spec.name).await?;
        stream
            .create_consumer(self.config(DeliverPolicy::ByStartSequence {
                start_sequence: from,
            }))
            .await?;
        Ok(true)
    }

    /// Runs until shutdown, starting the consumer again (after a growing pause) when it fails.
    pub async fn run<H: Handler>(&self, handler: Arc<H>, mut shutdown: Shutdown) {
        let mut pause = self.spec.first_pause.max(Duration::from_secs(1));
        while !shutdown.is_triggered() {
            let started = tokio::time::Instant::now();
            match self
                .consume(handler.clone(), shutdown.clone(), std::future::pending())
                .await
            {
                Ok(()) => {}
                Err(error) => {
                    tracing::warn!(consumer = %self.spec.name, error = %error, "consumer stopped; restarting");
                    self.status.set_error(Some(error.to_string()));
                    self.status.restarts.fetch_add(1, Ordering::Relaxed);
                }
            }
            if started.elapsed() > self.spec.max_pause {
                pause = self.spec.first_pause.max(Duration::from_secs(1));
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.wait() => {}
            }
            pause = (pause * 2).min(self.spec.max_pause);
        }
    }

    /// Consumes until shutdown (`Ok`), a failure, or `until` resolves (its error: a lost lead,
    /// say).
    pub async fn consume<H: Handler>(
        &self,
        handler: Arc<H>,
        shutdown: Shutdown,
        until: impl Future<Output = BoxError> + Send,
    ) -> Result<(), BoxError> {
        let consumer = self.consumer().await?;
        if self.spec.concurrency > 1 {
            self.consume_side_by_side(&consumer, handler, shutdown, until)
                .await
        } else {
            self.consume_in_order(&consumer, handler, shutdown, until)
                .await
        }
    }

    async fn consume_in_order<H: Handler>(
        &self,
        consumer: &Consumer<pull::Config>,
        handler: Arc<H>,
        mut shutdown: Shutdown,
        until: impl Future<Output = BoxError> + Send,
    ) -> Result<(), BoxError> {
        let batch = self.spec.batch.max(1);
        let mut arriving = consumer
            .stream()
            .max_messages_per_batch(batch.max(200))
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await?;
        let mut pause = self.spec.first_pause;
        tokio::pin!(until);
        loop {
            tokio::select! {
                next = next_batch(&mut arriving, batch) => {
                    let Some(next) = next else { return Err("the consumer's message stream ended".into()) };
                    let messages = next?;
                    let count = messages.len();
                    let kept = messages.clone();
                    match handler.handle(messages).await {
                        Handled::Settled(settled) => {
                            for (message, how) in kept.iter().zip(settled) {
                                settle(message, how, &self.spec.name).await;
                            }
                            self.status.handled.fetch_add(count as u64, Ordering::Relaxed);
                            self.status.set_error(None);
                            pause = self.spec.first_pause;
                        }
                        Handled::Stopped { settled, error } => {
                            let done = settled.len();
                            for (message, how) in kept.iter().zip(settled) {
                                settle(message, how, &self.spec.name).await;
                            }
                            // It and whatever else arrived go back, so it is the first one
                            // delivered again after the pause.
                            for message in kept.iter().skip(done) {
                                settle(message, Settle::Nak(None), &self.spec.name).await;
                            }
                            while let Some(Some(buffered)) = arriving.next().now_or_never() {
                                if let Ok(message) = buffered {
                                    settle(&message, Settle::Nak(None), &self.spec.name).await;
                                }
                            }
                            self.status.set_error(Some(error.clone()));
                            handler.stopped(&error).await;
                            tokio::select! {
                                () = tokio::time::sleep(pause) => {}
                                () = shutdown.wait() => return Ok(()),
                            }
                            pause = (pause * 2).min(self.spec.max_pause);
                        }
                    }
                }
                error = &mut until => return Err(error),
                () = shutdown.wait() => return Ok(()),
            }
        }
    }

    async fn consume_side_by_side<H: Handler>(
        &self,
        consumer: &Consumer<pull::Config>,
        handler: Arc<H>,
        mut shutdown: Shutdown,
        until: impl Future<Output = BoxError> + Send,
    ) -> Result<(), BoxError> {
        let slots = Arc::new(Semaphore::new(self.spec.concurrency));
        let mut running = tokio::task::JoinSet::new();
        tokio::pin!(until);
        let outcome = loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => slot?,
                error = &mut until => break Err(error),
                () = shutdown.wait() => break Ok(()),
            };
            let mut fetched = match consumer
                .fetch()
                .max_messages(self.spec.batch.max(1))
                .expires(Duration::from_secs(1))
                .messages()
                .await
            {
                Ok(fetched) => fetched,
                Err(error) => break Err(error.into()),
            };
            let mut messages = Vec::new();
            let mut failure = None;
            loop {
                tokio::select! {
                    next = fetched.next() => match next {
                        Some(Ok(message)) => messages.push(message),
                        Some(Err(error)) => {
                            failure = Some(error);
                            break;
                        }
                        None => break,
                    },
                    () = shutdown.wait() => break,
                }
            }
            if let Some(error) = failure {
                break Err(error);
            }
            if messages.is_empty() {
                if shutdown.is_triggered() {
                    break Ok(());
                }
                continue;
            }
            let handler = handler.clone();
            let status = self.status.clone();
            let name = self.spec.name.clone();
            running.spawn(async move {
                let kept = messages.clone();
                let settled = match handler.handle(messages).await {
                    Handled::Settled(settled) => settled,
                    Handled::Stopped { mut settled, error } => {
                        handler.stopped(&error).await;
                        settled.resize(kept.len(), Settle::Nak(None));
                        settled
                    }
                };
                for (message, how) in kept.iter().zip(settled) {
                    settle(message, how, &name).await;
                }
                status
                    .handled
                    .fetch_add(kept.len() as u64, Ordering::Relaxed);
                drop(slot);
            });
            while running.try_join_next().is_some() {}
        };
        // Work in flight finishes (a stopping replica completes what it started).
        while running.join_next().await.is_some() {}
        outcome
    }
}
