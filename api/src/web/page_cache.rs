//! Whole pages for anonymous visitors, kept in this process.
//!
//! A page is kept for at most the TTL (`ESHOP_PAGE_CACHE_MS`), and dropped as soon as a
//! product event reaches this process: the next visitor renders it again. As the event may
//! arrive before the read model applied it, a page can show the read model up to one TTL late;
//! never longer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;

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

/// Drops the kept pages whenever a product changes (a core NATS subscription of this process:
/// a reconnect invalidates too, since events may have passed unseen).
pub fn invalidate_on_product_events(pages: Arc<PageCache>, app: &AppState) {
    if pages.ttl.is_zero() {
        return;
    }
    let client = app.jetstream.client();
    let subject = app.subjects.of_type("Product");
    tokio::spawn(async move {
        loop {
            match client.subscribe(subject.clone()).await {
                Ok(mut events) => {
                    pages.invalidate();
                    while events.next().await.is_some() {
                        pages.invalidate();
                    }
                }
                Err(error) => tracing::warn!(%error, "pages cannot follow product events"),
            }
            pages.invalidate();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
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
    fn a_zero_ttl_keeps_nothing() {
        let cache = PageCache::new(Duration::ZERO);
        cache.put("/".into(), 0, Bytes::from_static(b"home"));
        assert_eq!(cache.get("/"), None);
    }
}
