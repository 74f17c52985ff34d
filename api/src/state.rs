//! What every handler can reach.

use std::sync::Arc;

use async_nats::jetstream;
use sqlx::PgPool;
use uuid::Uuid;

use eshop_commands::orders::{OrderProcess, Orders};
use eshop_commands::{CommandBus, Idempotency};
use eshop_infra::cache::Cache;
use eshop_infra::erasure::Erasure;
use eshop_infra::mail::outbox::Outbox;
use eshop_infra::nats::EventSubjects;
use eshop_infra::personal_data::SealingKey;
use eshop_infra::rate_limit::RateLimiter;
use eshop_infra::read_models::documents::PgDocuments;
use eshop_infra::read_models::orders::PgOrders;
use eshop_infra::read_models::payments::PgPayments;
use eshop_infra::read_models::products::PgProducts;
use eshop_infra::read_models::users::PgUsers;
use eshop_infra::read_models::JsonTable;
use eshop_infra::relay::RelayStatus;
use eshop_infra::scheduler::PgSchedules;
use eshop_infra::search::ProductSearch;
use eshop_infra::sessions::PgSessions;
use eshop_infra::simulated_gateway::SimulatedGateway;
use eshop_infra::tasks::{PgTasks, TaskQueue};
use eshop_infra::{PgEventStore, PgIdempotencyRecords};
use eshop_projections::shopping::{CartRecord, ReviewRecord, WishlistRecord};

use crate::auth::TokenKeys;
use crate::config::ThrottleSettings;
use crate::error::ApiError;
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
    /// The use cases of buying: purchases, orders, checkout, cancellation.
    pub ordering: Orders<PgEventStore, SimulatedGateway>,
    /// The process manager those orders run through (also driven by the order worker).
    pub process: Arc<OrderProcess<PgEventStore, SimulatedGateway>>,
    pub cache: Arc<Cache>,
    pub jetstream: jetstream::Context,
    pub subjects: EventSubjects,
    pub relay: Arc<RelayStatus>,
    /// The mail sent-log and sender (also the mail counters for `/metrics`).
    pub outbox: Outbox,
    pub tasks: PgTasks,
    pub task_queue: TaskQueue,
    pub schedules: PgSchedules,
    /// The shop's time zone (`ESHOP_TZ`).
    pub tz: chrono_tz::Tz,
    /// This process's search index (none in a workers-only process).
    pub search: Option<Arc<ProductSearch>>,
}

/// Adapters that need nothing but the pool, made when asked for.
impl Services {
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
