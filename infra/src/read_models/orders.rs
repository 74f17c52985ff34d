//! The `orders` table: written by the orders projection, read by the order queries.

use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

use eshop_projections::order::OrderRecord;

use super::{JsonTable, Records, Table};

impl JsonTable for OrderRecord {
    const TABLE: &'static str = "orders";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("customer_id", "(record->>'customer_id')::uuid"),
        ("status", "record->>'status'"),
        ("created_at", "(record->>'created_at')::timestamptz"),
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
