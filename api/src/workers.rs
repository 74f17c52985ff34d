//! Every runner a process starts in the background, with its settings from `Config`:
//!
//! - the relay (store → JetStream; one replica at a time),
//! - one projection builder per registered read model (`read_models::registry::shop`; each on
//!   one replica at a time),
//! - the order worker (a shared consumer of order events, and the sweep of stalled orders),
//! - the mailer (a shared consumer of every event, and its outbox),
//! - the task worker (a shared consumer of the task queue; not started with
//!   `ESHOP_TASK_CONCURRENCY=0`),
//! - the scheduler (every replica fires; one claim per tick runs it).
//!
//! `eshop serve --role workers` runs these and no API; `--role api` the API and none of these.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::task::JoinHandle;

use eshop_infra::feeds::FeedReader;
use eshop_infra::mail::recipients::Recipients;
use eshop_infra::mail::{Mailer, MailerSettings};
use eshop_infra::order_worker::{OrderWorker, SweepSettings};
use eshop_infra::personal_data::PersonalDataKeys;
use eshop_infra::projector::{ProjectorContext, ProjectorSettings};
use eshop_infra::read_models::registry;
use eshop_infra::relay::{Relay, RelaySettings};
use eshop_infra::scheduler::{Scheduler, SchedulerSettings};
use eshop_infra::shutdown::Shutdown;
use eshop_infra::tasks::{TaskWorker, WorkerSettings};

use crate::background::jobs::ScheduledJobs;
use crate::background::tasks::TaskExecutor;
use crate::config::{BackgroundSettings, Config};
use crate::state::AppState;

impl BackgroundSettings {
    pub fn relay(&self) -> RelaySettings {
        RelaySettings {
            batch_size: self.relay_batch_size.max(1),
            eager_poll: Duration::from_millis(self.relay_eager_poll_ms.max(1)),
            eager_for: Duration::from_millis(self.relay_eager_for_ms),
            idle_poll: Duration::from_millis(self.relay_idle_poll_ms.max(1)),
        }
    }

    pub fn projections(&self) -> ProjectorSettings {
        ProjectorSettings {
            batch: self.projection_batch.max(1),
            ack_wait: Duration::from_secs(self.projection_ack_wait_seconds.max(1)),
        }
    }

    pub fn sweep(&self) -> SweepSettings {
        SweepSettings {
            every: Duration::from_secs(self.order_sweep_seconds.max(1)),
            stalled_after: Duration::from_secs(self.order_stalled_after_seconds),
            give_up_after: Duration::from_secs(self.order_give_up_after_seconds),
        }
    }
}

/// Starts every background runner of this process; each stops at `shutdown`. `router` is what
/// background tasks and scheduled jobs replay requests through; `feeds` fetches import feeds.
pub fn spawn(
    state: &AppState,
    router: &Router,
    config: &Config,
    feeds: FeedReader,
    shutdown: &Shutdown,
) -> Vec<JoinHandle<()>> {
    let settings = &config.background;
    let mut workers = vec![tokio::spawn(
        Relay::new(
            state.pool.clone(),
            state.jetstream.clone(),
            state.subjects.clone(),
            settings.relay(),
        )
        .reporting_to(state.relay.clone())
        .run(shutdown.clone()),
    )];

    // The hash chain over the history (one sealer leads per cluster).
    workers.push(tokio::spawn(
        eshop_infra::audit::sealer::Sealer::new(
            state.pool.clone(),
            state.jetstream.clone(),
            state.subjects.clone(),
            Default::default(),
        )
        .run(shutdown.clone()),
    ));

    let projections = ProjectorContext {
        pool: state.pool.clone(),
        jetstream: state.jetstream.clone(),
        subjects: state.subjects.clone(),
        cache: Some(state.cache.clone()),
        settings: settings.projections(),
    };
    for read_model in registry::shop().iter() {
        workers.push(tokio::spawn(
            read_model.run(projections.clone(), shutdown.clone()),
        ));
    }

    workers.push(tokio::spawn(
        OrderWorker::new(
            state.process.clone(),
            state.orders.clone(),
            state.jetstream.clone(),
            state.subjects.clone(),
            settings.sweep(),
        )
        .run(shutdown.clone()),
    ));

    workers.push(tokio::spawn(
        Mailer::new(
            state.jetstream.clone(),
            state.subjects.clone(),
            state.outbox.clone(),
            Recipients::new(
                state.users.clone(),
                PersonalDataKeys::new(state.pool.clone()),
            ),
            state.orders.clone(),
            state.payments.clone(),
            state.products.clone(),
            MailerSettings {
                horizon: Duration::from_secs(config.mail_horizon_hours.saturating_mul(3600)),
            },
        )
        .run(shutdown.clone()),
    ));

    if config.task_concurrency > 0 {
        workers.push(tokio::spawn(
            TaskWorker::new(
                state.tasks.clone(),
                state.jetstream.clone(),
                state.subjects.clone(),
                Arc::new(TaskExecutor::new(
                    state.clone(),
                    router.clone(),
                    Duration::from_millis(config.task_step_delay_ms),
                )),
                WorkerSettings {
                    concurrency: config.task_concurrency,
                    ack_wait: Duration::from_secs(config.task_ack_wait_seconds.max(3)),
                    ..WorkerSettings::default()
                },
            )
            .run(shutdown.clone()),
        ));
    }

    workers.push(tokio::spawn(
        Scheduler::new(
            state.schedules.clone(),
            Arc::new(
                ScheduledJobs::new(state.clone(), config.import_feed.clone(), feeds)
                    .sweeping_with(settings.sweep())
                    .with_calendar_feed(config.calendar.calendar_feed.clone()),
            ),
            SchedulerSettings {
                tz: state.tz,
                poll: Duration::from_millis(config.schedule_poll_ms.max(50)),
                owner: format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple()),
            },
        )
        .run(shutdown.clone()),
    ));
    workers
}

/// Names this replica in scheduled-run records.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "eshop".to_string())
}
