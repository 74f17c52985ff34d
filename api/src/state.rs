//! What every handler can reach.

use std::sync::Arc;

use sqlx::PgPool;

use eshop_commands::{CommandBus, Idempotency};
use eshop_infra::{PgEventStore, PgIdempotencyRecords};

use crate::auth::TokenKeys;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub bus: Arc<CommandBus<PgEventStore>>,
    pub idempotency: Arc<Idempotency<PgIdempotencyRecords>>,
    pub tokens: TokenKeys,
}
