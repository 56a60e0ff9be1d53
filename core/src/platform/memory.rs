//! In-memory ports for local runs and tests. State lives in one instance:
//! limits are exact per process, not across Lambda instances or Worker
//! isolates (use the DynamoDB / Durable Object stores for that).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;

use super::{Clock, Consumed, KvStore, MaybeSend, QuotaStore, StoreError};

/// Entries are swept when the map grows past this many keys.
const SWEEP_THRESHOLD: usize = 10_000;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a counter half-written
    // (every update is a single assignment), so poisoning is safe to ignore.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    used: u64,
    expires_at_unix_ms: u64,
}

/// Atomic counters in a mutex-guarded map.
#[derive(Debug, Clone)]
pub struct MemoryQuotaStore<C> {
    clock: C,
    counters: Arc<Mutex<HashMap<String, Counter>>>,
}

impl<C: Clock> MemoryQuotaStore<C> {
    pub fn new(clock: C) -> Self {
        Self {
            clock,
            counters: Arc::default(),
        }
    }
}

impl<C: Clock> QuotaStore for MemoryQuotaStore<C> {
    async fn consume(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        expires_at_unix_ms: u64,
    ) -> Result<Consumed, StoreError> {
        let now = self.clock.now_unix_ms();
        let mut counters = lock(&self.counters);
        if counters.len() > SWEEP_THRESHOLD {
            counters.retain(|_, c| c.expires_at_unix_ms > now);
        }
        if amount == 0 {
            // A read: it creates nothing.
            let used = counters
                .get(key)
                .filter(|c| c.expires_at_unix_ms > now)
                .map_or(0, |c| c.used);
            return Ok(Consumed {
                admitted: used <= limit,
                used,
            });
        }
        let counter = counters.entry(key.to_owned()).or_insert(Counter {
            used: 0,
            expires_at_unix_ms,
        });
        if counter.expires_at_unix_ms <= now {
            *counter = Counter {
                used: 0,
                expires_at_unix_ms,
            };
        }
        // Past u64::MAX is over any limit (saturating would admit it and lose it).
        let Some(after) = counter.used.checked_add(amount).filter(|&a| a <= limit) else {
            return Ok(Consumed {
                admitted: false,
                used: counter.used,
            });
        };
        counter.used = after;
        counter.expires_at_unix_ms = counter.expires_at_unix_ms.max(expires_at_unix_ms);
        Ok(Consumed {
            admitted: true,
            used: after,
        })
    }

    async fn refund(&self, key: &str, amount: u64) -> Result<u64, StoreError> {
        let now = self.clock.now_unix_ms();
        let mut counters = lock(&self.counters);
        // An expired counter is gone, whether or not it was swept.
        if counters
            .get(key)
            .is_some_and(|c| c.expires_at_unix_ms <= now)
        {
            counters.remove(key);
        }
        Ok(counters.get_mut(key).map_or(0, |counter| {
            counter.used = counter.used.saturating_sub(amount);
            counter.used
        }))
    }
}

#[derive(Debug, Clone)]
struct KvEntry {
    value: Bytes,
    expires_at_unix_ms: Option<u64>,
}

/// A key-value map with optional per-entry TTL.
#[derive(Debug, Clone)]
pub struct MemoryKv<C> {
    clock: C,
    entries: Arc<Mutex<HashMap<String, KvEntry>>>,
}

impl<C: Clock> MemoryKv<C> {
    pub fn new(clock: C) -> Self {
        Self {
            clock,
            entries: Arc::default(),
        }
    }
}

impl<C: Clock> KvStore for MemoryKv<C> {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let now = self.clock.now_unix_ms();
        let mut entries = lock(&self.entries);
        match entries.get(key) {
            Some(entry) if entry.expires_at_unix_ms.is_some_and(|at| at <= now) => {
                entries.remove(key);
                Ok(None)
            }
            Some(entry) => Ok(Some(entry.value.clone())),
            None => Ok(None),
        }
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), StoreError> {
        let now = self.clock.now_unix_ms();
        let expires_at_unix_ms = ttl.map(|ttl| now.saturating_add(duration_ms(ttl)));
        let mut entries = lock(&self.entries);
        if entries.len() > SWEEP_THRESHOLD {
            entries.retain(|_, e| e.expires_at_unix_ms.is_none_or(|at| at > now));
        }
        entries.insert(
            key.to_owned(),
            KvEntry {
                value,
                expires_at_unix_ms,
            },
        );
        Ok(())
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now_unix_ms();
        let expires_at_unix_ms = ttl.map(|ttl| now.saturating_add(duration_ms(ttl)));
        // One lock for the check and the write: atomic.
        let mut entries = lock(&self.entries);
        let live = entries
            .get(key)
            .is_some_and(|e| e.expires_at_unix_ms.is_none_or(|at| at > now));
        if live {
            return Ok(false);
        }
        entries.insert(
            key.to_owned(),
            KvEntry {
                value,
                expires_at_unix_ms,
            },
        );
        Ok(true)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        lock(&self.entries).remove(key);
        Ok(())
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A clock for tests: starts at a fixed instant; a `sleep`, when polled,
/// advances it and completes at once, so timeouts are deterministic and
/// instant.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now_unix_ms: Arc<AtomicU64>,
    yield_first: Arc<std::sync::atomic::AtomicBool>,
}

impl ManualClock {
    pub fn new(now_unix_ms: u64) -> Self {
        Self {
            now_unix_ms: Arc::new(AtomicU64::new(now_unix_ms)),
            yield_first: Arc::default(),
        }
    }

    /// When on, a `sleep` returns `Pending` once before it fires, so a
    /// future that is merely yielding (not hung) wins its race against a
    /// timeout (tests that interleave concurrent requests).
    pub fn yield_before_timers(&self, on: bool) {
        self.yield_first.store(on, Ordering::SeqCst);
    }

    pub fn advance(&self, duration: Duration) {
        self.now_unix_ms
            .fetch_add(duration_ms(duration), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix_ms(&self) -> u64 {
        self.now_unix_ms.load(Ordering::SeqCst)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + MaybeSend + use<> {
        // Time moves when the sleep is polled, not when it is created: a
        // timeout raced against an immediately ready future never fires.
        let clock = self.clone();
        let mut yield_first = self.yield_first.load(Ordering::SeqCst);
        std::future::poll_fn(move |cx| {
            if yield_first {
                yield_first = false;
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            clock.advance(duration);
            std::task::Poll::Ready(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::quota_store_suite;
    use futures_executor::block_on;

    fn store() -> (ManualClock, MemoryQuotaStore<ManualClock>) {
        let clock = ManualClock::new(1_000_000);
        (clock.clone(), MemoryQuotaStore::new(clock))
    }

    #[test]
    fn memory_quota_store_passes_the_store_suite() {
        let (_, store) = store();
        assert_eq!(block_on(quota_store_suite::run_all(&store, "suite")), 7);
    }

    #[test]
    fn expired_counter_starts_over() {
        let (clock, store) = store();
        let expires = clock.now_unix_ms() + 1_000;
        assert!(
            block_on(store.consume("k", 5, 5, expires))
                .unwrap()
                .admitted
        );
        assert!(
            !block_on(store.consume("k", 1, 5, expires))
                .unwrap()
                .admitted
        );
        clock.advance(Duration::from_millis(1_000));
        let fresh = block_on(store.consume("k", 1, 5, expires + 1_000)).unwrap();
        assert_eq!(
            fresh,
            Consumed {
                admitted: true,
                used: 1
            }
        );
    }

    #[test]
    fn concurrent_consumers_never_exceed_limit() {
        let (_, store) = store();
        let admitted = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..200)
                .map(|_| {
                    let store = &store;
                    scope.spawn(move || block_on(store.consume("hot", 1, 50, u64::MAX)).unwrap())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().admitted)
                .filter(|admitted| *admitted)
                .count()
        });
        assert_eq!(admitted, 50);
    }

    #[test]
    fn memory_kv_passes_the_kv_suite() {
        let kv = MemoryKv::new(ManualClock::new(0));
        block_on(crate::testing::kv_store_suite::put_get_overwrite_delete(
            &kv, "k",
        ));
        block_on(crate::testing::kv_store_suite::put_if_absent_never_overwrites(&kv, "c"));
        block_on(crate::testing::kv_store_suite::put_if_absent_has_one_winner(&kv, "w", 50));
    }

    #[test]
    fn memory_kv_put_if_absent_is_atomic_across_threads() {
        let kv = MemoryKv::new(ManualClock::new(0));
        let wins = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..64)
                .map(|i| {
                    let kv = &kv;
                    scope.spawn(move || {
                        block_on(kv.put_if_absent("hot", Bytes::from(format!("{i}")), None))
                            .unwrap()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|won| *won)
                .count()
        });
        assert_eq!(wins, 1);
    }

    #[test]
    fn put_if_absent_takes_an_expired_key() {
        let clock = ManualClock::new(0);
        let kv = MemoryKv::new(clock.clone());
        let ttl = Some(Duration::from_secs(1));
        assert!(block_on(kv.put_if_absent("k", Bytes::from_static(b"a"), ttl)).unwrap());
        assert!(!block_on(kv.put_if_absent("k", Bytes::from_static(b"b"), ttl)).unwrap());
        clock.advance(Duration::from_secs(1));
        assert!(block_on(kv.put_if_absent("k", Bytes::from_static(b"c"), None)).unwrap());
        assert_eq!(
            block_on(kv.get("k")).unwrap(),
            Some(Bytes::from_static(b"c"))
        );
    }

    #[test]
    fn kv_entries_expire() {
        let clock = ManualClock::new(0);
        let kv = MemoryKv::new(clock.clone());
        block_on(kv.put("k", Bytes::from_static(b"v"), Some(Duration::from_secs(1)))).unwrap();
        assert_eq!(
            block_on(kv.get("k")).unwrap(),
            Some(Bytes::from_static(b"v"))
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(block_on(kv.get("k")).unwrap(), None);
        block_on(kv.put("p", Bytes::from_static(b"v"), None)).unwrap();
        block_on(kv.delete("p")).unwrap();
        assert_eq!(block_on(kv.get("p")).unwrap(), None);
    }
}
