//! The category tree's table (`categories`: one JSON document per category, with the columns
//! the tree reads) and its queries. Product counts come from `products` in the same statement.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

use eshop_projections::cached::Entry;
use eshop_projections::category::{CategoryRecord, CategoryTree};

use super::announcements::{self, Heard};
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
    kept: Arc<KeptShape>,
}

/// The tree's shape kept in this process until the categories read model announces a change.
#[derive(Default)]
struct KeptShape {
    /// The follower of the announcements was started (with the first read).
    following: AtomicBool,
    /// Announcements are heard: a shape read now is dropped with the next change.
    listening: AtomicBool,
    /// Moves on with every change heard (or possibly missed).
    generation: AtomicU64,
    shape: Mutex<Option<(u64, Arc<CategoryTree>)>>,
}

impl KeptShape {
    fn heard(&self, heard: Heard<'_>) {
        if !heard.may_change(<CategoryRecord as eshop_projections::ReadModel>::NAME) {
            return;
        }
        if matches!(heard, Heard::Lost) {
            self.listening.store(false, Ordering::Release);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        if matches!(heard, Heard::Listening) {
            self.listening.store(true, Ordering::Release);
        }
    }

    fn shape(&self) -> std::sync::MutexGuard<'_, Option<(u64, Arc<CategoryTree>)>> {
        self.shape
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl PgCategories {
    pub fn new(pool: PgPool) -> Self {
        Self {
            records: Records::new(pool.clone()),
            pool,
            kept: Arc::default(),
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

    /// The tree without product counts as `shape`, kept in this process until the categories
    /// read model announces a change: for what the tree only shows (breadcrumbs), not for
    /// what it decides (a category scope), since a change is heard a moment after it commits.
    pub async fn kept_shape(&self) -> Result<Arc<CategoryTree>, sqlx::Error> {
        if !self.kept.following.swap(true, Ordering::AcqRel) {
            announcements::follow(
                self.pool.clone(),
                Arc::downgrade(&self.kept),
                "categories",
                KeptShape::heard,
            );
        }
        // The generation before the listening flag: a shape read while a change lands is kept
        // under the generation it missed, so it is never served.
        let generation = self.kept.generation.load(Ordering::Acquire);
        let listening = self.kept.listening.load(Ordering::Acquire);
        if listening {
            if let Some((kept, shape)) = &*self.kept.shape() {
                if *kept == generation {
                    return Ok(Arc::clone(shape));
                }
            }
        }
        let shape = Arc::new(self.shape().await?);
        if listening {
            *self.kept.shape() = Some((generation, Arc::clone(&shape)));
        }
        Ok(shape)
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
