//! Ports: the small traits through which the core reaches the outside world.
//!
//! Each runtime adapter implements them (reqwest + DynamoDB on Lambda,
//! `worker::Fetch` + KV + Durable Objects on Workers); [`memory`] holds the
//! in-memory implementations used for local runs and tests.
//!
//! Async methods return `impl Future + MaybeSend`: `Send` on native targets,
//! where Lambda's tokio runtime moves futures across threads, and no bound on
//! wasm32, where JS futures are `!Send`. Implementations write `async fn`.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::body::Body;

pub mod memory;

pub use crate::util::{BackgroundTask, MaybeSend, MaybeSync};

/// Runs `future` until it completes or `timeout` passes on `clock`; `None`
/// on timeout. (A plain function returning the combined future: an `async`
/// wrapper here would move `future` once more per call — measured.)
pub fn with_timeout<C: Clock, F: Future>(
    clock: &C,
    timeout: Duration,
    future: F,
) -> impl Future<Output = Option<F::Output>> + use<C, F> {
    crate::util::with_timeout(clock.sleep(timeout), future)
}

/// The `KvStore` port with a deadline on every call: a store that hangs
/// fails with a [`StoreError`] after `timeout` (on the platform's clock)
/// instead of holding the request. Every core use of the KV goes through
/// it; callers map its errors to 503 (`store_unavailable`), failing closed.
pub struct TimedKv<'a, P: Platform> {
    platform: &'a P,
    timeout: Duration,
}

impl<'a, P: Platform> TimedKv<'a, P> {
    pub fn new(platform: &'a P, timeout: Duration) -> Self {
        Self { platform, timeout }
    }

    async fn timed<T>(
        &self,
        op: &str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        with_timeout(self.platform.clock(), self.timeout, call)
            .await
            .unwrap_or_else(|| {
                Err(StoreError(format!(
                    "kv {op} timed out after {} ms",
                    crate::util::duration_ms(self.timeout)
                )))
            })
    }

    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.timed("get", self.platform.kv().get(key)).await
    }

    pub async fn put(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.timed("put", self.platform.kv().put(key, value, ttl))
            .await
    }

    pub async fn put_if_absent(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.timed(
            "put_if_absent",
            self.platform.kv().put_if_absent(key, value, ttl),
        )
        .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.timed("delete", self.platform.kv().delete(key)).await
    }
}

/// The platform's clock behind an `Arc`, so it can move into streams that
/// outlive the request handler (paced mock streams).
pub struct PlatformClock<P>(std::sync::Arc<P>);

impl<P> PlatformClock<P> {
    pub fn new(platform: std::sync::Arc<P>) -> Self {
        Self(platform)
    }
}

impl<P> Clone for PlatformClock<P> {
    fn clone(&self) -> Self {
        Self(std::sync::Arc::clone(&self.0))
    }
}

impl<P: Platform> Clock for PlatformClock<P> {
    fn now_unix_ms(&self) -> u64 {
        self.0.clock().now_unix_ms()
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + MaybeSend + use<P> {
        self.0.clock().sleep(duration)
    }
}

/// The bundle of ports one runtime provides. `Gateway<P>` is generic over it.
pub trait Platform: MaybeSend + MaybeSync + 'static {
    type Http: HttpClient;
    type Quota: QuotaStore;
    type Kv: KvStore;
    type Clock: Clock;

    fn http(&self) -> &Self::Http;
    fn quota(&self) -> &Self::Quota;
    fn kv(&self) -> &Self::Kv;
    fn clock(&self) -> &Self::Clock;
    /// Fills `dest` with cryptographically secure random bytes (request ids,
    /// generated API keys).
    fn fill_random(&self, dest: &mut [u8]);
    /// Runs `task` to completion in the background (tokio task, Workers
    /// `waitUntil`-style local task).
    fn spawn(&self, task: BackgroundTask);
}

/// Sends one request upstream and returns the response with a streaming body.
///
/// Implementations must not follow redirects, must not decompress bodies, and
/// must return non-2xx responses as `Ok` (status handling is the core's job).
/// Timeouts are applied by the core around `send`.
pub trait HttpClient: MaybeSend + MaybeSync + 'static {
    fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> impl Future<Output = Result<http::Response<Body>, HttpClientError>> + MaybeSend + '_;
}

/// Why an upstream call failed before a response arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpClientErrorKind {
    /// DNS, TCP or TLS failure: the upstream could not be reached.
    Connect,
    /// The client's own timeout fired.
    Timeout,
    /// Anything else (malformed response, protocol error).
    Other,
}

/// An upstream transport error. `message` is for logs only, never for clients.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct HttpClientError {
    pub kind: HttpClientErrorKind,
    pub message: String,
}

impl HttpClientError {
    pub fn new(kind: HttpClientErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Wall-clock time and timers. Never use `std::time::{Instant, SystemTime}::now`
/// in the core: they panic on wasm32-unknown-unknown.
pub trait Clock: MaybeSend + MaybeSync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_unix_ms(&self) -> u64;
    /// Completes after `duration`. Used for timeouts and paced mock streams.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + MaybeSend + use<Self>;
}

/// Result of an atomic [`QuotaStore::consume`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumed {
    /// Whether `amount` was added (the counter stayed within `limit`).
    pub admitted: bool,
    /// The counter value after the call (unchanged when not admitted).
    pub used: u64,
}

/// A store failure (unreachable, throttled, malformed state). Quota policy
/// decides whether to fail open or closed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store error: {0}")]
pub struct StoreError(pub String);

/// Atomic counters for rate limits and budgets.
///
/// The core computes the counter key (which already names the window) and the
/// expiry; the store only guarantees atomicity: concurrent `consume` calls on
/// one key never admit more than `limit` in total.
pub trait QuotaStore: MaybeSend + MaybeSync + 'static {
    /// Adds `amount` to `key` if the result stays `<= limit`; otherwise leaves
    /// it unchanged. The counter may be dropped after `expires_at_unix_ms`.
    fn consume<'a>(
        &'a self,
        key: &'a str,
        amount: u64,
        limit: u64,
        expires_at_unix_ms: u64,
    ) -> impl Future<Output = Result<Consumed, StoreError>> + MaybeSend + 'a;

    /// Subtracts `amount` from `key` (saturating at zero): settles a reservation.
    fn refund<'a>(
        &'a self,
        key: &'a str,
        amount: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + MaybeSend + 'a;
}

/// A key-value store: hashed API keys, cached responses, JWKS.
pub trait KvStore: MaybeSend + MaybeSync + 'static {
    fn get<'a>(
        &'a self,
        key: &'a str,
    ) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + MaybeSend + 'a;

    /// Stores `value`; it may disappear after `ttl`.
    fn put<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + MaybeSend + 'a;

    /// Stores `value` only if `key` holds nothing (or only an expired
    /// value); `Ok(false)` when it already holds one, which is then left
    /// untouched. Used where an overwrite would corrupt data: the key-id
    /// index, consumer creation. Guarantee per store: memory and DynamoDB
    /// (`attribute_not_exists` condition) are atomic; Workers KV has no
    /// conditional write, so the Worker claims the key in a Durable Object
    /// first (atomic among `put_if_absent` callers) and then checks KV
    /// (eventually consistent) for a value written by a plain `put`.
    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + MaybeSend + 'a;

    fn delete<'a>(
        &'a self,
        key: &'a str,
    ) -> impl Future<Output = Result<(), StoreError>> + MaybeSend + 'a;
}
