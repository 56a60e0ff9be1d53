//! Test doubles: an in-memory platform with a manual clock and a scriptable
//! upstream, so `Gateway::handle` can be tested without sockets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{Request, Response};

use crate::body::Body;
use crate::platform::memory::{ManualClock, MemoryKv, MemoryQuotaStore};
use crate::platform::{HttpClient, HttpClientError, Platform};

/// A request body that never ends: 1 KiB data frames, forever, with no
/// size hint; it counts the bytes handed out, so a test can check that a
/// body was never read (or read only up to a limit).
#[derive(Debug, Clone, Default)]
pub struct EndlessBody {
    read: Arc<AtomicU64>,
}

impl EndlessBody {
    pub const FRAME: usize = 1024;

    /// Bytes handed out so far (shared by clones).
    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::SeqCst)
    }
}

impl http_body::Body for EndlessBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.read.fetch_add(Self::FRAME as u64, Ordering::SeqCst);
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
            &[b'x'; Self::FRAME],
        )))))
    }
}

/// Calls the admin API (`/admin{path}`, `Authorization: Bearer
/// {admin_key}`) on `gateway` and blocks for the answer: its status and
/// JSON body (`Null` when the body is not JSON).
#[allow(clippy::expect_used)] // a request built from a path is a test's own input
pub fn admin_call<P: Platform>(
    gateway: &crate::Gateway<P>,
    admin_key: &str,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> (http::StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(method)
        .uri(format!("/admin{path}"))
        .header("authorization", format!("Bearer {admin_key}"))
        .body(Bytes::from(body.to_string()))
        .expect("an admin request");
    let (parts, body) = futures_executor::block_on(gateway.handle(request)).into_parts();
    let bytes = futures_executor::block_on(body.collect(usize::MAX)).unwrap_or_default();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (parts.status, json)
}

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

/// The in-memory quota store with an outage switch (fail-open/closed
/// tests) and a count of the calls made to it (lease tests).
pub struct SwitchableQuota {
    pub inner: MemoryQuotaStore<ManualClock>,
    pub failing: std::sync::atomic::AtomicBool,
    calls: AtomicU64,
}

impl SwitchableQuota {
    /// How many `consume` and `refund` calls this platform made.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl crate::platform::QuotaStore for SwitchableQuota {
    async fn consume(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        expires_at_unix_ms: u64,
    ) -> Result<crate::platform::Consumed, crate::platform::StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(crate::platform::StoreError(
                "store is down (test switch)".into(),
            ));
        }
        self.inner
            .consume(key, amount, limit, expires_at_unix_ms)
            .await
    }

    async fn refund(&self, key: &str, amount: u64) -> Result<u64, crate::platform::StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(crate::platform::StoreError(
                "store is down (test switch)".into(),
            ));
        }
        self.inner.refund(key, amount).await
    }
}

/// The in-memory KV with test switches: hang every call (timeout tests),
/// yield once before each read (so concurrent requests interleave their
/// read-then-write), and a count of reads per key prefix.
pub struct SwitchableKv {
    pub inner: MemoryKv<ManualClock>,
    pub hanging: std::sync::atomic::AtomicBool,
    pub yield_on_get: std::sync::atomic::AtomicBool,
    gets: Mutex<Vec<String>>,
}

impl SwitchableKv {
    /// How many reads of keys starting with `prefix` there were.
    pub fn reads(&self, prefix: &str) -> usize {
        self.gets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|k| k.starts_with(prefix))
            .count()
    }

    async fn gate(&self) {
        if self.hanging.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
}

/// Returns `Pending` once (waking itself), then `Ready`.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}

impl crate::platform::KvStore for SwitchableKv {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, crate::platform::StoreError> {
        self.gate().await;
        self.gets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key.to_owned());
        let value = self.inner.get(key).await;
        if self.yield_on_get.load(Ordering::SeqCst) {
            // After the read: a concurrent writer can slip in between this
            // read and whatever the caller writes next.
            yield_once().await;
        }
        value
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<std::time::Duration>,
    ) -> Result<(), crate::platform::StoreError> {
        self.gate().await;
        self.inner.put(key, value, ttl).await
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<std::time::Duration>,
    ) -> Result<bool, crate::platform::StoreError> {
        self.gate().await;
        self.inner.put_if_absent(key, value, ttl).await
    }

    async fn delete(&self, key: &str) -> Result<(), crate::platform::StoreError> {
        self.gate().await;
        self.inner.delete(key).await
    }
}

/// In-memory ports around a [`FakeHttp`].
pub struct TestPlatform {
    pub http: FakeHttp,
    pub clock: ManualClock,
    pub quota: SwitchableQuota,
    pub kv: SwitchableKv,
    random_counter: AtomicU64,
    background: Mutex<Vec<crate::platform::BackgroundTask>>,
}

impl TestPlatform {
    /// Runs the tasks spawned so far (tests drive background work
    /// explicitly, outside any other executor).
    pub fn run_background(&self) -> usize {
        let tasks: Vec<_> = std::mem::take(
            &mut *self
                .background
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let count = tasks.len();
        for task in tasks {
            futures_executor::block_on(task);
        }
        count
    }
}

impl TestPlatform {
    pub fn new(http: FakeHttp) -> Self {
        let clock = ManualClock::new(1_700_000_000_000);
        Self::with_stores(
            http,
            clock.clone(),
            MemoryQuotaStore::new(clock.clone()),
            MemoryKv::new(clock),
        )
    }

    /// Another instance over the same quota store, KV and clock (several
    /// gateway instances sharing DynamoDB or Durable Objects), with its own
    /// upstream, background tasks and store-call count.
    pub fn sharing_stores(&self, http: FakeHttp) -> Self {
        let instance = Self::with_stores(
            http,
            self.clock.clone(),
            self.quota.inner.clone(),
            self.kv.inner.clone(),
        );
        // Distinct "random" bytes from every instance (request ids, keys).
        let base = self.random_counter.fetch_add(1 << 32, Ordering::SeqCst) + (1 << 32);
        instance.random_counter.store(base, Ordering::SeqCst);
        instance
    }

    fn with_stores(
        http: FakeHttp,
        clock: ManualClock,
        quota: MemoryQuotaStore<ManualClock>,
        kv: MemoryKv<ManualClock>,
    ) -> Self {
        Self {
            http,
            quota: SwitchableQuota {
                inner: quota,
                failing: std::sync::atomic::AtomicBool::new(false),
                calls: AtomicU64::new(0),
            },
            kv: SwitchableKv {
                inner: kv,
                hanging: std::sync::atomic::AtomicBool::new(false),
                yield_on_get: std::sync::atomic::AtomicBool::new(false),
                gets: Mutex::default(),
            },
            clock,
            random_counter: AtomicU64::new(1),
            background: Mutex::default(),
        }
    }
}

impl Platform for TestPlatform {
    type Http = FakeHttp;
    type Quota = SwitchableQuota;
    type Kv = SwitchableKv;
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
    fn spawn(&self, task: crate::platform::BackgroundTask) {
        self.background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task);
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

    /// A counter whose expiry has passed counts from zero again, for
    /// consumes, zero-amount reads and refunds alike (however lazily the
    /// store deletes it).
    pub async fn expired_counter_restarts(store: &impl QuotaStore, key: &str) {
        let far = u64::MAX / 2;
        // Expired at 1 ms after the epoch: long past for every store clock.
        let past = 1;
        let first = store.consume(key, 4, 10, past).await.expect("consume");
        assert_eq!(first.used, 4, "a fresh counter starts at zero");
        assert_eq!(
            store
                .consume(key, 0, u64::MAX, far)
                .await
                .expect("read")
                .used,
            0,
            "an expired counter reads as zero"
        );
        assert_eq!(
            store.refund(key, 1).await.expect("refund"),
            0,
            "a refund on an expired counter finds nothing to refund"
        );
        let fresh = store.consume(key, 7, 10, far).await.expect("consume");
        assert_eq!(
            fresh,
            Consumed {
                admitted: true,
                used: 7
            },
            "the expired 4 no longer count against the limit"
        );
        // Full up to the limit: the expired count did not come back.
        let refused = store.consume(key, 4, 10, far).await.expect("consume");
        assert_eq!(
            refused,
            Consumed {
                admitted: false,
                used: 7
            }
        );
    }

    /// A refund of a key that was never consumed returns 0 and leaves no
    /// debt behind: the next consume sees an empty counter.
    pub async fn refund_of_a_missing_key(store: &impl QuotaStore, key: &str) {
        let far = u64::MAX / 2;
        assert_eq!(store.refund(key, 5).await.expect("refund"), 0);
        let consumed = store.consume(key, 3, 3, far).await.expect("consume");
        assert_eq!(
            consumed,
            Consumed {
                admitted: true,
                used: 3
            }
        );
        assert_eq!(
            store.consume(key, 1, 3, far).await.expect("consume"),
            Consumed {
                admitted: false,
                used: 3
            }
        );
    }

    /// Counters are exact above 2^53 (no f64 on the way) and up to
    /// `u64::MAX`.
    pub async fn values_above_2_pow_53_are_exact(store: &impl QuotaStore, key: &str) {
        let far = u64::MAX / 2;
        let big = (1u64 << 53) + 1;
        let first = store
            .consume(key, big, u64::MAX, far)
            .await
            .expect("consume");
        assert_eq!(first.used, big);
        assert_eq!(
            store
                .consume(key, 2, u64::MAX, far)
                .await
                .expect("consume")
                .used,
            big + 2
        );
        assert_eq!(store.refund(key, 1).await.expect("refund"), big + 1);
        assert_eq!(
            store
                .consume(key, 0, u64::MAX, far)
                .await
                .expect("read")
                .used,
            big + 1
        );
        let rest = u64::MAX - (big + 1);
        assert_eq!(
            store
                .consume(key, rest, u64::MAX, far)
                .await
                .expect("consume"),
            Consumed {
                admitted: true,
                used: u64::MAX
            }
        );
        assert_eq!(
            store.consume(key, 1, u64::MAX, far).await.expect("consume"),
            Consumed {
                admitted: false,
                used: u64::MAX
            }
        );
    }

    /// A zero-amount consume reads the counter: 0 on a missing key, the
    /// current value otherwise, `admitted` saying whether it is within
    /// `limit`; it never changes the counter.
    pub async fn zero_amount_reads(store: &impl QuotaStore, key: &str) {
        let far = u64::MAX / 2;
        assert_eq!(
            store.consume(key, 0, 0, far).await.expect("read"),
            Consumed {
                admitted: true,
                used: 0
            }
        );
        store.consume(key, 3, 10, far).await.expect("consume");
        assert_eq!(
            store.consume(key, 0, u64::MAX, far).await.expect("read"),
            Consumed {
                admitted: true,
                used: 3
            }
        );
        assert_eq!(
            store.consume(key, 0, 2, far).await.expect("read"),
            Consumed {
                admitted: false,
                used: 3
            }
        );
        assert_eq!(
            store.consume(key, 7, 10, far).await.expect("consume"),
            Consumed {
                admitted: true,
                used: 10
            },
            "reads did not add anything"
        );
    }

    /// Every case above, each on its own key below `prefix`; returns how
    /// many ran. This is what each store's test calls.
    pub async fn run_all(store: &impl QuotaStore, prefix: &str) -> usize {
        consume_respects_limit(store, &format!("{prefix}-limit")).await;
        refund_releases_capacity(store, &format!("{prefix}-refund")).await;
        oversized_request_refused(store, &format!("{prefix}-oversized")).await;
        expired_counter_restarts(store, &format!("{prefix}-expiry")).await;
        refund_of_a_missing_key(store, &format!("{prefix}-missing")).await;
        values_above_2_pow_53_are_exact(store, &format!("{prefix}-big")).await;
        zero_amount_reads(store, &format!("{prefix}-zero")).await;
        7
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

    /// `put_if_absent` writes a missing key once and never overwrites it,
    /// neither a value it wrote nor one a plain `put` wrote; after a
    /// delete the key can be claimed again.
    pub async fn put_if_absent_never_overwrites(store: &impl KvStore, key: &str) {
        assert!(store
            .put_if_absent(key, Bytes::from_static(b"first"), None)
            .await
            .expect("put_if_absent"));
        assert!(!store
            .put_if_absent(key, Bytes::from_static(b"second"), None)
            .await
            .expect("put_if_absent"));
        assert_eq!(
            store.get(key).await.expect("get"),
            Some(Bytes::from_static(b"first")),
            "the first value must survive"
        );
        store.delete(key).await.expect("delete");
        assert!(store
            .put_if_absent(key, Bytes::from_static(b"third"), None)
            .await
            .expect("put_if_absent after delete"));
        assert_eq!(
            store.get(key).await.expect("get"),
            Some(Bytes::from_static(b"third"))
        );
        let plain = format!("{key}-plain");
        store
            .put(&plain, Bytes::from_static(b"plain"), None)
            .await
            .expect("put");
        assert!(!store
            .put_if_absent(&plain, Bytes::from_static(b"other"), None)
            .await
            .expect("put_if_absent over a plain put"));
        assert_eq!(
            store.get(&plain).await.expect("get"),
            Some(Bytes::from_static(b"plain"))
        );
        store.delete(key).await.expect("delete");
        store.delete(&plain).await.expect("delete");
    }

    /// `n` concurrent `put_if_absent` calls on one key: exactly one wins,
    /// and the stored value is the winner's.
    pub async fn put_if_absent_has_one_winner(store: &impl KvStore, key: &str, n: usize) {
        let calls = (0..n).map(|i| async move {
            let value = Bytes::from(format!("writer-{i}"));
            let won = store
                .put_if_absent(key, value.clone(), None)
                .await
                .expect("put_if_absent");
            (won, value)
        });
        let results = futures_util::future::join_all(calls).await;
        let winners: Vec<&Bytes> = results
            .iter()
            .filter(|(won, _)| *won)
            .map(|(_, value)| value)
            .collect();
        assert_eq!(winners.len(), 1, "exactly one writer must win");
        assert_eq!(
            store.get(key).await.expect("get").as_ref(),
            Some(winners[0])
        );
        store.delete(key).await.expect("delete");
    }
}

/// Test tokens: the repository's test key pairs (`tests/fixtures/jwt/`) and
/// helpers to sign, forge and publish them.
#[allow(clippy::expect_used)] // fixtures are known-good
pub mod jwt_fixtures {
    use base64::Engine;
    use jsonwebtoken::{jwk::Jwk, Algorithm, EncodingKey, Header};
    use serde_json::{json, Value};

    pub const RSA1_PRIVATE: &str = include_str!("../../tests/fixtures/jwt/rsa1-private.pem");
    pub const RSA1_PUBLIC: &str = include_str!("../../tests/fixtures/jwt/rsa1-public.pem");
    pub const RSA2_PRIVATE: &str = include_str!("../../tests/fixtures/jwt/rsa2-private.pem");
    pub const RSA2_PUBLIC: &str = include_str!("../../tests/fixtures/jwt/rsa2-public.pem");
    pub const EC256_PRIVATE: &str = include_str!("../../tests/fixtures/jwt/ec256-private.pem");
    pub const EC256_PUBLIC: &str = include_str!("../../tests/fixtures/jwt/ec256-public.pem");
    pub const ED25519_PRIVATE: &str = include_str!("../../tests/fixtures/jwt/ed25519-private.pem");
    pub const ED25519_PUBLIC: &str = include_str!("../../tests/fixtures/jwt/ed25519-public.pem");
    /// The HS256 secret the test configs reference.
    pub const HS_SECRET: &str = "test-only-shared-secret-0123456789abcdef";

    fn encoding_key(alg: Algorithm, private_pem: &str) -> EncodingKey {
        match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                EncodingKey::from_secret(private_pem.as_bytes())
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                EncodingKey::from_ec_pem(private_pem.as_bytes()).expect("ec pem")
            }
            Algorithm::EdDSA => EncodingKey::from_ed_pem(private_pem.as_bytes()).expect("ed pem"),
            _ => EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("rsa pem"),
        }
    }

    /// Signs `claims` with `alg`; for HS* `key` is the secret itself.
    pub fn sign(alg: Algorithm, key: &str, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &encoding_key(alg, key)).expect("sign")
    }

    /// Standard claims for `sub`, valid from `now_s` for an hour.
    pub fn claims(iss: &str, aud: &str, sub: &str, now_s: u64) -> Value {
        json!({"iss": iss, "aud": aud, "sub": sub, "iat": now_s, "nbf": now_s, "exp": now_s + 3600})
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An unsigned `alg: none` token.
    pub fn alg_none(kid: &str, claims: &Value) -> String {
        let header = json!({"alg": "none", "typ": "JWT", "kid": kid});
        format!(
            "{}.{}.",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        )
    }

    /// `token` with its payload replaced by `claims`, signature kept.
    pub fn tampered(token: &str, claims: &Value) -> String {
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = b64(claims.to_string().as_bytes());
        parts.join(".")
    }

    /// A JWKS document publishing the public halves of `keys` (alg, kid, private PEM).
    pub fn jwks(keys: &[(Algorithm, &str, &str)]) -> String {
        let keys: Vec<Value> = keys
            .iter()
            .map(|(alg, kid, private_pem)| {
                let mut jwk =
                    Jwk::from_encoding_key(&encoding_key(*alg, private_pem), *alg).expect("jwk");
                jwk.common.key_id = Some((*kid).to_owned());
                serde_json::to_value(jwk).expect("jwk json")
            })
            .collect();
        json!({ "keys": keys }).to_string()
    }
}
