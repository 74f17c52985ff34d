//! Personal data in events, sealed with a key per person so that deleting the key erases it.
//!
//! The fields `eshop_domain::personal_fields` names are stored as `{"sealed": "<base64url>"}`:
//! XChaCha20-Poly1305 over the field's JSON, with a random nonce, bound (as associated data) to
//! the aggregate and field it belongs to, so a sealed value cannot be moved elsewhere. The store,
//! the NATS stream and the audit feeds carry only sealed values; the aggregate loader and the
//! projection builders unseal them with the key, and read them as `null` once it is erased.
//! The events themselves never change (invariant 1).

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use eshop_commands::StoreError;
use eshop_domain::personal_fields;

use crate::event_store::unavailable;

const SEALED: &str = "sealed";
const NONCE_BYTES: usize = 24;

/// A 256-bit key: one person's, or one derived for a purpose; `Debug` never shows it.
#[derive(Clone)]
pub struct SealingKey(Key);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(<secret>)")
    }
}

impl SealingKey {
    pub fn generate() -> Self {
        Self(XChaCha20Poly1305::generate_key(&mut OsRng))
    }

    /// A key derived from a secret the replicas share, one per purpose.
    pub fn derived(secret: &str, purpose: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(b"eshop sealing key\0")
            .chain_update(purpose.as_bytes())
            .chain_update(b"\0")
            .chain_update(secret.as_bytes())
            .finalize();
        Self(*Key::from_slice(&digest))
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == 32).then(|| Self(*Key::from_slice(bytes)))
    }
}

/// Seals `text` under `key`, bound to `aad` (it opens only with the same): base64url of the
/// nonce and the ciphertext.
pub fn seal_text(key: &SealingKey, aad: &str, text: &str) -> Option<String> {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let ciphertext = XChaCha20Poly1305::new(&key.0)
        .encrypt(
            &nonce,
            Payload {
                msg: text.as_bytes(),
                aad: aad.as_bytes(),
            },
        )
        .ok()?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&ciphertext);
    Some(URL_SAFE_NO_PAD.encode(sealed))
}

/// The text `seal_text` sealed, if `key` and `aad` are the ones it was sealed with.
pub fn open_text(key: &SealingKey, aad: &str, sealed: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if bytes.len() < NONCE_BYTES {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
    let plaintext = XChaCha20Poly1305::new(&key.0)
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .ok()?;
    String::from_utf8(plaintext).ok()
}

/// Whether this event type can carry personal data at all.
pub fn has_personal_fields(aggregate_type: &str) -> bool {
    !personal_fields(aggregate_type).is_empty()
}

fn associated_data(aggregate_type: &str, aggregate_id: &str, field: &str) -> String {
    format!("{aggregate_type}/{aggregate_id}/{field}")
}

fn is_sealed(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|object| object.len() == 1 && object.contains_key(SEALED))
}

/// Whether any personal field of this payload is sealed (and so needs the key to read).
pub fn holds_sealed_fields(aggregate_type: &str, payload: &Value) -> bool {
    let Some(data) = payload.get("data") else {
        return false;
    };
    personal_fields(aggregate_type)
        .iter()
        .any(|field| data.get(*field).is_some_and(is_sealed))
}

/// Seals every personal field present in `payload` (an event as stored: `{type, data}`).
pub fn seal(aggregate_type: &str, aggregate_id: &str, payload: &mut Value, key: &SealingKey) {
    let Some(data) = payload.get_mut("data").and_then(Value::as_object_mut) else {
        return;
    };
    for field in personal_fields(aggregate_type) {
        let Some(value) = data.get_mut(*field) else {
            continue;
        };
        if is_sealed(value) {
            continue;
        }
        let aad = associated_data(aggregate_type, aggregate_id, field);
        // XChaCha20-Poly1305 only fails on inputs of gigabytes; never keep one in clear.
        *value = seal_text(key, &aad, &value.to_string())
            .map_or(Value::Null, |sealed| json!({ SEALED: sealed }));
    }
}

/// Replaces each sealed personal field with its value, or with `null` when there is no key
/// (erased) or the value does not open with it.
pub fn unseal(
    aggregate_type: &str,
    aggregate_id: &str,
    payload: &mut Value,
    key: Option<&SealingKey>,
) {
    let Some(data) = payload.get_mut("data").and_then(Value::as_object_mut) else {
        return;
    };
    for field in personal_fields(aggregate_type) {
        let Some(value) = data.get_mut(*field) else {
            continue;
        };
        if !is_sealed(value) {
            continue;
        }
        let aad = associated_data(aggregate_type, aggregate_id, field);
        *value = key
            .and_then(|key| open(value, key, &aad))
            .unwrap_or(Value::Null);
    }
}

fn open(sealed: &Value, key: &SealingKey, aad: &str) -> Option<Value> {
    let text = open_text(key, aad, sealed.get(SEALED)?.as_str()?)?;
    serde_json::from_str(&text).ok()
}

/// The key table. Keys are read from Postgres each time they are needed (no cache), so an
/// erasure on one replica is final on every replica at once.
#[derive(Clone)]
pub struct PersonalDataKeys {
    pool: PgPool,
}

impl PersonalDataKeys {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The subject's key, created on first use. An erased subject has none: writing new
    /// personal data for it is refused (as a conflict: the aggregate has changed).
    pub async fn key_for_writing(&self, subject: &str) -> Result<SealingKey, StoreError> {
        // A concurrent first write can make both halves miss (the inserted row is not in
        // this statement's snapshot): the second attempt then reads it.
        for _ in 0..2 {
            if let Some(stored) = self.create_or_read_key(subject).await? {
                return stored
                    .as_deref()
                    .and_then(SealingKey::from_bytes)
                    // Erased between this command's decision and its append: a conflict, so
                    // the bus reloads the aggregate, which now refuses the command.
                    .ok_or(StoreError::Conflict);
            }
        }
        Err(StoreError::Corrupt(format!(
            "{subject}: no personal data key"
        )))
    }

    async fn create_or_read_key(
        &self,
        subject: &str,
    ) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        let fresh = SealingKey::generate();
        sqlx::query_scalar(
            "WITH created AS (
                 INSERT INTO personal_data_keys (subject, key) VALUES ($1, $2)
                 ON CONFLICT (subject) DO NOTHING RETURNING key
             )
             SELECT key FROM created
             UNION ALL
             SELECT key FROM personal_data_keys WHERE subject = $1
             LIMIT 1",
        )
        .bind(subject)
        .bind(fresh.0.as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)
    }

    /// Deletes keys made for registrations that never committed (an e-mail already taken,
    /// say), once older than `older_than`, so no key outlives every trace of its user.
    pub async fn purge_unused(&self, older_than: std::time::Duration) -> Result<u64, sqlx::Error> {
        sqlx::query(
            "DELETE FROM personal_data_keys AS keys
              WHERE keys.key IS NOT NULL
                AND keys.created_at < now() - make_interval(secs => $1)
                AND NOT EXISTS (SELECT 1 FROM events
                                 WHERE events.aggregate_type = 'user'
                                   AND events.aggregate_id = keys.subject)",
        )
        .bind(older_than.as_secs_f64())
        .execute(&self.pool)
        .await
        .map(|done| done.rows_affected())
    }

    /// The keys of those subjects that still have one.
    pub async fn keys(
        &self,
        subjects: &[String],
    ) -> Result<HashMap<String, SealingKey>, sqlx::Error> {
        if subjects.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT subject, key FROM personal_data_keys WHERE subject = ANY($1) AND key IS NOT NULL",
        )
        .bind(subjects)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(subject, key)| Some((subject, SealingKey::from_bytes(&key)?)))
            .collect())
    }

    /// Unseals the personal fields of many events at once (one query for their keys).
    /// `events` yields (aggregate type, aggregate id, payload).
    pub async fn unseal_all<'a>(
        &self,
        events: impl IntoIterator<Item = (&'a str, &'a str, &'a mut Value)>,
    ) -> Result<(), sqlx::Error> {
        let sealed: Vec<_> = events
            .into_iter()
            .filter(|(aggregate_type, _, payload)| holds_sealed_fields(aggregate_type, payload))
            .collect();
        if sealed.is_empty() {
            return Ok(());
        }
        let mut subjects: Vec<String> = sealed.iter().map(|(_, id, _)| id.to_string()).collect();
        subjects.sort();
        subjects.dedup();
        let keys = self.keys(&subjects).await?;
        for (aggregate_type, aggregate_id, payload) in sealed {
            unseal(
                aggregate_type,
                aggregate_id,
                payload,
                keys.get(aggregate_id),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered() -> Value {
        json!({"type": "UserRegistered", "data": {
            "email": "ann@example.com", "username": "ann", "first_name": "Ann", "last_name": null
        }})
    }

    #[test]
    fn sealing_hides_every_personal_field_and_unsealing_restores_it() {
        let key = SealingKey::generate();
        let mut payload = registered();
        seal("user", "u1", &mut payload, &key);
        let stored = payload.to_string();
        assert!(!stored.contains("ann@example.com") && !stored.contains("Ann"));
        assert_eq!(
            payload["data"]["username"], "ann",
            "other fields stay readable"
        );
        assert!(holds_sealed_fields("user", &payload));
        unseal("user", "u1", &mut payload, Some(&key));
        assert_eq!(payload, registered());
    }

    #[test]
    fn without_the_key_personal_fields_read_as_null() {
        let key = SealingKey::generate();
        let mut payload = registered();
        seal("user", "u1", &mut payload, &key);
        unseal("user", "u1", &mut payload, None);
        assert_eq!(payload["data"]["email"], Value::Null);
        assert_eq!(payload["data"]["first_name"], Value::Null);
        assert_eq!(payload["data"]["username"], "ann");
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_in_its_place() {
        let key = SealingKey::generate();
        let mut payload = registered();
        seal("user", "u1", &mut payload, &key);
        let mut elsewhere = payload.clone();
        unseal("user", "u2", &mut elsewhere, Some(&key));
        assert_eq!(elsewhere["data"]["email"], Value::Null);
        unseal("user", "u1", &mut payload, Some(&SealingKey::generate()));
        assert_eq!(payload["data"]["email"], Value::Null);
    }

    #[test]
    fn a_text_opens_only_with_its_key_and_purpose() {
        let key = SealingKey::derived("shared secret", "task bodies");
        let sealed = seal_text(&key, "task-1", "{\"password\":\"hunter2\"}").expect("sealed");
        assert!(!sealed.contains("hunter2"));
        let same = SealingKey::derived("shared secret", "task bodies");
        assert_eq!(
            open_text(&same, "task-1", &sealed).as_deref(),
            Some("{\"password\":\"hunter2\"}")
        );
        assert_eq!(open_text(&same, "task-2", &sealed), None);
        let other = SealingKey::derived("shared secret", "something else");
        assert_eq!(open_text(&other, "task-1", &sealed), None);
    }

    #[test]
    fn other_aggregates_are_left_alone() {
        let key = SealingKey::generate();
        let original = json!({"type": "ProductCreated", "data": {"email": "not personal here"}});
        let mut payload = original.clone();
        seal("product", "p1", &mut payload, &key);
        assert_eq!(payload, original);
    }
}
