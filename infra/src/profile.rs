//! Per-request profiling: the SQL statements a request ran (each with its duration) and what the
//! cache did, gathered in a task-local the API opens around each request (`Profile::scope`) and
//! reported in `Server-Timing` (and, with `ESHOP_PROFILE_SQL`, in the request's log line).
//!
//! Statements are recorded where they run (`timed`): the movies queries and the cache's loads.
//! Outside a scope recording costs nothing and records nothing.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

tokio::task_local! {
    static CURRENT: Arc<Profile>;
}

/// What the cache answered for the request's main read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    /// Redis did not answer; Postgres did.
    Bypass,
}

impl CacheOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

#[derive(Debug, Default)]
struct Recorded {
    statements: Vec<(&'static str, Duration)>,
    cache: Option<CacheOutcome>,
    cache_time: Duration,
    /// Fragments found cached and loaded (a list page's cards), summed over the request.
    fragments: Option<(usize, usize)>,
}

#[derive(Debug, Default)]
pub struct Profile {
    recorded: Mutex<Recorded>,
}

impl Profile {
    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `future` with this profile as the current one.
    pub async fn scope<F: Future>(self: Arc<Self>, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }

    /// Statements recorded: their count and total time.
    pub fn database(&self) -> (usize, Duration) {
        let recorded = self.lock();
        (
            recorded.statements.len(),
            recorded.statements.iter().map(|(_, d)| *d).sum(),
        )
    }

    pub fn statements(&self) -> Vec<(&'static str, Duration)> {
        self.lock().statements.clone()
    }

    /// The first cache outcome recorded (the request's main read), and the time spent in Redis.
    pub fn cache(&self) -> (Option<CacheOutcome>, Duration) {
        let recorded = self.lock();
        (recorded.cache, recorded.cache_time)
    }

    /// Fragments the request found cached and loaded, if it assembled any.
    pub fn fragments(&self) -> Option<(usize, usize)> {
        self.lock().fragments
    }
}

fn with_current(record: impl FnOnce(&mut Recorded)) {
    let _ = CURRENT.try_with(|profile| record(&mut profile.lock()));
}

/// Runs one SQL statement, recording its duration under `label` in the current profile.
pub async fn timed<T>(label: &'static str, statement: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let outcome = statement.await;
    let elapsed = started.elapsed();
    with_current(|recorded| recorded.statements.push((label, elapsed)));
    outcome
}

/// Records what the cache did (the first outcome of a request is the one reported).
pub fn cache(outcome: CacheOutcome, spent: Duration) {
    with_current(|recorded| {
        recorded.cache.get_or_insert(outcome);
        recorded.cache_time += spent;
    });
}

/// Records fragments found cached and loaded (a list page's cards), and the time spent in Redis
/// finding them.
pub fn fragments(cached: usize, loaded: usize, spent: Duration) {
    with_current(|recorded| {
        let (found, read) = recorded.fragments.get_or_insert((0, 0));
        *found += cached;
        *read += loaded;
        recorded.cache_time += spent;
    });
}
