//! Consumers and API keys in the `KvStore` port (DynamoDB on Lambda, KV on
//! Workers, memory locally). Layout:
//!
//! | key | value |
//! |---|---|
//! | `consumers/<id>` | consumer JSON |
//! | `consumers/<id>/keys` | JSON array of the consumer's key ids |
//! | `keys/by-hash/<sha256 hex>` | key record JSON (the lookup on every request) |
//! | `keys/by-id/<id>` | the key's SHA-256 hex (for revocation by id) |
//!
//! The per-consumer key list is read-modify-written: two keys created for one
//! consumer at the same instant may leave one out of the listing (the keys
//! themselves still work). Admin writes are rare; this is documented.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::api_key::KeyRecord;
use crate::platform::{KvStore, StoreError};

/// An identity that calls the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    pub id: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Route names it may call; `None` = every route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_routes: Option<Vec<String>>,
    /// Public model names it may use; `None` = every model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<Vec<String>>,
    /// The quota plan it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

/// Checks a consumer id: 1–64 characters of `A-Z a-z 0-9 . _ -`.
pub fn valid_consumer_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError(format!("corrupt {what}: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Bytes, StoreError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| StoreError(format!("encode: {e}")))
}

pub async fn get_consumer(kv: &impl KvStore, id: &str) -> Result<Option<Consumer>, StoreError> {
    match kv.get(&format!("consumers/{id}")).await? {
        Some(bytes) => decode("consumer", &bytes).map(Some),
        None => Ok(None),
    }
}

pub async fn put_consumer(kv: &impl KvStore, consumer: &Consumer) -> Result<(), StoreError> {
    kv.put(
        &format!("consumers/{}", consumer.id),
        encode(consumer)?,
        None,
    )
    .await
}

pub async fn get_key_by_hash(
    kv: &impl KvStore,
    sha256_hex: &str,
) -> Result<Option<KeyRecord>, StoreError> {
    match kv.get(&format!("keys/by-hash/{sha256_hex}")).await? {
        Some(bytes) => decode("key record", &bytes).map(Some),
        None => Ok(None),
    }
}

pub async fn get_key_by_id(kv: &impl KvStore, id: &str) -> Result<Option<KeyRecord>, StoreError> {
    let Some(hash) = kv.get(&format!("keys/by-id/{id}")).await? else {
        return Ok(None);
    };
    get_key_by_hash(kv, &String::from_utf8_lossy(&hash)).await
}

pub async fn put_key(kv: &impl KvStore, record: &KeyRecord) -> Result<(), StoreError> {
    kv.put(
        &format!("keys/by-hash/{}", record.key_sha256),
        encode(record)?,
        None,
    )
    .await
}

/// Stores a new key and lists it under its consumer.
pub async fn insert_key(kv: &impl KvStore, record: &KeyRecord) -> Result<(), StoreError> {
    put_key(kv, record).await?;
    kv.put(
        &format!("keys/by-id/{}", record.id),
        Bytes::from(record.key_sha256.clone()),
        None,
    )
    .await?;
    let list_key = format!("consumers/{}/keys", record.consumer_id);
    let mut ids: Vec<String> = match kv.get(&list_key).await? {
        Some(bytes) => decode("key list", &bytes)?,
        None => Vec::new(),
    };
    ids.push(record.id.clone());
    kv.put(&list_key, encode(&ids)?, None).await
}

pub async fn list_keys(kv: &impl KvStore, consumer_id: &str) -> Result<Vec<KeyRecord>, StoreError> {
    let ids: Vec<String> = match kv.get(&format!("consumers/{consumer_id}/keys")).await? {
        Some(bytes) => decode("key list", &bytes)?,
        None => return Ok(Vec::new()),
    };
    let mut records = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(record) = get_key_by_id(kv, &id).await? {
            records.push(record);
        }
    }
    Ok(records)
}

/// A bounded map whose entries expire: the in-instance cache of key
/// lookups. When full, expired entries go first, then arbitrary ones.
pub struct TtlCache<V> {
    ttl_ms: u64,
    capacity: usize,
    entries: Mutex<std::collections::HashMap<String, (V, u64)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl_ms: u64, capacity: usize) -> Self {
        Self {
            ttl_ms,
            capacity,
            entries: Mutex::default(),
        }
    }

    pub fn get(&self, key: &str, now_ms: u64) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(_, at)| now_ms.saturating_sub(*at) < self.ttl_ms)
            .map(|(v, _)| v.clone())
    }

    pub fn insert(&self, key: String, value: V, now_ms: u64) {
        if self.capacity == 0 || self.ttl_ms == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let ttl = self.ttl_ms;
            entries.retain(|_, (_, at)| now_ms.saturating_sub(*at) < ttl);
            if entries.len() >= self.capacity {
                if let Some(victim) = entries.keys().next().cloned() {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(key, (value, now_ms));
    }

    pub fn remove(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_expires_and_stays_bounded() {
        let cache = TtlCache::new(100, 2);
        cache.insert("a".into(), 1, 0);
        assert_eq!(cache.get("a", 99), Some(1));
        assert_eq!(cache.get("a", 100), None);
        cache.insert("b".into(), 2, 0);
        cache.insert("c".into(), 3, 0);
        cache.insert("d".into(), 4, 0);
        let alive = ["a", "b", "c", "d"]
            .iter()
            .filter(|k| cache.get(k, 1).is_some())
            .count();
        assert_eq!(alive, 2);
        assert_eq!(cache.get("d", 1), Some(4));
    }

    #[test]
    fn consumer_ids() {
        assert!(valid_consumer_id("team-a.prod_1"));
        assert!(!valid_consumer_id(""));
        assert!(!valid_consumer_id("a/b"));
        assert!(!valid_consumer_id(&"x".repeat(65)));
    }
}
