//! Read models kept as one JSON document per aggregate, looked up by a key (carts and wishlists
//! by user, reviews by product): `id uuid, key uuid, record jsonb, version bigint, updated_at`.

use std::marker::PhantomData;

use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

use eshop_projections::shopping::{CartRecord, ReviewRecord, WishlistRecord};

use super::progress::VersionWaits;
use super::{JsonTable, Records};

impl JsonTable for CartRecord {
    const TABLE: &'static str = "carts";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("key", "(record->>'user_id')::uuid"),
        ("updated_at", "now()"),
    ];
}

impl JsonTable for WishlistRecord {
    const TABLE: &'static str = "wishlists";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("key", "(record->>'user_id')::uuid"),
        ("updated_at", "now()"),
    ];
}

impl JsonTable for ReviewRecord {
    const TABLE: &'static str = "reviews";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("key", "(record->>'product_id')::uuid"),
        ("updated_at", "now()"),
    ];

    /// A product shows its reviews' count and average.
    fn shown_on_product(&self) -> Option<Uuid> {
        Some(self.product_id)
    }
}

/// Queries over a document table.
pub struct PgDocuments<D> {
    pool: PgPool,
    records: Records<D>,
    document: PhantomData<fn() -> D>,
}

impl<D> Clone for PgDocuments<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            records: self.records.clone(),
            document: PhantomData,
        }
    }
}

impl<D: JsonTable> PgDocuments<D> {
    pub fn new(pool: PgPool) -> Self {
        Self {
            records: Records::new(pool.clone()),
            pool,
            document: PhantomData,
        }
    }

    /// Waits for versions on the process's shared listener.
    pub fn waiting_on(self, waits: VersionWaits) -> Self {
        Self {
            records: self.records.waiting_on(waits),
            ..self
        }
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<D>, sqlx::Error> {
        self.records.get(id).await
    }

    /// The document once it reflects `version` (`None` after `timeout`).
    pub async fn wait_for_version(
        &self,
        id: Uuid,
        version: u64,
        timeout: std::time::Duration,
    ) -> Result<Option<D>, sqlx::Error> {
        self.records.wait_for_version(id, version, timeout).await
    }

    /// The documents with this key, most recently changed first.
    pub async fn by_key(&self, key: Uuid, limit: i64) -> Result<Vec<D>, sqlx::Error> {
        let rows: Vec<(Json<D>,)> = sqlx::query_as(&format!(
            "SELECT record FROM {} WHERE key = $1 ORDER BY updated_at DESC, id DESC LIMIT $2",
            D::TABLE
        ))
        .bind(key)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(Json(document),)| document).collect())
    }
}
