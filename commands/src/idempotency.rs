//! `Idempotency-Key`: a retried request gets the first answer back and changes nothing.
//!
//! Two layers make it hold. The command's id is derived from the key, and the event store
//! records applied command ids in the appending transaction, so the effect happens at most once
//! even if the process dies before the answer is saved. This module saves the answer itself, so
//! a repeat receives the same status and body.

use std::future::Future;
use std::time::Duration;

use serde_json::Value;

use crate::digest::sha256_hex;
use crate::store::StoreError;

/// Records are kept at least this long (the purge removes only older ones).
pub const RETENTION: Duration = Duration::from_secs(48 * 3600);

#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    /// Whose key it is (a user id, or `anonymous`): keys of different clients never collide.
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
    pub response: StoredResponse,
}

pub trait IdempotencyRecords: Send + Sync + 'static {
    fn find(
        &self,
        scope: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, StoreError>> + Send;

    /// Stores `record` unless one exists for its scope and key; returns whichever is stored.
    fn save_first(
        &self,
        record: IdempotencyRecord,
    ) -> impl Future<Output = Result<IdempotencyRecord, StoreError>> + Send;

    fn purge_older_than(
        &self,
        age: Duration,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

#[derive(Debug, Clone, PartialEq)]
pub enum PriorRequest {
    None,
    Answered(StoredResponse),
    /// The key was used before for a different request.
    DifferentRequest,
}

/// What identifies "the same request": method, path and the JSON body. `serde_json` keeps
/// object keys sorted, so key order and white space do not matter.
pub fn fingerprint(method: &str, path: &str, body: &Value) -> String {
    sha256_hex(&[
        method.as_bytes(),
        path.as_bytes(),
        body.to_string().as_bytes(),
    ])
}

/// Keys are opaque to us; bounding them keeps the table and the logs sane.
pub fn is_valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

pub struct Idempotency<R> {
    records: R,
}

impl<R: IdempotencyRecords> Idempotency<R> {
    pub fn new(records: R) -> Self {
        Self { records }
    }

    pub async fn prior(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<PriorRequest, StoreError> {
        Ok(match self.records.find(scope, key).await? {
            None => PriorRequest::None,
            Some(record) if record.fingerprint == fingerprint => {
                PriorRequest::Answered(record.response)
            }
            Some(_) => PriorRequest::DifferentRequest,
        })
    }

    /// Saves the answer; when a concurrent request with the same key saved first, returns that
    /// one, so every repeat sees a single answer.
    pub async fn remember(&self, record: IdempotencyRecord) -> Result<StoredResponse, StoreError> {
        Ok(self.records.save_first(record).await?.response)
    }

    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.records.purge_older_than(RETENTION).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fingerprint_ignores_key_order_but_not_values() {
        let a = fingerprint("POST", "/x", &json!({"a": 1, "b": 2}));
        let b = fingerprint("POST", "/x", &json!({"b": 2, "a": 1}));
        let c = fingerprint("POST", "/x", &json!({"a": 1, "b": 3}));
        let d = fingerprint("POST", "/y", &json!({"a": 1, "b": 2}));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn keys_are_bounded_printable_text() {
        assert!(is_valid_key("3f1c2a9e-key"));
        assert!(!is_valid_key(""));
        assert!(!is_valid_key("has space"));
        assert!(!is_valid_key(&"k".repeat(256)));
    }
}
