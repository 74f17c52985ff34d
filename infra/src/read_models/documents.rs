//! Read models kept as one JSON document per aggregate (carts, wishlists, reviews).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use eshop_projections::shopping::{
    apply_cart, apply_review, apply_wishlist, CartRecord, ReviewRecord, WishlistRecord,
};
use eshop_projections::{ProjectionError, RelayedEvent};

use super::{evolve, lock_json_records, ApplyError, ReadModel};
use crate::cache::Cache;

pub trait Document: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    /// The projection's name (and its consumer's).
    const NAME: &'static str;
    const AGGREGATE_TYPE: &'static str;
    /// The table: `id uuid, key uuid, record jsonb, version bigint, updated_at`.
    const TABLE: &'static str;

    fn apply(current: Option<&Self>, event: &RelayedEvent)
        -> Result<Option<Self>, ProjectionError>;
    fn id(&self) -> Uuid;
    /// What the document is looked up by.
    fn key(&self) -> Uuid;
    fn version(&self) -> u64;
    /// The product whose cached views this document is part of, if any.
    fn shown_on_product(&self) -> Option<Uuid> {
        None
    }
}

impl Document for CartRecord {
    const NAME: &'static str = "carts";
    const AGGREGATE_TYPE: &'static str = "cart";
    const TABLE: &'static str = "carts";

    fn apply(
        current: Option<&Self>,
        event: &RelayedEvent,
    ) -> Result<Option<Self>, ProjectionError> {
        apply_cart(current, event)
    }
    fn id(&self) -> Uuid {
        self.user_id
    }
    fn key(&self) -> Uuid {
        self.user_id
    }
    fn version(&self) -> u64 {
        self.version
    }
}

impl Document for WishlistRecord {
    const NAME: &'static str = "wishlists";
    const AGGREGATE_TYPE: &'static str = "wishlist";
    const TABLE: &'static str = "wishlists";

    fn apply(
        current: Option<&Self>,
        event: &RelayedEvent,
    ) -> Result<Option<Self>, ProjectionError> {
        apply_wishlist(current, event)
    }
    fn id(&self) -> Uuid {
        self.user_id
    }
    fn key(&self) -> Uuid {
        self.user_id
    }
    fn version(&self) -> u64 {
        self.version
    }
}

impl Document for ReviewRecord {
    const NAME: &'static str = "reviews";
    const AGGREGATE_TYPE: &'static str = "review";
    const TABLE: &'static str = "reviews";

    fn apply(
        current: Option<&Self>,
        event: &RelayedEvent,
    ) -> Result<Option<Self>, ProjectionError> {
        apply_review(current, event)
    }
    fn id(&self) -> Uuid {
        self.id
    }
    fn key(&self) -> Uuid {
        self.product_id
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn shown_on_product(&self) -> Option<Uuid> {
        Some(self.product_id)
    }
}

pub struct DocumentProjection<D> {
    cache: Option<Arc<Cache>>,
    document: PhantomData<fn() -> D>,
}

impl<D> DocumentProjection<D> {
    /// `cache`: where products whose views include these documents are invalidated.
    pub fn new(cache: Option<Arc<Cache>>) -> Self {
        Self {
            cache,
            document: PhantomData,
        }
    }
}

impl<D: Document> ReadModel for DocumentProjection<D> {
    const NAME: &'static str = D::NAME;
    const AGGREGATE_TYPE: &'static str = D::AGGREGATE_TYPE;

    async fn apply(
        &self,
        connection: &mut PgConnection,
        events: &[RelayedEvent],
    ) -> Result<Vec<Uuid>, ApplyError> {
        let mut documents: HashMap<Uuid, D> =
            lock_json_records(&mut *connection, D::TABLE, events, D::id).await?;
        let changed = evolve(&mut documents, events, D::apply)?;
        let mut products = Vec::new();
        for document in changed.iter().filter_map(|id| documents.get(id)) {
            sqlx::query(&format!(
                "INSERT INTO {table} (id, key, record, version, updated_at)
                 VALUES ($1, $2, $3, $4, now())
                 ON CONFLICT (id) DO UPDATE SET
                     key = EXCLUDED.key, record = EXCLUDED.record, version = EXCLUDED.version,
                     updated_at = now()
                 WHERE {table}.version < EXCLUDED.version",
                table = D::TABLE
            ))
            .bind(document.id())
            .bind(document.key())
            .bind(Json(document))
            .bind(i64::try_from(document.version()).unwrap_or(i64::MAX))
            .execute(&mut *connection)
            .await?;
            products.extend(document.shown_on_product());
        }
        Ok(products)
    }

    async fn after_commit(&self, products: &[Uuid]) {
        if let Some(cache) = &self.cache {
            cache.invalidate_products(products).await;
        }
    }
}

/// Queries over a document table.
pub struct PgDocuments<D> {
    pool: PgPool,
    document: PhantomData<fn() -> D>,
}

impl<D> Clone for PgDocuments<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            document: PhantomData,
        }
    }
}

impl<D: Document> PgDocuments<D> {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            document: PhantomData,
        }
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<D>, sqlx::Error> {
        let row: Option<(Json<D>,)> =
            sqlx::query_as(&format!("SELECT record FROM {} WHERE id = $1", D::TABLE))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(Json(document),)| document))
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
