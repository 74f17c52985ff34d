//! Whole pages for anonymous visitors, kept in this process.
//!
//! A page is kept for at most the TTL (`ESHOP_PAGE_CACHE_MS`), and dropped as soon as the
//! products read model announces a change it applied: the next visitor renders it again, and
//! reads the change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use eshop_infra::read_models::announcements::{self, Heard};

use crate::state::AppState;

/// Pages kept at most; anonymous page paths are few, but a query string is the visitor's.
const MOST_PAGES: usize = 2_000;

pub struct PageCache {
    ttl: Duration,
    generation: AtomicU64,
    pages: Mutex<HashMap<String, Kept>>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

struct Kept {
    at: Instant,
    generation: u64,
    body: Bytes,
}

impl PageCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            generation: AtomicU64::new(0),
            pages: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The page kept for `key`, if still fresh.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        if self.ttl.is_zero() {
            return None;
        }
        let generation = self.generation.load(Ordering::Acquire);
        let pages = self
            .pages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let found = pages
            .get(key)
            .filter(|kept| kept.generation == generation && kept.at.elapsed() < self.ttl)
            .map(|kept| kept.body.clone());
        drop(pages);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps `body` for `key`, stamped with the generation read before it was rendered (a page
    /// rendered across an invalidation is never kept as current).
    pub fn put(&self, key: String, generation: u64, body: Bytes) {
        if self.ttl.is_zero() {
            return;
        }
        let mut pages = self
            .pages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if pages.len() >= MOST_PAGES {
            pages.retain(|_, kept| kept.generation == generation && kept.at.elapsed() < self.ttl);
            if pages.len() >= MOST_PAGES {
                pages.clear();
            }
        }
        pages.insert(
            key,
            Kept {
                at: Instant::now(),
                generation,
                body,
            },
        );
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// The read models whose rows the cached pages show.
const SHOWN_ON_PAGES: [&str; 2] = ["products", "reviews"];

/// Whether what was heard may change the pages.
fn changes_pages(heard: &Heard<'_>) -> bool {
    SHOWN_ON_PAGES
        .iter()
        .any(|read_model| heard.may_change(read_model))
}

/// Drops the kept pages whenever the products' (or reviews') read model applied a change: the
/// projection announces it once committed and dropped from the API's cache, so a page rendered
/// after this reads the change. An announcement that may have passed unheard (a lost
/// connection) drops them too. Ends once the cache is gone (the server stopped).
pub fn invalidate_on_catalog_changes(pages: Arc<PageCache>, app: &AppState) {
    if pages.ttl.is_zero() {
        return;
    }
    announcements::follow(
        app.pool.clone(),
        Arc::downgrade(&pages),
        "pages",
        |pages, heard| {
            if changes_pages(&heard) {
                pages.invalidate();
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_served_until_invalidated() {
        let cache = PageCache::new(Duration::from_secs(60));
        let generation = cache.generation();
        cache.put("/".into(), generation, Bytes::from_static(b"home"));
        assert_eq!(cache.get("/"), Some(Bytes::from_static(b"home")));
        cache.invalidate();
        assert_eq!(cache.get("/"), None);
    }

    #[test]
    fn a_page_rendered_across_an_invalidation_is_not_kept() {
        let cache = PageCache::new(Duration::from_secs(60));
        let before = cache.generation();
        cache.invalidate();
        cache.put("/".into(), before, Bytes::from_static(b"stale"));
        assert_eq!(cache.get("/"), None);
    }

    #[test]
    fn only_the_read_models_the_pages_show_drop_them() {
        let announced = |text| changes_pages(&Heard::Announced(text));
        assert!(announced("products 0b6c6f0e-7a53-4f1c-9d55-2d6f1a0b8c11:3"));
        assert!(announced("reviews 0b6c6f0e-7a53-4f1c-9d55-2d6f1a0b8c11:1"));
        assert!(!announced("orders 0b6c6f0e-7a53-4f1c-9d55-2d6f1a0b8c11:2"));
        assert!(!announced("productsx"));
        assert!(changes_pages(&Heard::Lost));
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = PageCache::new(Duration::ZERO);
        cache.put("/".into(), 0, Bytes::from_static(b"home"));
        assert_eq!(cache.get("/"), None);
    }
}
