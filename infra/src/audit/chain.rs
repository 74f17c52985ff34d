//! The hash chain over the stored events (DESIGN.md, invariant 9).
//!
//! Each event's link is `SHA-256(previous link ‖ canonical bytes of its stored row)`, the first
//! event's previous link being 32 zero bytes. The canonical bytes are, in this order:
//!
//! | field | encoding |
//! | --- | --- |
//! | position, sequence | 8 bytes, big-endian two's complement |
//! | aggregate type, aggregate id, event type, event version | 4-byte big-endian length, then UTF-8 |
//! | payload, metadata | the same, of Postgres's text form of the stored `jsonb` (`payload::text`) |
//! | recorded_at | microseconds since the Unix epoch, 8 bytes big-endian |
//!
//! preceded by the 8-byte tag `eshop-l1`. The payload is hashed as stored: personal fields as
//! their ciphertext, the password hash included, so erasing a user's key leaves every link
//! verifiable. Anyone with read access to the table can recompute the chain with this recipe.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::commit_order::CommitPoint;

pub const LINK_BYTES: usize = 32;
pub type Link = [u8; LINK_BYTES];

/// The link before the first event.
pub const GENESIS: Link = [0; LINK_BYTES];

const TAG: &[u8; 8] = b"eshop-l1";

/// The columns of an `events` row the chain covers, as `STORED_COLUMNS` selects them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub xid: i64,
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: String,
    pub metadata: String,
    pub recorded_at: DateTime<Utc>,
}

/// Selects a `StoredEvent`. `xid` as a bigint: an xid8 (epoch and xid) fits in one.
pub const STORED_COLUMNS: &str = "xid::text::bigint AS xid, position, aggregate_type, \
     aggregate_id, sequence, event_type, event_version, payload::text AS payload, \
     metadata::text AS metadata, recorded_at";

impl StoredEvent {
    pub fn commit_point(&self) -> CommitPoint {
        CommitPoint {
            xid: u64::try_from(self.xid).unwrap_or_default(),
            position: self.position,
        }
    }

    /// This event's link after `previous`.
    pub fn link(&self, previous: &Link) -> Link {
        let mut hasher = Sha256::new();
        hasher.update(previous);
        hasher.update(TAG);
        hasher.update(self.position.to_be_bytes());
        for text in [
            &self.aggregate_type,
            &self.aggregate_id,
            &self.event_type,
            &self.event_version,
        ] {
            update_text(&mut hasher, text);
        }
        hasher.update(self.sequence.to_be_bytes());
        update_text(&mut hasher, &self.payload);
        update_text(&mut hasher, &self.metadata);
        hasher.update(self.recorded_at.timestamp_micros().to_be_bytes());
        hasher.finalize().into()
    }
}

fn update_text(hasher: &mut Sha256, text: &str) {
    // Lengths above 4 GiB cannot be stored in a jsonb or text column.
    let length = u32::try_from(text.len()).unwrap_or(u32::MAX);
    hasher.update(length.to_be_bytes());
    hasher.update(text.as_bytes());
}

pub fn to_hex(link: &[u8]) -> String {
    link.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A link read from the database (`bytea`): exactly 32 bytes, or `None`.
pub fn from_bytes(bytes: &[u8]) -> Option<Link> {
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(payload: &str) -> StoredEvent {
        StoredEvent {
            xid: 7,
            position: 1,
            aggregate_type: "product".into(),
            aggregate_id: "p1".into(),
            sequence: 1,
            event_type: "ProductRestocked".into(),
            event_version: "1".into(),
            payload: payload.into(),
            metadata: "{}".into(),
            recorded_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time"),
        }
    }

    #[test]
    fn a_link_depends_on_the_previous_link_and_every_byte_of_the_event() {
        let original = event(r#"{"data": {"quantity": 1}}"#);
        let link = original.link(&GENESIS);
        assert_eq!(link, original.link(&GENESIS), "deterministic");
        assert_ne!(link, original.link(&link), "the previous link counts");
        assert_ne!(link, event(r#"{"data": {"quantity": 2}}"#).link(&GENESIS));
        let mut moved = original.clone();
        moved.position = 2;
        assert_ne!(link, moved.link(&GENESIS));
        let mut later = original.clone();
        later.recorded_at = DateTime::from_timestamp_micros(1_700_000_000_123_457).expect("time");
        assert_ne!(link, later.link(&GENESIS));
    }

    #[test]
    fn field_boundaries_cannot_be_shifted() {
        let mut one = event("{}");
        one.aggregate_type = "ab".into();
        one.aggregate_id = "c".into();
        let mut other = event("{}");
        other.aggregate_type = "a".into();
        other.aggregate_id = "bc".into();
        assert_ne!(one.link(&GENESIS), other.link(&GENESIS));
    }

    #[test]
    fn hex_is_lowercase_and_two_digits_a_byte() {
        assert_eq!(to_hex(&[0, 15, 255]), "000fff");
    }
}
