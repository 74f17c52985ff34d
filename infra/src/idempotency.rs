//! Idempotency records in Postgres.

use std::time::Duration;

use sqlx::PgPool;

use eshop_commands::idempotency::IdempotencyRecord;
use eshop_commands::{IdempotencyRecords, StoreError, StoredResponse};

use crate::event_store::unavailable;

#[derive(Clone)]
pub struct PgIdempotencyRecords {
    pool: PgPool,
}

impl PgIdempotencyRecords {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

type Row = (String, String, String, i16, serde_json::Value);

fn into_record((scope, key, fingerprint, status, body): Row) -> IdempotencyRecord {
    IdempotencyRecord {
        scope,
        key,
        fingerprint,
        response: StoredResponse {
            status: u16::try_from(status).unwrap_or(500),
            body,
        },
    }
}

impl IdempotencyRecords for PgIdempotencyRecords {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn find(&self, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT scope, key, fingerprint, status, body FROM idempotency_records
              WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(row.map(into_record))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn save_first(&self, record: IdempotencyRecord) -> Result<IdempotencyRecord, StoreError> {
        let status = i16::try_from(record.response.status).map_err(unavailable)?;
        // The no-op update makes RETURNING yield the row that won, ours or a concurrent one.
        let row: Row = sqlx::query_as(
            "INSERT INTO idempotency_records (scope, key, fingerprint, status, body)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (scope, key) DO UPDATE SET scope = idempotency_records.scope
             RETURNING scope, key, fingerprint, status, body",
        )
        .bind(&record.scope)
        .bind(&record.key)
        .bind(&record.fingerprint)
        .bind(status)
        .bind(&record.response.body)
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(into_record(row))
    }

    async fn purge_older_than(&self, age: Duration) -> Result<u64, StoreError> {
        let seconds = i64::try_from(age.as_secs()).map_err(unavailable)?;
        let result = sqlx::query(
            "DELETE FROM idempotency_records WHERE created_at < now() - $1 * interval '1 second'",
        )
        .bind(seconds)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(result.rows_affected())
    }
}
