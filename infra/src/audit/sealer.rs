//! The sealer: one active per cluster (a Postgres advisory lock), it follows the events in the
//! relay's commit-safe order and appends each event's link to `event_links`. Every
//! `seal_every_events` links, or `seal_every` after the last seal when events came since, it
//! stores a seal in `event_seals` (in the same transaction as the links it covers) and then
//! publishes it on NATS (`eshop.seals`, prefixed like the events), marking it published once
//! JetStream acknowledged it. A crash repeats publishes (dropped by message id), never links.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::time::Instant;

use crate::audit::chain::{self, Link, StoredEvent, GENESIS, STORED_COLUMNS};
use crate::commit_order::{CommitPoint, COMMIT_SAFE_AFTER};
use crate::leader::run_as_leader;
use crate::nats::{ensure_seal_stream, EventSubjects};
use crate::shutdown::Shutdown;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const LEADER_LOCK: &str = "eshop-sealer";

#[derive(Debug, Clone, Copy)]
pub struct SealerSettings {
    /// Events read and linked per round.
    pub batch_size: i64,
    /// A seal at least every this many events...
    pub seal_every_events: i64,
    /// ...and this long after the previous seal when events came since.
    pub seal_every: Duration,
    /// How often to look for new events when there were none.
    pub poll: Duration,
}

impl Default for SealerSettings {
    fn default() -> Self {
        Self {
            batch_size: 4000,
            seal_every_events: 1000,
            seal_every: Duration::from_secs(10),
            poll: Duration::from_millis(250),
        }
    }
}

/// A seal as published on NATS and answered by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub up_to_position: i64,
    pub chain_index: i64,
    /// Hex of the link of the event at `chain_index`.
    pub link: String,
    pub sealed_at: DateTime<Utc>,
}

/// The last link of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub chain_index: i64,
    pub point: CommitPoint,
    pub link: Link,
}

impl ChainHead {
    pub const EMPTY: Self = Self {
        chain_index: 0,
        point: CommitPoint::START,
        link: GENESIS,
    };
}

/// The chain's last link (`EMPTY` before the first event was linked).
pub async fn chain_head(
    connection: &mut PgConnection,
) -> Result<ChainHead, Box<dyn std::error::Error + Send + Sync>> {
    let row: Option<(i64, i64, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT chain_index, xid::text::bigint, position, link FROM event_links
          ORDER BY chain_index DESC LIMIT 1",
    )
    .fetch_optional(connection)
    .await?;
    let Some((chain_index, xid, position, link)) = row else {
        return Ok(ChainHead::EMPTY);
    };
    Ok(ChainHead {
        chain_index,
        point: CommitPoint {
            xid: u64::try_from(xid)?,
            position,
        },
        link: chain::from_bytes(&link).ok_or("a stored link is not 32 bytes")?,
    })
}

#[derive(Clone)]
pub struct Sealer {
    pool: PgPool,
    jetstream: jetstream::Context,
    subjects: EventSubjects,
    settings: SealerSettings,
}

/// Where the last seal is: its chain index and when this process made or found it.
struct LastSeal {
    chain_index: i64,
    at: Instant,
}

impl Sealer {
    pub fn new(
        pool: PgPool,
        jetstream: jetstream::Context,
        subjects: EventSubjects,
        settings: SealerSettings,
    ) -> Self {
        Self {
            pool,
            jetstream,
            subjects,
            settings,
        }
    }

    /// Seals until shutdown, whenever this replica holds the sealer lock.
    pub async fn run(self, shutdown: Shutdown) {
        let sealer = self.clone();
        run_as_leader(
            self.pool.clone(),
            LEADER_LOCK,
            shutdown,
            move |connection, shutdown| {
                let sealer = sealer.clone();
                async move { sealer.lead(connection, shutdown).await }
            },
        )
        .await;
    }

    async fn lead(
        &self,
        mut connection: PgConnection,
        mut shutdown: Shutdown,
    ) -> Result<(), BoxError> {
        ensure_seal_stream(&self.jetstream, &self.subjects).await?;
        let mut head = chain_head(&mut connection).await?;
        let sealed: Option<i64> = sqlx::query_scalar("SELECT max(chain_index) FROM event_seals")
            .fetch_one(&mut connection)
            .await?;
        let mut last_seal = LastSeal {
            chain_index: sealed.unwrap_or(0),
            at: Instant::now(),
        };
        loop {
            if shutdown.is_triggered() {
                return Ok(());
            }
            let linked = self
                .link_next(&mut connection, &mut head, &mut last_seal)
                .await?;
            self.publish_pending(&mut connection).await?;
            if linked >= self.settings.batch_size {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.poll) => {}
                () = shutdown.wait() => return Ok(()),
            }
        }
    }

    /// Links the next batch of events (and seals where due) in one transaction; returns how
    /// many events it linked.
    async fn link_next(
        &self,
        connection: &mut PgConnection,
        head: &mut ChainHead,
        last_seal: &mut LastSeal,
    ) -> Result<i64, BoxError> {
        let events: Vec<StoredEvent> = sqlx::query_as(&format!(
            "SELECT {STORED_COLUMNS} FROM events
              WHERE {COMMIT_SAFE_AFTER}
              ORDER BY events.xid, events.position
              LIMIT $3"
        ))
        .bind(head.point.xid.to_string())
        .bind(head.point.position)
        .bind(self.settings.batch_size)
        .fetch_all(&mut *connection)
        .await?;
        let mut links = NewLinks::default();
        let mut seals = NewSeals::default();
        let mut next = *head;
        for event in &events {
            next = ChainHead {
                chain_index: next.chain_index + 1,
                point: event.commit_point(),
                link: event.link(&next.link),
            };
            links.push(&next);
            if next.chain_index - last_seal.chain_index >= self.settings.seal_every_events {
                seals.push(&next);
                *last_seal = LastSeal {
                    chain_index: next.chain_index,
                    at: Instant::now(),
                };
            }
        }
        if next.chain_index > last_seal.chain_index
            && last_seal.at.elapsed() >= self.settings.seal_every
        {
            seals.push(&next);
            *last_seal = LastSeal {
                chain_index: next.chain_index,
                at: Instant::now(),
            };
        }
        if links.indexes.is_empty() && seals.indexes.is_empty() {
            return Ok(0);
        }
        let mut tx = connection.begin().await?;
        if !links.indexes.is_empty() {
            sqlx::query(
                "INSERT INTO event_links (chain_index, xid, position, link)
                 SELECT index, xid::xid8, position, link
                   FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bytea[])
                     AS linked(index, xid, position, link)",
            )
            .bind(&links.indexes)
            .bind(&links.xids)
            .bind(&links.positions)
            .bind(&links.links)
            .execute(&mut *tx)
            .await?;
        }
        if !seals.indexes.is_empty() {
            sqlx::query(
                "INSERT INTO event_seals (chain_index, up_to_position, link)
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[])",
            )
            .bind(&seals.indexes)
            .bind(&seals.positions)
            .bind(&seals.links)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        *head = next;
        Ok(i64::try_from(events.len())?)
    }

    /// Publishes the seals not yet acknowledged, oldest first.
    async fn publish_pending(&self, connection: &mut PgConnection) -> Result<(), BoxError> {
        let pending: Vec<(i64, i64, Vec<u8>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT chain_index, up_to_position, link, sealed_at FROM event_seals
              WHERE published_at IS NULL ORDER BY chain_index",
        )
        .fetch_all(&mut *connection)
        .await?;
        for (chain_index, up_to_position, link, sealed_at) in pending {
            let seal = Seal {
                up_to_position,
                chain_index,
                link: chain::to_hex(&link),
                sealed_at,
            };
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", format!("seal-{chain_index}").as_str());
            self.jetstream
                .publish_with_headers(
                    self.subjects.seals(),
                    headers,
                    Bytes::from(serde_json::to_vec(&seal)?),
                )
                .await?
                .await?;
            sqlx::query("UPDATE event_seals SET published_at = now() WHERE chain_index = $1")
                .bind(chain_index)
                .execute(&mut *connection)
                .await?;
            tracing::debug!(chain_index, up_to_position, "seal published");
        }
        Ok(())
    }
}

#[derive(Default)]
struct NewLinks {
    indexes: Vec<i64>,
    xids: Vec<String>,
    positions: Vec<i64>,
    links: Vec<Vec<u8>>,
}

impl NewLinks {
    fn push(&mut self, head: &ChainHead) {
        self.indexes.push(head.chain_index);
        self.xids.push(head.point.xid.to_string());
        self.positions.push(head.point.position);
        self.links.push(head.link.to_vec());
    }
}

#[derive(Default)]
struct NewSeals {
    indexes: Vec<i64>,
    positions: Vec<i64>,
    links: Vec<Vec<u8>>,
}

impl NewSeals {
    fn push(&mut self, head: &ChainHead) {
        self.indexes.push(head.chain_index);
        self.positions.push(head.point.position);
        self.links.push(head.link.to_vec());
    }
}

/// Every seal stored, oldest first.
pub async fn stored_seals(pool: &PgPool) -> Result<Vec<Seal>, sqlx::Error> {
    let rows: Vec<(i64, i64, Vec<u8>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT chain_index, up_to_position, link, sealed_at FROM event_seals ORDER BY chain_index",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(chain_index, up_to_position, link, sealed_at)| Seal {
            up_to_position,
            chain_index,
            link: chain::to_hex(&link),
            sealed_at,
        })
        .collect())
}
