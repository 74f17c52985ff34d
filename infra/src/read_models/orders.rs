//! The `orders` table: written by the orders projection, read by the order queries.

use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

use eshop_projections::order::{OrderFilter, OrderRecord};

use super::{JsonTable, Records, Table};

impl JsonTable for OrderRecord {
    const TABLE: &'static str = "orders";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("customer_id", "(record->>'customer_id')::uuid"),
        ("status", "record->>'status'"),
        ("created_at", "(record->>'created_at')::timestamptz"),
        ("updated_at", "(record->>'updated_at')::timestamptz"),
    ];
}

/// Queries over the `orders` table.
#[derive(Clone)]
pub struct PgOrders {
    pool: PgPool,
    records: Records<OrderRecord>,
}

impl PgOrders {
    pub fn new(pool: PgPool) -> Self {
        Self {
            records: Records::new(pool.clone()),
            pool,
        }
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<OrderRecord>, sqlx::Error> {
        self.records.get(id).await
    }

    /// The orders of `ids` that exist, in one query.
    pub async fn get_many(&self, ids: &[Uuid]) -> Result<Vec<OrderRecord>, sqlx::Error> {
        let mut connection = self.pool.acquire().await?;
        <OrderRecord as Table>::load(&mut connection, ids, false).await
    }

    /// Waits for versions on the process's shared listener.
    pub fn waiting_on(self, waits: super::progress::VersionWaits) -> Self {
        Self {
            records: self.records.waiting_on(waits),
            ..self
        }
    }

    /// The record once it reflects `version`, or `None` after `timeout`.
    pub async fn wait_for_version(
        &self,
        id: Uuid,
        version: u64,
        timeout: std::time::Duration,
    ) -> Result<Option<OrderRecord>, sqlx::Error> {
        self.records.wait_for_version(id, version, timeout).await
    }

    /// Whether every record of `wanted` (`(id, version)`) reflects its version, waiting up to
    /// `timeout` (read your own writes in a list).
    pub async fn wait_for_versions(
        &self,
        wanted: &[(Uuid, u64)],
        timeout: std::time::Duration,
    ) -> Result<bool, sqlx::Error> {
        self.records.wait_for_versions(wanted, timeout).await
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

    /// The orders `filter` lets through, newest first; `before` is the last order of the
    /// previous page. Each combination is served by an index (`orders_by_customer`,
    /// `orders_by_status`, `orders_by_time`).
    pub async fn list(
        &self,
        filter: &OrderFilter,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<OrderRecord>, sqlx::Error> {
        let status = filter
            .status
            .map(|status| serde_json::to_value(status).ok())
            .flatten()
            .and_then(|value| value.as_str().map(str::to_string));
        let rows: Vec<(Json<OrderRecord>,)> = sqlx::query_as(
            "SELECT record FROM orders
              WHERE ($1::uuid IS NULL OR customer_id = $1)
                AND ($2::text IS NULL OR status = $2)
                AND ($3::timestamptz IS NULL OR created_at >= $3)
                AND ($4::timestamptz IS NULL OR created_at < $4)
                AND ($5::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM orders WHERE id = $5))
              ORDER BY created_at DESC, id DESC
              LIMIT $6",
        )
        .bind(filter.customer_id)
        .bind(status)
        .bind(filter.from)
        .bind(filter.to)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(Json(record),)| record).collect())
    }

    /// Orders that have not finished and have not changed for `older_than_seconds` (an order
    /// paid again counts from then).
    pub async fn unfinished(
        &self,
        older_than_seconds: i64,
        limit: i64,
    ) -> Result<Vec<Uuid>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT id FROM orders
              WHERE status NOT IN ('confirmed', 'cancelled', 'failed')
                AND coalesce(updated_at, created_at) < now() - $1 * interval '1 second'
              ORDER BY coalesce(updated_at, created_at) LIMIT $2",
        )
        .bind(older_than_seconds)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }
}
