//! Consumers and API keys in the `KvStore` port (DynamoDB on Lambda, KV on
//! Workers, memory locally), every call under the store timeout
//! ([`TimedKv`]). Layout:
//!
//! | key | value |
//! |---|---|
//! | `consumers/<id>` | consumer JSON |
//! | `consumers/<id>/keys` | JSON array of the consumer's key ids |
//! | `keys/by-hash/<sha256 hex>` | key record JSON (the lookup on every request) |
//! | `keys/by-id/<id>` | the key's SHA-256 hex (for revocation by id) |
//!
//! Entries that must never be overwritten by another writer — a consumer
//! when it is created, a key's id index and its record — are written with
//! `put_if_absent` (atomic on memory and DynamoDB; on Workers KV through a
//! Durable Object claim, see the Worker's `WorkersKv`). A colliding key id
//! therefore fails the creation (the admin API retries with a new key)
//! instead of taking over another consumer's index entry.
//!
//! The per-consumer key list is read-modify-written: two keys created for one
//! consumer at the same instant may leave one out of the listing (the keys
//! themselves still work). Admin writes are rare; this is documented.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use lru::LruCache;
use serde::{Deserialize, Serialize};

use super::api_key::KeyRecord;
use crate::platform::{Platform, StoreError, TimedKv};

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

pub async fn get_consumer<P: Platform>(
    kv: &TimedKv<'_, P>,
    id: &str,
) -> Result<Option<Consumer>, StoreError> {
    match kv.get(&format!("consumers/{id}")).await? {
        Some(bytes) => decode("consumer", &bytes).map(Some),
        None => Ok(None),
    }
}

/// Creates `consumer`; `Ok(false)` (nothing written) when the id exists.
pub async fn create_consumer<P: Platform>(
    kv: &TimedKv<'_, P>,
    consumer: &Consumer,
) -> Result<bool, StoreError> {
    kv.put_if_absent(
        &format!("consumers/{}", consumer.id),
        encode(consumer)?,
        None,
    )
    .await
}

pub async fn get_key_by_hash<P: Platform>(
    kv: &TimedKv<'_, P>,
    sha256_hex: &str,
) -> Result<Option<KeyRecord>, StoreError> {
    match kv.get(&format!("keys/by-hash/{sha256_hex}")).await? {
        Some(bytes) => decode("key record", &bytes).map(Some),
        None => Ok(None),
    }
}

pub async fn get_key_by_id<P: Platform>(
    kv: &TimedKv<'_, P>,
    id: &str,
) -> Result<Option<KeyRecord>, StoreError> {
    let Some(hash) = kv.get(&format!("keys/by-id/{id}")).await? else {
        return Ok(None);
    };
    get_key_by_hash(kv, &String::from_utf8_lossy(&hash)).await
}

/// Rewrites an existing key's record (revocation).
pub async fn update_key<P: Platform>(
    kv: &TimedKv<'_, P>,
    record: &KeyRecord,
) -> Result<(), StoreError> {
    kv.put(
        &format!("keys/by-hash/{}", record.key_sha256),
        encode(record)?,
        None,
    )
    .await
}

/// Why a new key could not be stored.
#[derive(Debug)]
pub enum InsertKeyError {
    /// Its id (or hash) is already taken: nothing of the other key was
    /// touched; generate a new key.
    Taken,
    Store(StoreError),
}

impl From<StoreError> for InsertKeyError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Stores a new key and lists it under its consumer. The id index is
/// claimed first (`put_if_absent`), so a colliding id never overwrites
/// another key's entry.
pub async fn insert_key<P: Platform>(
    kv: &TimedKv<'_, P>,
    record: &KeyRecord,
) -> Result<(), InsertKeyError> {
    let by_id = format!("keys/by-id/{}", record.id);
    if !kv
        .put_if_absent(&by_id, Bytes::from(record.key_sha256.clone()), None)
        .await?
    {
        return Err(InsertKeyError::Taken);
    }
    let by_hash = format!("keys/by-hash/{}", record.key_sha256);
    if !kv.put_if_absent(&by_hash, encode(record)?, None).await? {
        // Our id entry points at someone else's record: take it back.
        let _ = kv.delete(&by_id).await;
        return Err(InsertKeyError::Taken);
    }
    let list_key = format!("consumers/{}/keys", record.consumer_id);
    let mut ids: Vec<String> = match kv.get(&list_key).await? {
        Some(bytes) => decode("key list", &bytes)?,
        None => Vec::new(),
    };
    ids.push(record.id.clone());
    kv.put(&list_key, encode(&ids)?, None).await?;
    Ok(())
}

pub async fn list_keys<P: Platform>(
    kv: &TimedKv<'_, P>,
    consumer_id: &str,
) -> Result<Vec<KeyRecord>, StoreError> {
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

/// A bounded least-recently-used map whose entries expire: the
/// in-instance caches of key, consumer and token lookups. At capacity the
/// least recently used entry goes (`lru` crate); an entry older than the
/// TTL reads as absent. Capacity or TTL 0 disables the cache.
pub struct TtlCache<V> {
    ttl_ms: u64,
    entries: Option<Mutex<LruCache<String, (V, u64)>>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl_ms: u64, capacity: usize) -> Self {
        let entries = NonZeroUsize::new(capacity)
            .filter(|_| ttl_ms > 0)
            .map(|capacity| Mutex::new(LruCache::new(capacity)));
        Self { ttl_ms, entries }
    }

    fn lock(&self) -> Option<std::sync::MutexGuard<'_, LruCache<String, (V, u64)>>> {
        self.entries
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn get(&self, key: &str, now_ms: u64) -> Option<V> {
        let mut entries = self.lock()?;
        match entries.get(key) {
            Some((value, at)) if now_ms.saturating_sub(*at) < self.ttl_ms => Some(value.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, key: String, value: V, now_ms: u64) {
        if let Some(mut entries) = self.lock() {
            entries.put(key, (value, now_ms));
        }
    }

    pub fn remove(&self, key: &str) {
        if let Some(mut entries) = self.lock() {
            entries.pop(key);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().map_or(0, |entries| entries.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn cache_evicts_the_least_recently_used() {
        let cache = TtlCache::new(1_000, 3);
        for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
            cache.insert(key.into(), i, 0);
        }
        // `a` is read (recently used), so `b` is the one to go.
        assert_eq!(cache.get("a", 1), Some(0));
        cache.insert("d".into(), 3, 2);
        assert_eq!(cache.get("b", 3), None, "least recently used evicted");
        assert_eq!(cache.get("a", 3), Some(0), "recently read entry kept");
        assert_eq!(cache.get("c", 3), Some(2));
        assert_eq!(cache.get("d", 3), Some(3));
        // Hot entries survive a stream of new ones.
        let cache = TtlCache::new(1_000, 100);
        for i in 0..100 {
            cache.insert(format!("k{i}"), i, 0);
        }
        for i in 0..50 {
            assert_eq!(cache.get(&format!("k{i}"), 1), Some(i));
        }
        for i in 100..150 {
            cache.insert(format!("k{i}"), i, 2);
        }
        let hot_kept = (0..50)
            .filter(|i| cache.get(&format!("k{i}"), 3).is_some())
            .count();
        assert_eq!(hot_kept, 50, "every recently read entry is kept");
        // A flood of one-off keys never grows it past its capacity.
        let cache = TtlCache::new(1_000, 3);
        for i in 0..10_000 {
            cache.insert(format!("flood-{i}"), i, 4);
        }
        assert_eq!(cache.len(), 3);
        let disabled = TtlCache::new(0, 10);
        disabled.insert("a".into(), 1, 0);
        assert_eq!(disabled.get("a", 0), None);
    }

    #[test]
    fn consumer_ids() {
        assert!(valid_consumer_id("team-a.prod_1"));
        assert!(!valid_consumer_id(""));
        assert!(!valid_consumer_id("a/b"));
        assert!(!valid_consumer_id(&"x".repeat(65)));
    }
}
