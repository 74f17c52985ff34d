//! What every handler can reach.

use std::sync::Arc;

use async_nats::jetstream;
use sqlx::PgPool;
use uuid::Uuid;

use eshop_commands::orders::{OrderProcess, Orders};
use eshop_commands::{BoxError, CommandBus, Idempotency};
use eshop_infra::cache::Cache;
use eshop_infra::erasure::Erasure;
use eshop_infra::mail::outbox::Outbox;
use eshop_infra::nats::EventSubjects;
use eshop_infra::operations::{self, StatusCounts};
pub use eshop_infra::operations::{process_figures, ConsumerBacklog};
use eshop_infra::password_tokens::PgPasswordTokens;
use eshop_infra::personal_data::SealingKey;
use eshop_infra::projector::report;
pub use eshop_infra::projector::ProjectionReport;
use eshop_infra::rate_limit::RateLimiter;
use eshop_infra::read_models::calendar::PgCalendar;
use eshop_infra::read_models::categories::PgCategories;
use eshop_infra::read_models::documents::PgDocuments;
use eshop_infra::read_models::movies::PgMovies;
use eshop_infra::read_models::orders::PgOrders;
use eshop_infra::read_models::payments::PgPayments;
use eshop_infra::read_models::products::PgProducts;
use eshop_infra::read_models::registry;
use eshop_infra::read_models::users::PgUsers;
use eshop_infra::read_models::JsonTable;
use eshop_infra::recent_writes::RecentWrites;
use eshop_infra::relay::RelayStatus;
use eshop_infra::scheduler::PgSchedules;
use eshop_infra::search::ProductSearch;
use eshop_infra::sessions::PgSessions;
use eshop_infra::simulated_gateway::SimulatedGateway;
/// How a task ended, for tasks a route runs itself (the movies import).
pub use eshop_infra::tasks::Outcome as TaskOutcome;
use eshop_infra::tasks::{PgTasks, TaskQueue};
use eshop_infra::{PgEventStore, PgIdempotencyRecords};
use eshop_projections::shopping::{CartRecord, ReviewRecord, WishlistRecord};
use eshop_projections::RelayedEvent;

use crate::auth::TokenKeys;
use crate::config::{AccountSettings, ThrottleSettings};
use crate::error::ApiError;
use crate::http_metrics::HttpMetrics;
use crate::routes::{not_yet_visible, READ_YOUR_WRITES_WAIT};

/// Cheap to clone (one `Arc`): every request clones it once per extractor and middleware, and
/// the services inside hold NATS contexts and pools whose clones are not cheap.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub pool: PgPool,
    pub bus: Arc<CommandBus<PgEventStore>>,
    pub idempotency: Arc<Idempotency<PgIdempotencyRecords>>,
    pub tokens: TokenKeys,
    /// Seals queued request bodies (derived from the token secret every replica shares).
    pub task_body_key: SealingKey,
    pub sessions: PgSessions,
    pub limiter: Arc<RateLimiter>,
    pub throttle: Arc<ThrottleSettings>,
    /// The header that names the client's address behind a proxy (`ESHOP_CLIENT_IP_HEADER`).
    pub client_ip_header: Option<Arc<str>>,
    pub cors_origins: Arc<[String]>,
    pub products: PgProducts,
    pub users: PgUsers,
    pub orders: PgOrders,
    pub payments: PgPayments,
    pub carts: PgDocuments<CartRecord>,
    pub wishlists: PgDocuments<WishlistRecord>,
    pub reviews: PgDocuments<ReviewRecord>,
    /// The movies catalog's reads.
    pub movies: PgMovies,
    /// `ESHOP_PROFILE_SQL`: log each request's statements.
    pub profile_sql: bool,
    /// The economic calendar's entries.
    pub calendar: PgCalendar,
    /// The category tree.
    pub categories: PgCategories,
    /// The use cases of buying: purchases, orders, checkout, cancellation.
    pub ordering: Orders<PgEventStore, SimulatedGateway>,
    /// The process manager those orders run through (also driven by the order worker).
    pub process: Arc<OrderProcess<PgEventStore, SimulatedGateway>>,
    pub cache: Arc<Cache>,
    /// What each user's answered commands wrote lately (in Redis): their list reads wait for it.
    pub recent_writes: Arc<RecentWrites>,
    pub jetstream: jetstream::Context,
    pub subjects: EventSubjects,
    pub relay: Arc<RelayStatus>,
    /// The mail sent-log and sender (also the mail counters for `/metrics`).
    pub outbox: Outbox,
    pub tasks: PgTasks,
    pub task_queue: TaskQueue,
    pub schedules: PgSchedules,
    /// One-time tokens to set or reset a password, and how long they last.
    pub password_tokens: PgPasswordTokens,
    pub accounts: Arc<AccountSettings>,
    /// The shop's time zone (`ESHOP_TZ`).
    pub tz: chrono_tz::Tz,
    /// Request counts and latencies for `/metrics`.
    pub http_metrics: Arc<HttpMetrics>,
    /// `/ready` answers 503 when a projection lags more than this.
    pub ready_max_lag: std::time::Duration,
    /// This process's search index (none in a workers-only process).
    pub search: Option<Arc<ProductSearch>>,
    /// The pages' settings.
    pub web: crate::config::WebSettings,
}

/// The shapes of the audit and operations reads, named here so that routes reach them through
/// the state, never an adapter by name.
pub use eshop_infra::audit::export::{write_lines as write_export_lines, Export, ExportError};
pub use eshop_infra::audit::export::{ExportRange, Until};
pub use eshop_infra::audit::state::{AggregateState, AsOf, StateError};
pub use eshop_infra::audit::verify::Verification;
pub use eshop_infra::audit::FeedFilter;

/// Adapters that need nothing but the pool, made when asked for.
impl Services {
    /// Every registered projection: how far it got and how far behind it is.
    pub async fn projection_reports(&self) -> Result<Vec<ProjectionReport>, ApiError> {
        let names = registry::shop().names();
        let mut reports = report(&self.pool, &self.jetstream, &self.subjects, &names)
            .await
            .map_err(ApiError::Unavailable)?;
        // This process's own search index (each replica keeps one).
        if let Some(search) = &self.search {
            reports.push(
                search
                    .report(&self.jetstream, &self.subjects)
                    .await
                    .map_err(ApiError::Unavailable)?,
            );
        }
        Ok(reports)
    }

    /// Tasks and orders by status.
    pub async fn status_counts(&self) -> Result<StatusCounts, ApiError> {
        operations::status_counts(&self.pool)
            .await
            .map_err(ApiError::Unavailable)
    }

    /// Orders placed after the `OrderPlaced` event at `after` (`None`: none counted, only where
    /// to start), and the position to pass next time; cheap, for a purchases-per-second chart.
    pub async fn orders_placed_after(&self, after: Option<i64>) -> Result<(i64, i64), ApiError> {
        let counted = match after {
            Some(after) => operations::orders_placed_after(&self.pool, after).await,
            None => operations::newest_order_placed(&self.pool)
                .await
                .map(|newest| (0, newest)),
        };
        counted.map_err(ApiError::unavailable)
    }

    /// Every durable consumer's backlog on the event and task streams.
    pub async fn consumer_backlogs(&self) -> Result<Vec<ConsumerBacklog>, ApiError> {
        operations::consumer_backlogs(&self.jetstream, &self.subjects)
            .await
            .map_err(ApiError::Unavailable)
    }

    /// Why this replica should not take traffic now (empty: it should): Postgres or NATS not
    /// answering within a second, or a projection further behind than `ready_max_lag`.
    pub async fn unreadiness(&self) -> Vec<String> {
        const LIMIT: std::time::Duration = std::time::Duration::from_secs(1);
        let mut reasons = Vec::new();
        if let Err(error) = operations::postgres_answers(&self.pool, LIMIT).await {
            reasons.push(format!("postgres: {error}"));
        }
        if let Err(error) =
            operations::jetstream_answers(&self.jetstream, &self.subjects, LIMIT).await
        {
            reasons.push(format!("nats: {error}"));
        }
        if reasons.is_empty() {
            match tokio::time::timeout(LIMIT * 2, self.projection_reports()).await {
                Ok(Ok(reports)) => reasons.extend(
                    reports
                        .iter()
                        .filter(|report| report.lag_seconds > self.ready_max_lag.as_secs_f64())
                        .map(|report| {
                            format!(
                                "projection {} lags {:.0} s ({} events)",
                                report.name, report.lag_seconds, report.lag_events
                            )
                        }),
                ),
                Ok(Err(error)) => reasons.push(format!("projections: {error}")),
                Err(_) => reasons.push("projections: no report within 2 s".to_string()),
            }
        }
        reasons
    }

    /// The search index, or 503 where this process has none.
    pub fn product_search(&self) -> Result<&Arc<ProductSearch>, ApiError> {
        self.search
            .as_ref()
            .ok_or_else(|| ApiError::Unavailable("this process serves no search index".into()))
    }

    /// Erases what is derived from a user's personal data.
    pub fn erasure(&self) -> Erasure {
        Erasure::new(self.pool.clone())
    }

    /// Committed events after `after` that pass `filter`, by position.
    pub async fn audit_feed(
        &self,
        after: i64,
        limit: i64,
        filter: &FeedFilter,
    ) -> Result<Vec<RelayedEvent>, sqlx::Error> {
        eshop_infra::audit::feed(&self.pool, after, limit, filter).await
    }

    /// One aggregate's events in sequence.
    pub async fn audit_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<RelayedEvent>, sqlx::Error> {
        eshop_infra::audit::stream(&self.pool, aggregate_type, aggregate_id).await
    }

    /// Every event one request or one order process caused, in commit order.
    pub async fn audit_correlation(
        &self,
        correlation_id: &str,
    ) -> Result<Vec<RelayedEvent>, sqlx::Error> {
        eshop_infra::audit::correlation(&self.pool, correlation_id).await
    }

    /// The aggregate as the domain rebuilt it from its events up to `as_of`.
    pub async fn state_as_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        as_of: AsOf,
    ) -> Result<Option<AggregateState>, StateError> {
        eshop_infra::audit::state::state_as_of(&self.pool, aggregate_type, aggregate_id, as_of)
            .await
    }

    /// An export of the events in `range`, in commit-safe order, read a page at a time.
    pub async fn start_export(&self, range: ExportRange) -> Result<Export, ExportError> {
        Export::start(&self.pool, range).await
    }

    /// Recomputes the hash chain and compares it with the stored links and seals.
    pub async fn verify_chain(&self) -> Result<Verification, BoxError> {
        eshop_infra::audit::verify::verify(&self.pool).await
    }

    /// Whether the shop keeps a read model of that name.
    pub fn is_read_model(&self, name: &str) -> bool {
        eshop_infra::read_models::registry::shop()
            .get(name)
            .is_some()
    }
}

/// A per-user document from its read model, waiting for `min_version` when asked; an absent
/// document reads as `empty`.
pub async fn read_document<D: JsonTable>(
    documents: &PgDocuments<D>,
    id: Uuid,
    min_version: Option<u64>,
) -> Result<Option<D>, ApiError> {
    match min_version {
        Some(wanted) if wanted > 0 => documents
            .wait_for_version(id, wanted, READ_YOUR_WRITES_WAIT)
            .await?
            .map(Some)
            .ok_or_else(|| not_yet_visible(wanted)),
        _ => Ok(documents.get(id).await?),
    }
}
