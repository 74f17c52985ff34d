//! Verification of the hash chain: the events are read again in commit order up to the chain's
//! head and each one's link is recomputed from the link stored before it. An event whose link
//! differs was `altered`; a link whose event is gone is `missing`; an event inside the sealed
//! range without a link is `unsealed` (written behind the application's back, into the past).
//! Each stored seal must also equal the link it names, so a chain recomputed in the database
//! shows at the next seal (and against the seals a party kept from NATS).
//!
//! Events after the head are `pending_events`: the sealer has not reached them yet.

use std::cmp::Ordering;
use std::collections::HashMap;

use futures::StreamExt;
use serde::Serialize;
use sqlx::PgPool;

use crate::audit::chain::{self, Link, StoredEvent, GENESIS, STORED_COLUMNS};
use crate::audit::sealer::{chain_head, ChainHead};
use crate::commit_order::CommitPoint;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// At most this many mismatches are listed (all are counted).
const LISTED_MISMATCHES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    Altered,
    Missing,
    Unsealed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Mismatch {
    pub position: i64,
    pub reason: Reason,
    /// The link's place in the chain (none for an unsealed event).
    pub chain_index: Option<i64>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Head {
    pub position: i64,
    pub chain_index: i64,
    pub link: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Verification {
    pub ok: bool,
    /// Events whose link checked out.
    pub verified_events: i64,
    /// The chain's last link (absent before the first event was sealed).
    pub head: Option<Head>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_mismatch: Option<Mismatch>,
    pub mismatch_count: i64,
    /// The first 100 mismatches in commit order.
    pub mismatches: Vec<Mismatch>,
    /// Stored seals compared with the chain.
    pub seals_checked: i64,
    /// Events after the head, not linked yet.
    pub pending_events: i64,
}

#[derive(sqlx::FromRow)]
struct StoredLink {
    chain_index: i64,
    xid: i64,
    position: i64,
    link: Vec<u8>,
}

impl StoredLink {
    fn point(&self) -> CommitPoint {
        CommitPoint {
            xid: u64::try_from(self.xid).unwrap_or_default(),
            position: self.position,
        }
    }
}

struct Report {
    verified_events: i64,
    mismatch_count: i64,
    mismatches: Vec<Mismatch>,
    seals_checked: i64,
}

impl Report {
    fn found(&mut self, mismatch: Mismatch) {
        self.mismatch_count += 1;
        if self.mismatches.len() < LISTED_MISMATCHES {
            self.mismatches.push(mismatch);
        }
    }
}

/// Recomputes the chain over every event up to the head.
pub async fn verify(pool: &PgPool) -> Result<Verification, BoxError> {
    let head = {
        let mut connection = pool.acquire().await?;
        chain_head(&mut connection).await?
    };
    let seals: HashMap<i64, Vec<u8>> =
        sqlx::query_as("SELECT chain_index, link FROM event_seals WHERE chain_index <= $1")
            .bind(head.chain_index)
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let events_sql = format!(
        "SELECT {STORED_COLUMNS} FROM events
          WHERE (xid, position) <= ($1::text::xid8, $2)
          ORDER BY events.xid, events.position"
    );
    let mut events = sqlx::query_as::<_, StoredEvent>(&events_sql)
        .bind(head.point.xid.to_string())
        .bind(head.point.position)
        .fetch(pool)
        .peekable();
    let mut links = sqlx::query_as::<_, StoredLink>(
        "SELECT chain_index, xid::text::bigint AS xid, position, link FROM event_links
          WHERE chain_index <= $1 ORDER BY chain_index",
    )
    .bind(head.chain_index)
    .fetch(pool)
    .peekable();
    let mut report = Report {
        verified_events: 0,
        mismatch_count: 0,
        mismatches: Vec::new(),
        seals_checked: 0,
    };
    let mut previous: Link = GENESIS;
    loop {
        let order = match (
            std::pin::Pin::new(&mut events).peek().await,
            std::pin::Pin::new(&mut links).peek().await,
        ) {
            (None, None) => break,
            (Some(Err(_)), _) | (_, Some(Err(_))) => Ordering::Equal,
            (Some(Ok(_)), None) => Ordering::Less,
            (None, Some(Ok(_))) => Ordering::Greater,
            (Some(Ok(event)), Some(Ok(link))) => event.commit_point().cmp(&link.point()),
        };
        match order {
            Ordering::Less => {
                let event = events.next().await.transpose()?.ok_or("no event")?;
                report.found(Mismatch {
                    position: event.position,
                    reason: Reason::Unsealed,
                    chain_index: None,
                    detail: format!(
                        "{} {} #{} ({}) has no link",
                        event.aggregate_type, event.aggregate_id, event.sequence, event.event_type
                    ),
                });
            }
            Ordering::Greater => {
                let link = links.next().await.transpose()?.ok_or("no link")?;
                report.found(Mismatch {
                    position: link.position,
                    reason: Reason::Missing,
                    chain_index: Some(link.chain_index),
                    detail: "the event this link covers is gone".into(),
                });
                previous = chain::from_bytes(&link.link).ok_or("a stored link is not 32 bytes")?;
            }
            Ordering::Equal => {
                let event = events.next().await.transpose()?.ok_or("no event")?;
                let link = links.next().await.transpose()?.ok_or("no link")?;
                let stored =
                    chain::from_bytes(&link.link).ok_or("a stored link is not 32 bytes")?;
                if event.link(&previous) == stored {
                    report.verified_events += 1;
                } else {
                    report.found(Mismatch {
                        position: event.position,
                        reason: Reason::Altered,
                        chain_index: Some(link.chain_index),
                        detail: format!(
                            "{} {} #{} ({}) differs from what was linked",
                            event.aggregate_type,
                            event.aggregate_id,
                            event.sequence,
                            event.event_type
                        ),
                    });
                }
                if let Some(sealed) = seals.get(&link.chain_index) {
                    report.seals_checked += 1;
                    if sealed.as_slice() != stored.as_slice() {
                        report.found(Mismatch {
                            position: event.position,
                            reason: Reason::Altered,
                            chain_index: Some(link.chain_index),
                            detail: "the chain differs from its seal: links were recomputed".into(),
                        });
                    }
                }
                previous = stored;
            }
        }
    }
    let pending_events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE (xid, position) > ($1::text::xid8, $2)",
    )
    .bind(head.point.xid.to_string())
    .bind(head.point.position)
    .fetch_one(pool)
    .await?;
    Ok(Verification {
        ok: report.mismatch_count == 0,
        verified_events: report.verified_events,
        head: (head != ChainHead::EMPTY).then(|| Head {
            position: head.point.position,
            chain_index: head.chain_index,
            link: chain::to_hex(&head.link),
        }),
        first_mismatch: report.mismatches.first().cloned(),
        mismatch_count: report.mismatch_count,
        mismatches: report.mismatches,
        seals_checked: report.seals_checked,
        pending_events,
    })
}
