//! The `payments` table: written by the payments projection, read by the payment queries.

use std::collections::HashMap;

use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use eshop_projections::payment::{apply, PaymentRecord};
use eshop_projections::RelayedEvent;

use super::{evolve, lock_json_records, ApplyError, ReadModel};

#[derive(Default)]
pub struct PaymentsProjection;

impl ReadModel for PaymentsProjection {
    const NAME: &'static str = "payments";
    const AGGREGATE_TYPE: &'static str = "payment";

    async fn apply(
        &self,
        connection: &mut PgConnection,
        events: &[RelayedEvent],
    ) -> Result<Vec<Uuid>, ApplyError> {
        let mut records: HashMap<Uuid, PaymentRecord> = lock_json_records(
            &mut *connection,
            "payments",
            events,
            |record: &PaymentRecord| record.id,
        )
        .await?;
        let changed = evolve(&mut records, events, apply)?;
        for record in changed.iter().filter_map(|id| records.get(id)) {
            sqlx::query(
                "INSERT INTO payments (id, customer_id, record, created_at, version)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record, version = EXCLUDED.version
                 WHERE payments.version < EXCLUDED.version",
            )
            .bind(record.id)
            .bind(record.customer_id)
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

/// Queries over the `payments` table.
#[derive(Clone)]
pub struct PgPayments {
    pool: PgPool,
}

impl PgPayments {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<PaymentRecord>, sqlx::Error> {
        let row: Option<(Json<PaymentRecord>,)> =
            sqlx::query_as("SELECT record FROM payments WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(Json(record),)| record))
    }

    /// Newest first; one customer's, or everyone's when `customer_id` is `None`. `before` is
    /// the last payment of the previous page.
    pub async fn list(
        &self,
        customer_id: Option<Uuid>,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<PaymentRecord>, sqlx::Error> {
        let rows: Vec<(Json<PaymentRecord>,)> = sqlx::query_as(
            "SELECT record FROM payments
              WHERE ($1::uuid IS NULL OR customer_id = $1)
                AND ($2::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM payments WHERE id = $2))
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
}
