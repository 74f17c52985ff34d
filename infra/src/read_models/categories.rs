//! The category tree's table (`categories`: one JSON document per category, with the columns
//! the tree reads) and its queries. Product counts come from `products` in the same statement.

use std::collections::HashMap;

use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

use eshop_projections::cached::Entry;
use eshop_projections::category::{CategoryRecord, CategoryTree};

use super::progress::VersionWaits;
use super::{JsonTable, Records};

impl JsonTable for CategoryRecord {
    const TABLE: &'static str = "categories";
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("parent", "(record->>'parent')::uuid"),
        ("slug", "record->>'slug'"),
        ("deleted", "(record->>'deleted')::boolean"),
    ];

    fn cached_as(&self) -> Option<Entry> {
        Some(Entry::Categories)
    }
}

/// Every live category with the products filed directly under it: by `category_id`, or (a
/// product stored before the tree) by its free-text category's slug at the top level.
const TREE: &str = "
WITH own AS (
    SELECT coalesce(products.category_id, top.id) AS id, count(*) AS products
      FROM products
      LEFT JOIN categories AS top
        ON products.category_id IS NULL AND top.parent IS NULL AND NOT top.deleted
       AND top.slug = products.category_slug
     WHERE NOT products.removed
     GROUP BY 1)
SELECT categories.record, coalesce(own.products, 0)
  FROM categories LEFT JOIN own ON own.id = categories.id
 WHERE NOT categories.deleted";

#[derive(Clone)]
pub struct PgCategories {
    pool: PgPool,
    records: Records<CategoryRecord>,
}

impl PgCategories {
    pub fn new(pool: PgPool) -> Self {
        Self {
            records: Records::new(pool.clone()),
            pool,
        }
    }

    /// Waits for versions on the process's shared listener.
    pub fn waiting_on(self, waits: VersionWaits) -> Self {
        Self {
            records: self.records.waiting_on(waits),
            ..self
        }
    }

    /// A category (deleted ones too: the caller decides).
    pub async fn get(&self, id: Uuid) -> Result<Option<CategoryRecord>, sqlx::Error> {
        self.records.get(id).await
    }

    pub async fn wait_for_version(
        &self,
        id: Uuid,
        version: u64,
        timeout: std::time::Duration,
    ) -> Result<Option<CategoryRecord>, sqlx::Error> {
        self.records.wait_for_version(id, version, timeout).await
    }

    /// The whole tree with product counts, in one statement.
    pub async fn tree(&self) -> Result<CategoryTree, sqlx::Error> {
        let rows: Vec<(Json<CategoryRecord>, i64)> =
            sqlx::query_as(TREE).fetch_all(&self.pool).await?;
        let mut own = HashMap::new();
        let mut records = Vec::with_capacity(rows.len());
        for (Json(record), products) in rows {
            own.insert(record.id, u64::try_from(products).unwrap_or_default());
            records.push(record);
        }
        Ok(CategoryTree::new(records, own))
    }

    /// The tree without product counts (for breadcrumbs and scopes), in one statement.
    pub async fn shape(&self) -> Result<CategoryTree, sqlx::Error> {
        let rows: Vec<(Json<CategoryRecord>,)> =
            sqlx::query_as("SELECT record FROM categories WHERE NOT deleted")
                .fetch_all(&self.pool)
                .await?;
        Ok(CategoryTree::new(
            rows.into_iter().map(|(Json(record),)| record),
            HashMap::new(),
        ))
    }
}
