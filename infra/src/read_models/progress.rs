//! Read-your-writes without polling. A projection builder announces, once it committed them and
//! dropped what they change from the cache, the rows and versions it applied:
//! `NOTIFY eshop_read_models, '<read model> <id>:<version> ...'`. Every process that serves
//! reads keeps one listener for all its waiting requests; a request registers what it waits for
//! and is woken when a version at least as new lands for its row. The builder runs on one
//! replica at a time, so the notification (not the builder's memory) is what reaches a reader on
//! another replica.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{oneshot, OnceCell};
use uuid::Uuid;

pub const CHANNEL: &str = "eshop_read_models";
/// Postgres refuses notification payloads of 8000 bytes and more.
const PAYLOAD_LIMIT: usize = 7900;

/// Announces the rows `changed` reached (after the writing transaction committed).
pub async fn announce(
    connection: &mut PgConnection,
    read_model: &str,
    changed: &[(Uuid, u64)],
) -> Result<(), sqlx::Error> {
    let mut payloads = Vec::new();
    let mut payload = String::from(read_model);
    for (id, version) in changed {
        let entry = format!(" {id}:{version}");
        if payload.len() + entry.len() > PAYLOAD_LIMIT {
            payloads.push(std::mem::replace(&mut payload, String::from(read_model)));
        }
        payload.push_str(&entry);
    }
    if payload.len() > read_model.len() {
        payloads.push(payload);
    }
    if payloads.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_notify($1, payload) FROM UNNEST($2::text[]) AS payload")
        .bind(CHANNEL)
        .bind(&payloads)
        .execute(connection)
        .await?;
    Ok(())
}

type Key = (String, Uuid);

struct Waiter {
    version: u64,
    wake: oneshot::Sender<()>,
}

#[derive(Default)]
struct Waiting {
    by_row: HashMap<Key, Vec<Waiter>>,
}

impl Waiting {
    fn announced(&mut self, read_model: &str, id: Uuid, version: u64) {
        let key = (read_model.to_string(), id);
        let Some(waiters) = self.by_row.get_mut(&key) else {
            return;
        };
        let (ready, still): (Vec<_>, Vec<_>) = std::mem::take(waiters)
            .into_iter()
            .partition(|waiter| waiter.version <= version);
        for waiter in ready {
            let _ = waiter.wake.send(());
        }
        if still.is_empty() {
            self.by_row.remove(&key);
        } else {
            *waiters = still;
        }
    }

    /// Wakes everyone (the listener lost its connection: a notification may be lost too).
    fn wake_all(&mut self) {
        for (_, waiters) in self.by_row.drain() {
            for waiter in waiters {
                let _ = waiter.wake.send(());
            }
        }
    }

    fn forget_gone(&mut self) {
        self.by_row.retain(|_, waiters| {
            waiters.retain(|waiter| !waiter.wake.is_closed());
            !waiters.is_empty()
        });
    }
}

/// The waiting requests of one process and the one listener that wakes them.
#[derive(Clone)]
pub struct VersionWaits {
    pool: PgPool,
    waiting: Arc<Mutex<Waiting>>,
    listener: Arc<OnceCell<()>>,
}

/// Resolves when the row may have reached the version (read it to know).
pub struct Announced(oneshot::Receiver<()>);

impl Announced {
    pub async fn wait(self) {
        // A dropped sender (the listener stopped) also means: look again.
        let _ = self.0.await;
    }
}

impl VersionWaits {
    /// The listener starts with the first wait (a process that never waits holds no connection).
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            waiting: Arc::default(),
            listener: Arc::new(OnceCell::new()),
        }
    }

    /// Registers interest in `id` of `read_model` reaching `version`.
    pub async fn register(&self, read_model: &str, id: Uuid, version: u64) -> Announced {
        // The first waiter starts the listener and waits until it listens, so nothing announced
        // after its own read can pass unheard.
        self.listener
            .get_or_init(|| async {
                let listener = connect(&self.pool).await;
                tokio::spawn(listen(
                    self.pool.clone(),
                    listener,
                    Arc::downgrade(&self.waiting),
                ));
            })
            .await;
        let (wake, woken) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.forget_gone();
            waiting
                .by_row
                .entry((read_model.to_string(), id))
                .or_default()
                .push(Waiter { version, wake });
        }
        Announced(woken)
    }
}

async fn connect(pool: &PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.ok()?;
    listener.listen(CHANNEL).await.ok()?;
    Some(listener)
}

impl VersionWaits {
    /// What `read` returns once it reaches `version` (by `version_of`), or `None` after
    /// `timeout`. It does not poll: it reads once, then again only when the builder announces a
    /// version at least as new for this row, and once more at the deadline.
    pub async fn read_when<T, E, F, Fut>(
        &self,
        read_model: &str,
        id: Uuid,
        version: u64,
        timeout: std::time::Duration,
        mut read: F,
        version_of: impl Fn(&T) -> u64,
    ) -> Result<Option<T>, E>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, E>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Listen before looking, so a version that lands in between still wakes us.
            let announced = self.register(read_model, id, version).await;
            let found = read().await?;
            if found
                .as_ref()
                .is_some_and(|found| version_of(found) >= version)
            {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, announced.wait())
                .await
                .is_err()
            {
                let found = read().await?;
                return Ok(found.filter(|found| version_of(found) >= version));
            }
        }
    }
}

impl VersionWaits {
    /// Whether every row of `wanted` (`(id, version)`) in `table`, the first table of
    /// `read_model`, holds at least its version, waiting up to `timeout` for those that do not
    /// yet (a list read that reflects the caller's own writes). One query when they all do;
    /// otherwise woken by the builder's announcements like `read_when`, never polling.
    pub async fn all_reached(
        &self,
        read_model: &str,
        table: &str,
        wanted: &[(Uuid, u64)],
        timeout: std::time::Duration,
    ) -> Result<bool, sqlx::Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut behind = self.still_behind(table, wanted).await?;
        // One row at a time: the list needs them all, so waiting for each in turn ends when the
        // last arrives, as waiting for all at once would.
        while let Some(&(id, version)) = behind.first() {
            // Listen before looking again, so a version that lands in between still wakes us.
            let announced = self.register(read_model, id, version).await;
            behind = self.still_behind(table, &behind).await?;
            if behind.first() != Some(&(id, version)) {
                continue;
            }
            if tokio::time::timeout_at(deadline, announced.wait())
                .await
                .is_err()
            {
                return Ok(self.still_behind(table, &behind).await?.is_empty());
            }
        }
        Ok(true)
    }

    /// The rows of `wanted` that `table` does not hold at their version yet (absent included).
    async fn still_behind(
        &self,
        table: &str,
        wanted: &[(Uuid, u64)],
    ) -> Result<Vec<(Uuid, u64)>, sqlx::Error> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = wanted.iter().map(|(id, _)| *id).collect();
        let held: HashMap<Uuid, i64> = sqlx::query_as::<_, (Uuid, i64)>(&format!(
            "SELECT id, version FROM {table} WHERE id = ANY($1)"
        ))
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .collect();
        Ok(wanted
            .iter()
            .filter(|(id, version)| {
                held.get(id)
                    .is_none_or(|held| u64::try_from(*held).unwrap_or(0) < *version)
            })
            .copied()
            .collect())
    }
}

/// Listens until every handle on `waiting` is gone (checked at each notification and reconnect).
async fn listen(
    pool: PgPool,
    mut first: Option<PgListener>,
    waiting: std::sync::Weak<Mutex<Waiting>>,
) {
    let mut pause = std::time::Duration::from_millis(100);
    loop {
        let Some(mut listener) = first.take() else {
            match connect(&pool).await {
                Some(listener) => first = Some(listener),
                None => {
                    tracing::warn!("cannot listen for read-model progress; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(5));
                    if waiting.strong_count() == 0 {
                        return;
                    }
                }
            }
            continue;
        };
        pause = std::time::Duration::from_millis(100);
        // Anything announced before the listener was in place is seen by the waiters' own read.
        loop {
            let notification = listener.try_recv().await;
            let Some(waiting) = waiting.upgrade() else {
                return;
            };
            let Ok(mut waiting) = waiting.lock() else {
                return;
            };
            match notification {
                Ok(Some(notification)) => {
                    let mut parts = notification.payload().split(' ');
                    let read_model = parts.next().unwrap_or_default();
                    for entry in parts {
                        let Some((id, version)) = entry.split_once(':') else {
                            continue;
                        };
                        if let (Ok(id), Ok(version)) = (id.parse(), version.parse()) {
                            waiting.announced(read_model, id, version);
                        }
                    }
                }
                // The connection dropped (and will be made again): what was announced meanwhile
                // is lost, so every waiter looks once more.
                Ok(None) | Err(_) => {
                    waiting.wake_all();
                    if notification.is_err() {
                        break;
                    }
                }
            }
        }
    }
}
