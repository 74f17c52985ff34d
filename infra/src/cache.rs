//! The Redis cache in front of the read models.
//!
//! Entries are not deleted to invalidate them. Each entry is stamped with the generation numbers
//! it was loaded under: one per product, one for all list pages, and a global epoch. A read
//! fetches the current numbers and the entry in one `MGET` and uses the entry only when its
//! stamp matches. A projection bumps the generations of what an event changed *after* its
//! commit, so the next read misses and loads the new rows; a reader that loaded old rows before
//! the bump stamps them with the old numbers, so they never match again. TTL only reclaims
//! memory.
//!
//! Fragments (a movie's card, which list pages are assembled from) are named by the version
//! they hold, so they never go stale and carry only the epoch (`get_or_load_fragments`).
//!
//! Redis down: reads go to Postgres (counted), never an error. An invalidation that could not
//! reach Redis bumps the global epoch as soon as Redis answers again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use crate::profile::{self, CacheOutcome};
use crate::redis_link::RedisLink;
use uuid::Uuid;

pub use eshop_projections::cached::Entry;

#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Reads served from Postgres because Redis did not answer.
    pub fallbacks: AtomicU64,
    /// Loads from Postgres after a miss or a fallback (concurrent misses share one).
    pub loads: AtomicU64,
}

type Flight = Arc<OnceCell<Option<Bytes>>>;

/// What one `MGET` returns: the epoch, the entry's generation, and the stamped entry.
type Lookup = (Option<String>, Option<String>, Option<Vec<u8>>);

pub struct Cache {
    redis: RedisLink,
    prefix: String,
    ttl_seconds: u64,
    flights: Mutex<HashMap<Entry, Flight>>,
    epoch_bump_owed: AtomicBool,
    pub stats: CacheStats,
}

impl Cache {
    /// `prefix` namespaces every key (tests each use their own).
    pub fn new(url: &str, prefix: &str, ttl: Duration) -> Result<Self, redis::RedisError> {
        Ok(Self {
            redis: RedisLink::new(url)?,
            prefix: prefix.to_string(),
            ttl_seconds: ttl.as_secs().max(1),
            flights: Mutex::default(),
            epoch_bump_owed: AtomicBool::new(false),
            stats: CacheStats::default(),
        })
    }

    fn epoch_key(&self) -> String {
        format!("{}epoch", self.prefix)
    }

    fn generation_key(&self, entry: &Entry) -> String {
        match entry {
            Entry::Product(id) => format!("{}gen:product:{id}", self.prefix),
            Entry::ProductList(_) => format!("{}gen:lists", self.prefix),
            Entry::Movie(id) => format!("{}gen:movie:{id}", self.prefix),
            // A card names its version: it has no generation (`get_or_load_fragments`).
            Entry::MovieCard(card) => format!("{}gen:movie:{}", self.prefix, card.id),
            Entry::MovieList(_) => format!("{}gen:movie-lists", self.prefix),
            Entry::Genres => format!("{}gen:genres", self.prefix),
            Entry::CalendarEvent(id) => format!("{}gen:calendar:{id}", self.prefix),
            Entry::CalendarList(_) => format!("{}gen:calendar_lists", self.prefix),
            Entry::Categories => format!("{}gen:categories", self.prefix),
        }
    }

    fn base_key(&self, entry: &Entry) -> String {
        match entry {
            Entry::Product(id) => format!("{}product:{id}", self.prefix),
            Entry::ProductList(query) => {
                let digest = eshop_commands::digest::sha256_hex(&[query.as_bytes()]);
                format!("{}list:{digest}", self.prefix)
            }
            Entry::Movie(id) => format!("{}movie:{id}", self.prefix),
            Entry::MovieCard(card) => {
                format!("{}movie-card:{}:{}", self.prefix, card.id, card.version)
            }
            Entry::MovieList(query) => {
                let digest = eshop_commands::digest::sha256_hex(&[query.as_bytes()]);
                format!("{}movie-list:{digest}", self.prefix)
            }
            Entry::Genres => format!("{}genres", self.prefix),
            Entry::CalendarEvent(id) => format!("{}calendar:{id}", self.prefix),
            Entry::CalendarList(query) => {
                let digest = eshop_commands::digest::sha256_hex(&[query.as_bytes()]);
                format!("{}calendar_list:{digest}", self.prefix)
            }
            Entry::Categories => format!("{}categories", self.prefix),
        }
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        self.redis.connection().await
    }

    /// Settles an invalidation that could not reach Redis: every entry of every kind becomes
    /// unreachable.
    async fn pay_owed_epoch_bump(&self, connection: &mut ConnectionManager) -> bool {
        if !self.epoch_bump_owed.load(Ordering::Acquire) {
            return true;
        }
        let bumped: redis::RedisResult<i64> = redis::cmd("INCR")
            .arg(self.epoch_key())
            .query_async(connection)
            .await;
        if bumped.is_ok() {
            self.epoch_bump_owed.store(false, Ordering::Release);
        }
        bumped.is_ok()
    }

    /// The cached bytes of `entry`, or what `load` returns (stored for next time; `None` is not
    /// stored). Concurrent misses on one entry in this process share one `load`.
    pub async fn get_or_load<F, Fut, E>(&self, entry: Entry, load: F) -> Result<Option<Bytes>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Bytes>, E>>,
    {
        let started = std::time::Instant::now();
        let mut connection = self.connection().await;
        let key = self.base_key(&entry);
        let mut stamp = None;
        if let Some(conn) = connection.as_mut() {
            if self.pay_owed_epoch_bump(conn).await {
                let looked_up: redis::RedisResult<Lookup> = redis::cmd("MGET")
                    .arg(self.epoch_key())
                    .arg(self.generation_key(&entry))
                    .arg(&key)
                    .query_async(conn)
                    .await;
                match looked_up {
                    Ok((epoch, generation, value)) => {
                        let current = format!(
                            "{}:{}\n",
                            epoch.as_deref().unwrap_or("0"),
                            generation.as_deref().unwrap_or("0")
                        );
                        if let Some(payload) = value
                            .as_deref()
                            .and_then(|value| value.strip_prefix(current.as_bytes()))
                        {
                            self.stats.hits.fetch_add(1, Ordering::Relaxed);
                            profile::cache(CacheOutcome::Hit, started.elapsed());
                            return Ok(Some(Bytes::copy_from_slice(payload)));
                        }
                        self.stats.misses.fetch_add(1, Ordering::Relaxed);
                        profile::cache(CacheOutcome::Miss, started.elapsed());
                        stamp = Some(current);
                    }
                    Err(error) => {
                        tracing::debug!(error = %error, "cache lookup failed");
                        connection = None;
                    }
                }
            } else {
                connection = None;
            }
        }
        if connection.is_none() {
            self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
            profile::cache(CacheOutcome::Bypass, started.elapsed());
        }
        let value = self.load_once(entry, load).await?;
        if let (Some(mut conn), Some(stamp), Some(bytes)) = (connection, stamp, &value) {
            let mut stamped = Vec::with_capacity(stamp.len() + bytes.len());
            stamped.extend_from_slice(stamp.as_bytes());
            stamped.extend_from_slice(bytes);
            let stored: redis::RedisResult<()> = redis::cmd("SET")
                .arg(&key)
                .arg(stamped)
                .arg("EX")
                .arg(self.ttl_seconds)
                .query_async(&mut conn)
                .await;
            if let Err(error) = stored {
                tracing::debug!(error = %error, "cache store failed");
            }
        }
        Ok(value)
    }

    /// The bytes of each of `entries`: fragments that name the version they hold (a movie's
    /// card at its version), so none is ever stale and none has a generation. One `MGET` reads
    /// them all with the epoch (a rebuild's swap drops them too); `load` gets the positions of
    /// those not cached, all at once, and returns for each what to answer with and the entry to
    /// keep it under (it may name a newer version than was asked for), or `None` (gone). What
    /// it returns is stored in one pipeline.
    pub async fn get_or_load_fragments<F, Fut, E>(
        &self,
        entries: &[Entry],
        load: F,
    ) -> Result<Vec<Option<Bytes>>, E>
    where
        F: FnOnce(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<Option<(Entry, Bytes)>>, E>>,
    {
        let started = std::time::Instant::now();
        let mut found: Vec<Option<Bytes>> = vec![None; entries.len()];
        if entries.is_empty() {
            return Ok(found);
        }
        let mut connection = self.connection().await;
        let mut stamp = None;
        if let Some(conn) = connection.as_mut() {
            if self.pay_owed_epoch_bump(conn).await {
                let mut lookup = redis::cmd("MGET");
                lookup.arg(self.epoch_key());
                for entry in entries {
                    lookup.arg(self.base_key(entry));
                }
                let looked_up: redis::RedisResult<Vec<Option<Vec<u8>>>> =
                    lookup.query_async(conn).await;
                match looked_up {
                    Ok(values) => {
                        let mut values = values.into_iter();
                        let epoch = values.next().flatten();
                        let current = format!(
                            "{}\n",
                            epoch.as_deref().map_or("0".into(), String::from_utf8_lossy)
                        );
                        for (slot, value) in found.iter_mut().zip(values) {
                            *slot = value
                                .as_deref()
                                .and_then(|value| value.strip_prefix(current.as_bytes()))
                                .map(Bytes::copy_from_slice);
                        }
                        stamp = Some(current);
                    }
                    Err(error) => {
                        tracing::debug!(error = %error, "cache lookup failed");
                        connection = None;
                    }
                }
            } else {
                connection = None;
            }
        }
        if connection.is_none() {
            self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        let missing: Vec<usize> = (0..entries.len())
            .filter(|position| found[*position].is_none())
            .collect();
        profile::fragments(
            entries.len() - missing.len(),
            missing.len(),
            started.elapsed(),
        );
        if missing.is_empty() {
            return Ok(found);
        }
        self.stats.loads.fetch_add(1, Ordering::Relaxed);
        let loaded = load(missing.clone()).await?;
        let mut store = redis::pipe();
        for (position, loaded) in missing.into_iter().zip(loaded) {
            let Some((entry, bytes)) = loaded else {
                continue;
            };
            if let Some(stamp) = &stamp {
                let mut stamped = Vec::with_capacity(stamp.len() + bytes.len());
                stamped.extend_from_slice(stamp.as_bytes());
                stamped.extend_from_slice(&bytes);
                store
                    .cmd("SET")
                    .arg(self.base_key(&entry))
                    .arg(stamped)
                    .arg("EX")
                    .arg(self.ttl_seconds)
                    .ignore();
            }
            found[position] = Some(bytes);
        }
        if let (Some(mut conn), Some(_)) = (connection, stamp) {
            let stored: redis::RedisResult<()> = store.query_async(&mut conn).await;
            if let Err(error) = stored {
                tracing::debug!(error = %error, "cache store failed");
            }
        }
        Ok(found)
    }

    async fn load_once<F, Fut, E>(&self, entry: Entry, load: F) -> Result<Option<Bytes>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Bytes>, E>>,
    {
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            flights.entry(entry.clone()).or_default().clone()
        };
        let outcome = flight
            .get_or_try_init(|| async {
                self.stats.loads.fetch_add(1, Ordering::Relaxed);
                load().await
            })
            .await
            .cloned();
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if flights
            .get(&entry)
            .is_some_and(|current| Arc::ptr_eq(current, &flight))
        {
            flights.remove(&entry);
        }
        outcome
    }

    /// After a read model was swapped for a rebuilt one: every entry of every kind is stale.
    /// False when Redis could not be reached (this process drops it once Redis answers).
    pub async fn invalidate_everything(&self) -> bool {
        let Some(mut connection) = self.connection().await else {
            self.epoch_bump_owed.store(true, Ordering::Release);
            return false;
        };
        let bumped: redis::RedisResult<i64> = redis::cmd("INCR")
            .arg(self.epoch_key())
            .query_async(&mut connection)
            .await;
        if let Err(error) = bumped {
            tracing::warn!(error = %error, "cache invalidation failed; the whole cache will be dropped when Redis answers");
            self.epoch_bump_owed.store(true, Ordering::Release);
            return false;
        }
        true
    }

    /// After a projection committed: the changed products' entries and every list page become
    /// stale.
    pub async fn invalidate_products(&self, ids: &[Uuid]) {
        let entries: Vec<Entry> = ids.iter().copied().map(Entry::Product).collect();
        self.invalidate(&entries).await;
    }

    /// After a projection committed: `entries` become stale, and so does every list page of
    /// their kind.
    pub async fn invalidate(&self, entries: &[Entry]) {
        if entries.is_empty() {
            return;
        }
        let Some(mut connection) = self.connection().await else {
            self.epoch_bump_owed.store(true, Ordering::Release);
            return;
        };
        let mut generations: Vec<String> = Vec::new();
        for entry in entries {
            let list = match entry {
                Entry::Product(_) | Entry::ProductList(_) => Entry::ProductList(String::new()),
                Entry::CalendarEvent(_) | Entry::CalendarList(_) => {
                    Entry::CalendarList(String::new())
                }
                Entry::Movie(_) | Entry::MovieCard(_) | Entry::MovieList(_) => {
                    Entry::MovieList(String::new())
                }
                Entry::Genres => Entry::Genres,
                // Product views show breadcrumbs: every entry goes.
                Entry::Categories => {
                    let key = self.epoch_key();
                    if !generations.contains(&key) {
                        generations.push(key);
                    }
                    Entry::Categories
                }
            };
            for key in [self.generation_key(entry), self.generation_key(&list)] {
                if !generations.contains(&key) {
                    generations.push(key);
                }
            }
        }
        let mut pipeline = redis::pipe();
        for key in generations {
            pipeline.cmd("INCR").arg(key).ignore();
        }
        let bumped: redis::RedisResult<()> = pipeline.query_async(&mut connection).await;
        if let Err(error) = bumped {
            tracing::warn!(error = %error, "cache invalidation failed; the whole cache will be dropped when Redis answers");
            self.epoch_bump_owed.store(true, Ordering::Release);
        }
    }

    /// After the movies projection committed: the changed movies' entries (details and cards)
    /// and every movie list page become stale; the genre counts too when `genres` (a movie was
    /// added or its details changed).
    pub async fn invalidate_movies(&self, ids: &[Uuid], genres: bool) {
        if ids.is_empty() {
            return;
        }
        let Some(mut connection) = self.connection().await else {
            self.epoch_bump_owed.store(true, Ordering::Release);
            return;
        };
        let mut pipeline = redis::pipe();
        for id in ids {
            pipeline
                .cmd("INCR")
                .arg(self.generation_key(&Entry::Movie(*id)))
                .ignore();
        }
        pipeline
            .cmd("INCR")
            .arg(self.generation_key(&Entry::MovieList(String::new())))
            .ignore();
        if genres {
            pipeline
                .cmd("INCR")
                .arg(self.generation_key(&Entry::Genres))
                .ignore();
        }
        let bumped: redis::RedisResult<()> = pipeline.query_async(&mut connection).await;
        if let Err(error) = bumped {
            tracing::warn!(error = %error, "cache invalidation failed; the whole cache will be dropped when Redis answers");
            self.epoch_bump_owed.store(true, Ordering::Release);
        }
    }
}
