//! Test doubles: an in-memory platform with a manual clock and a scriptable
//! upstream, so `Gateway::handle` can be tested without sockets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{Request, Response};

use crate::body::Body;
use crate::platform::memory::{ManualClock, MemoryKv, MemoryQuotaStore};
use crate::platform::{HttpClient, HttpClientError, Platform};

/// What the fake upstream does with one request.
pub enum FakeReply {
    Respond(Response<Body>),
    Fail(HttpClientError),
    /// Never answers (for timeout tests).
    Hang,
}

type Script = dyn Fn(&Request<Bytes>) -> FakeReply + Send + Sync;

/// An upstream whose behaviour is a closure; it records every request.
#[derive(Clone)]
pub struct FakeHttp {
    script: Arc<Script>,
    requests: Arc<Mutex<Vec<Request<Bytes>>>>,
    record: bool,
}

impl FakeHttp {
    pub fn new(script: impl Fn(&Request<Bytes>) -> FakeReply + Send + Sync + 'static) -> Self {
        Self {
            script: Arc::new(script),
            requests: Arc::default(),
            record: true,
        }
    }

    /// Like [`FakeHttp::new`] but keeps no requests (for benchmarks).
    pub fn unrecorded(
        script: impl Fn(&Request<Bytes>) -> FakeReply + Send + Sync + 'static,
    ) -> Self {
        Self {
            record: false,
            ..Self::new(script)
        }
    }

    /// The requests received so far (bodies included).
    pub fn requests(&self) -> Vec<Request<Bytes>> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|r| {
                let mut copy = Request::new(r.body().clone());
                *copy.method_mut() = r.method().clone();
                *copy.uri_mut() = r.uri().clone();
                *copy.headers_mut() = r.headers().clone();
                copy
            })
            .collect()
    }
}

impl HttpClient for FakeHttp {
    async fn send(&self, request: Request<Bytes>) -> Result<Response<Body>, HttpClientError> {
        let reply = (self.script)(&request);
        if self.record {
            self.requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(request);
        }
        match reply {
            FakeReply::Respond(response) => Ok(response),
            FakeReply::Fail(error) => Err(error),
            FakeReply::Hang => std::future::pending().await,
        }
    }
}

/// In-memory ports around a [`FakeHttp`].
pub struct TestPlatform {
    pub http: FakeHttp,
    pub clock: ManualClock,
    pub quota: MemoryQuotaStore<ManualClock>,
    pub kv: MemoryKv<ManualClock>,
    random_counter: AtomicU64,
}

impl TestPlatform {
    pub fn new(http: FakeHttp) -> Self {
        let clock = ManualClock::new(1_700_000_000_000);
        Self {
            http,
            quota: MemoryQuotaStore::new(clock.clone()),
            kv: MemoryKv::new(clock.clone()),
            clock,
            random_counter: AtomicU64::new(1),
        }
    }
}

impl Platform for TestPlatform {
    type Http = FakeHttp;
    type Quota = MemoryQuotaStore<ManualClock>;
    type Kv = MemoryKv<ManualClock>;
    type Clock = ManualClock;

    fn http(&self) -> &FakeHttp {
        &self.http
    }
    fn quota(&self) -> &Self::Quota {
        &self.quota
    }
    fn kv(&self) -> &Self::Kv {
        &self.kv
    }
    fn clock(&self) -> &ManualClock {
        &self.clock
    }
    /// Deterministic, distinct bytes per call (not random: tests only).
    fn fill_random(&self, dest: &mut [u8]) {
        let n = self.random_counter.fetch_add(1, Ordering::SeqCst);
        for (i, byte) in dest.iter_mut().enumerate() {
            *byte = n.to_le_bytes()[i % 8] ^ (i as u8);
        }
    }
}

/// The store suite every [`QuotaStore`] implementation must pass. Adapters
/// call it against their own stores (DynamoDB emulator, Durable Objects).
#[allow(clippy::expect_used)] // a failed store call is a failed test
pub mod quota_store_suite {
    use crate::platform::{Consumed, QuotaStore};

    /// Consume admits up to the limit and refuses past it, without changing
    /// the counter on refusal.
    pub async fn consume_respects_limit(store: &impl QuotaStore, key: &str) {
        let far = u64::MAX / 2;
        let first = store.consume(key, 3, 5, far).await.expect("consume");
        assert_eq!(
            first,
            Consumed {
                admitted: true,
                used: 3
            }
        );
        let second = store.consume(key, 2, 5, far).await.expect("consume");
        assert_eq!(
            second,
            Consumed {
                admitted: true,
                used: 5
            }
        );
        let refused = store.consume(key, 1, 5, far).await.expect("consume");
        assert_eq!(
            refused,
            Consumed {
                admitted: false,
                used: 5
            }
        );
    }

    /// Refund gives capacity back and never goes below zero.
    pub async fn refund_releases_capacity(store: &impl QuotaStore, key: &str) {
        let far = u64::MAX / 2;
        store.consume(key, 4, 4, far).await.expect("consume");
        assert_eq!(store.refund(key, 3).await.expect("refund"), 1);
        let again = store.consume(key, 3, 4, far).await.expect("consume");
        assert_eq!(
            again,
            Consumed {
                admitted: true,
                used: 4
            }
        );
        assert_eq!(store.refund(key, 100).await.expect("refund"), 0);
    }

    /// A request larger than the whole limit is refused even on an empty key.
    pub async fn oversized_request_refused(store: &impl QuotaStore, key: &str) {
        let far = u64::MAX / 2;
        let refused = store.consume(key, 11, 10, far).await.expect("consume");
        assert_eq!(
            refused,
            Consumed {
                admitted: false,
                used: 0
            }
        );
    }
}

/// The suite every [`crate::platform::KvStore`] implementation must pass.
#[allow(clippy::expect_used)] // a failed store call is a failed test
pub mod kv_store_suite {
    use bytes::Bytes;

    use crate::platform::KvStore;

    /// Put, read back, overwrite, delete; a missing key reads as `None`.
    pub async fn put_get_overwrite_delete(store: &impl KvStore, key: &str) {
        assert_eq!(
            store.get(key).await.expect("get"),
            None,
            "fresh key must be absent"
        );
        store
            .put(key, Bytes::from_static(b"one"), None)
            .await
            .expect("put");
        assert_eq!(
            store.get(key).await.expect("get"),
            Some(Bytes::from_static(b"one"))
        );
        store
            .put(key, Bytes::from_static(b"\x00two\xff"), None)
            .await
            .expect("put");
        assert_eq!(
            store.get(key).await.expect("get"),
            Some(Bytes::from_static(b"\x00two\xff"))
        );
        store.delete(key).await.expect("delete");
        assert_eq!(store.get(key).await.expect("get"), None);
        store
            .delete(key)
            .await
            .expect("deleting a missing key is not an error");
    }
}
