//! The `orders` table: written by the orders projection, read by the order queries.

use std::collections::HashMap;

use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use eshop_projections::order::{apply, OrderRecord};
use eshop_projections::RelayedEvent;

use super::{evolve, lock_json_records, ApplyError, ReadModel};

#[derive(Default)]
pub struct OrdersProjection;

impl ReadModel for OrdersProjection {
    const NAME: &'static str = "orders";
    const AGGREGATE_TYPE: &'static str = "order";

    async fn apply(
        &self,
        connection: &mut PgConnection,
        events: &[RelayedEvent],
    ) -> Result<Vec<Uuid>, ApplyError> {
        let mut records: HashMap<Uuid, OrderRecord> = lock_json_records(
            &mut *connection,
            "orders",
            events,
            |record: &OrderRecord| record.id,
        )
        .await?;
        let changed = evolve(&mut records, events, apply)?;
        for record in changed.iter().filter_map(|id| records.get(id)) {
            let status = serde_json::to_value(record.status)
                .ok()
                .and_then(|value| value.as_str().map(str::to_string))
                .unwrap_or_default();
            sqlx::query(
                "INSERT INTO orders (id, customer_id, status, record, created_at, version)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id) DO UPDATE SET
                     status = EXCLUDED.status, record = EXCLUDED.record, version = EXCLUDED.version
                 WHERE orders.version < EXCLUDED.version",
            )
            .bind(record.id)
            .bind(record.customer_id)
            .bind(status)
            .bind(Json(record))
            .bind(record.created_at)
            .bind(i64::try_from(record.version).unwrap_or(i64::MAX))
            .execute(&mut *connection)
            .await?;
        }
        Ok(changed)
    }

    async fn after_commit(&self, _changed: &[Uuid]) {}
}

/// Queries over the `orders` table.
#[derive(Clone)]
pub struct PgOrders {
    pool: PgPool,
}

impl PgOrders {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<OrderRecord>, sqlx::Error> {
        let row: Option<(Json<OrderRecord>,)> =
            sqlx::query_as("SELECT record FROM orders WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(Json(record),)| record))
    }

    /// A customer's orders, newest first; `before` is the last order of the previous page.
    pub async fn for_customer(
        &self,
        customer_id: Uuid,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<OrderRecord>, sqlx::Error> {
        let rows: Vec<(Json<OrderRecord>,)> = sqlx::query_as(
            "SELECT record FROM orders
              WHERE customer_id = $1
                AND ($2::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM orders WHERE id = $2))
              ORDER BY created_at DESC, id DESC
              LIMIT $3",
        )
        .bind(customer_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(Json(record),)| record).collect())
    }

    /// Orders that have not finished and were placed before `older_than_seconds` ago.
    pub async fn unfinished(
        &self,
        older_than_seconds: i64,
        limit: i64,
    ) -> Result<Vec<Uuid>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT id FROM orders
              WHERE status NOT IN ('confirmed', 'cancelled', 'failed')
                AND created_at < now() - $1 * interval '1 second'
              ORDER BY created_at LIMIT $2",
        )
        .bind(older_than_seconds)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }
}
