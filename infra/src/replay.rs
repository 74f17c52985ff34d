//! Replay for a consumer: republishes stored history to a separate subject prefix and stream,
//! for a consumer that needs events the live stream no longer holds (`ESHOP_EVENTS_MAX_AGE`)
//! or wants to rebuild its own store.
//!
//! Messages are the live stream's exactly (the same body: secrets removed, personal fields
//! sealed as stored; the same headers, `Nats-Msg-Id` = position), in the relay's commit-safe
//! `(xid, position)` order, so each aggregate's events arrive in sequence order. It never
//! publishes to the live stream: a prefix whose subjects could reach the live stream's (or a
//! stream name equal to one of eshop's) is refused before anything is read.

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use sqlx::PgPool;

use crate::nats::{EventSubjects, DUPLICATE_WINDOW};
use crate::relay::{EventRow, PUBLISHED_COLUMNS};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the subject prefix {0:?} is not a NATS subject (tokens of letters, digits, `_` and `-`, separated by dots)")]
    InvalidPrefix(String),
    #[error("the subject prefix {prefix:?} overlaps the live stream's subjects ({live}): a replay never publishes there")]
    OverlapsLiveStream { prefix: String, live: String },
    #[error("the stream name {0:?} is one of eshop's own streams or not a valid stream name")]
    InvalidStream(String),
    #[error("the event store failed")]
    Store(#[from] sqlx::Error),
    #[error("NATS failed: {0}")]
    Nats(String),
}

/// Where a replay goes: subjects `<prefix>.<aggregate_type>.<aggregate_id>` in a stream of its
/// own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayTarget {
    subject_prefix: String,
    stream_name: String,
}

fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl ReplayTarget {
    /// `stream` defaults to `REPLAY_<PREFIX>` (dots and dashes as `_`). `live` names the live
    /// stream and subjects this replay must stay away from.
    pub fn new(
        subject_prefix: &str,
        stream: Option<&str>,
        live: &EventSubjects,
    ) -> Result<Self, ReplayError> {
        let prefix = subject_prefix.trim_end_matches(".>").to_string();
        if !prefix.split('.').all(is_token) {
            return Err(ReplayError::InvalidPrefix(subject_prefix.to_string()));
        }
        let live_all = live.all();
        let live_root = live_all.trim_end_matches(".>");
        // Either one's `>` would capture the other's subjects.
        let overlaps = prefix == live_root
            || prefix.starts_with(&format!("{live_root}."))
            || live_root.starts_with(&format!("{prefix}."));
        if overlaps {
            return Err(ReplayError::OverlapsLiveStream {
                prefix,
                live: live_all,
            });
        }
        let stream_name = match stream {
            Some(name) => name.to_string(),
            None => format!("REPLAY_{}", prefix.to_uppercase().replace(['.', '-'], "_")),
        };
        let ours = [
            live.stream_name(),
            live.tasks_stream_name(),
            EventSubjects::new("").stream_name(),
            EventSubjects::new("").tasks_stream_name(),
            "ESHOP_SEALS".to_string(),
        ];
        if ours.contains(&stream_name) || !is_token(&stream_name) {
            return Err(ReplayError::InvalidStream(stream_name));
        }
        Ok(Self {
            subject_prefix: prefix,
            stream_name,
        })
    }

    pub fn stream_name(&self) -> &str {
        &self.stream_name
    }

    pub fn subjects(&self) -> String {
        format!("{}.>", self.subject_prefix)
    }

    pub fn subject(&self, aggregate_type: &str, aggregate_id: &str) -> String {
        format!("{}.{aggregate_type}.{aggregate_id}", self.subject_prefix)
    }
}

/// What to replay: events from `from_position` on (inclusive), of one aggregate type or all.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub from_position: i64,
    pub aggregate_type: Option<String>,
    /// Events read and in flight at once.
    pub batch_size: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySummary {
    pub published: u64,
}

/// A replay fixed at its start: it covers the events committed before any transaction still in
/// flight then (the relay's horizon), so it ends even while the shop keeps writing.
pub struct Replay {
    pool: PgPool,
    jetstream: jetstream::Context,
    target: ReplayTarget,
    request: ReplayRequest,
    horizon: String,
}

impl Replay {
    pub async fn prepare(
        pool: PgPool,
        jetstream: jetstream::Context,
        target: ReplayTarget,
        request: ReplayRequest,
    ) -> Result<Self, ReplayError> {
        let (horizon,): (String,) =
            sqlx::query_as("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
                .fetch_one(&pool)
                .await?;
        Ok(Self {
            pool,
            jetstream,
            target,
            request,
            horizon,
        })
    }

    /// How many events the replay will publish.
    pub async fn total(&self) -> Result<u64, ReplayError> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM events
              WHERE position >= $1 AND ($2::text IS NULL OR aggregate_type = $2)
                AND xid < $3::text::xid8",
        )
        .bind(self.request.from_position)
        .bind(self.request.aggregate_type.as_deref())
        .bind(&self.horizon)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// Creates (or updates) the replay's stream, publishes every event and waits for each
    /// acknowledgement; `progress` hears the running count after each batch.
    pub async fn run(self, mut progress: impl FnMut(u64)) -> Result<ReplaySummary, ReplayError> {
        self.jetstream
            .create_or_update_stream(stream::Config {
                name: self.target.stream_name.clone(),
                subjects: vec![self.target.subjects()],
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await
            .map_err(|error| ReplayError::Nats(error.to_string()))?;
        let mut after: (String, i64) = ("0".into(), 0);
        let mut published = 0u64;
        loop {
            let rows: Vec<ReplayRow> = sqlx::query_as(&format!(
                "SELECT xid::text AS xid, {PUBLISHED_COLUMNS}
                   FROM events
                  WHERE (xid, position) > ($1::text::xid8, $2)
                    AND xid < $3::text::xid8
                    AND position >= $4
                    AND ($5::text IS NULL OR aggregate_type = $5)
                  -- the table's xid8, not the text column of the same name selected above
                  ORDER BY events.xid, events.position
                  LIMIT $6"
            ))
            .bind(&after.0)
            .bind(after.1)
            .bind(&self.horizon)
            .bind(self.request.from_position)
            .bind(self.request.aggregate_type.as_deref())
            .bind(self.request.batch_size.max(1))
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                return Ok(ReplaySummary { published });
            }
            let mut pending = Vec::with_capacity(rows.len());
            for row in rows {
                let event = row.event.published();
                after = (row.xid, event.position);
                let subject = self
                    .target
                    .subject(&event.aggregate_type, &event.aggregate_id);
                let body = serde_json::to_vec(&event)
                    .map_err(|error| ReplayError::Nats(error.to_string()))?;
                let ack = self
                    .jetstream
                    .publish_with_headers(
                        subject,
                        crate::event_headers::headers_for(&event),
                        Bytes::from(body),
                    )
                    .await
                    .map_err(|error| ReplayError::Nats(error.to_string()))?;
                pending.push(ack);
            }
            for ack in pending {
                ack.await
                    .map_err(|error| ReplayError::Nats(error.to_string()))?;
                published += 1;
            }
            progress(published);
        }
    }
}

#[derive(sqlx::FromRow)]
struct ReplayRow {
    xid: String,
    #[sqlx(flatten)]
    event: EventRow,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_that_reaches_the_live_subjects_is_refused() {
        let live = EventSubjects::new("");
        for prefix in [
            "eshop.events",
            "eshop.events.order",
            "eshop",
            "eshop.events.>",
        ] {
            assert!(
                matches!(
                    ReplayTarget::new(prefix, None, &live),
                    Err(ReplayError::OverlapsLiveStream { .. })
                ),
                "{prefix}"
            );
        }
        let prefixed = EventSubjects::new("t1");
        assert!(ReplayTarget::new("t1.eshop", None, &prefixed).is_err());
        assert!(ReplayTarget::new("eshop.events", None, &prefixed).is_ok());
    }

    #[test]
    fn a_separate_prefix_gets_a_stream_of_its_own() {
        let live = EventSubjects::new("");
        let target = ReplayTarget::new("replay.billing-v2", None, &live).expect("a target");
        assert_eq!(target.stream_name(), "REPLAY_REPLAY_BILLING_V2");
        assert_eq!(target.subjects(), "replay.billing-v2.>");
        assert_eq!(
            target.subject("order", "abc"),
            "replay.billing-v2.order.abc"
        );
        assert!(ReplayTarget::new("eshop.replay", None, &live).is_ok());
    }

    #[test]
    fn eshops_own_streams_and_bad_names_are_refused() {
        let live = EventSubjects::new("");
        for stream in ["ESHOP_EVENTS", "ESHOP_TASKS", "a.b", ""] {
            assert!(
                ReplayTarget::new("replay", Some(stream), &live).is_err(),
                "{stream}"
            );
        }
        for prefix in ["", "a..b", "a.*", "a b"] {
            assert!(
                matches!(
                    ReplayTarget::new(prefix, None, &live),
                    Err(ReplayError::InvalidPrefix(_))
                ),
                "{prefix:?}"
            );
        }
    }
}
