//! The `payments` table: written by the payments projection, read by the payment queries.

use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

use eshop_projections::payment::PaymentRecord;

use super::{JsonTable, Records};

impl JsonTable for PaymentRecord {
    const TABLE: &'static str = "payments";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("customer_id", "(record->>'customer_id')::uuid"),
        ("created_at", "(record->>'created_at')::timestamptz"),
    ];
}

/// Queries over the `payments` table.
#[derive(Clone)]
pub struct PgPayments {
    pool: PgPool,
    records: Records<PaymentRecord>,
}

impl PgPayments {
    pub fn new(pool: PgPool) -> Self {
        Self {
            records: Records::new(pool.clone()),
            pool,
        }
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<PaymentRecord>, sqlx::Error> {
        self.records.get(id).await
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
    ) -> Result<Option<PaymentRecord>, sqlx::Error> {
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
