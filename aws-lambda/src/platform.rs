//! The Lambda platform: reqwest upstream client, tokio timers, OS
//! randomness, and the store chosen by `GATEWAY_STORE`.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::TryStreamExt;
use gateway_core::platform::memory::{MemoryKv, MemoryQuotaStore};
use gateway_core::platform::{
    Clock, Consumed, HttpClient, HttpClientError, HttpClientErrorKind, KvStore, MaybeSend,
    Platform, QuotaStore, StoreError,
};
use gateway_core::{Body, BodyError};

use crate::dynamodb::{DynamoKv, DynamoQuota};

use crate::{ENV_STORE, ENV_TABLE};

/// Wall clock from the OS, timers from tokio.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now_unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + MaybeSend + use<> {
        tokio::time::sleep(duration)
    }
}

/// Upstream calls over reqwest (rustls): one connection pool per cold
/// start, or, for the native server's threads, one per thread.
#[derive(Debug, Clone)]
pub enum ReqwestClient {
    Shared(reqwest::Client),
    /// Each thread gets a client (and connection pool) of its own: the
    /// native server runs one single-threaded runtime per core, and a
    /// connection's task then lives on the thread that uses it, so a
    /// request crosses no thread (a pool shared across runtimes would hand
    /// one thread's connections to another).
    PerThread,
}

thread_local! {
    /// This thread's client, for [`ReqwestClient::PerThread`].
    static THREAD_CLIENT: std::cell::OnceCell<reqwest::Client> =
        const { std::cell::OnceCell::new() };
}

/// Builds a client; about 3 ms (the system's root certificates are
/// loaded), so it is done before serving, never on a request.
fn build_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        // A proxy relays redirects to its client; it never follows them.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
}

impl ReqwestClient {
    /// One client shared by every thread (Lambda).
    pub fn shared() -> Result<Self, reqwest::Error> {
        build_client().map(Self::Shared)
    }

    /// Builds the calling thread's client now, for [`Self::PerThread`]
    /// (a serving thread calls it before it serves).
    pub fn prepare_thread(&self) -> Result<(), reqwest::Error> {
        self.client().map(drop)
    }

    fn client(&self) -> Result<reqwest::Client, reqwest::Error> {
        match self {
            Self::Shared(client) => Ok(client.clone()),
            Self::PerThread => THREAD_CLIENT.with(|local| {
                if let Some(client) = local.get() {
                    return Ok(client.clone());
                }
                let client = build_client()?;
                Ok(local.get_or_init(|| client).clone())
            }),
        }
    }
}

fn client_error(err: &reqwest::Error) -> HttpClientError {
    let kind = if err.is_connect() {
        HttpClientErrorKind::Connect
    } else if err.is_timeout() {
        HttpClientErrorKind::Timeout
    } else {
        HttpClientErrorKind::Other
    };
    // reqwest's top-level message is generic ("error sending request"); the
    // cause chain says what happened (refused, DNS, TLS). Logs only.
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    HttpClientError::new(kind, message)
}

impl HttpClient for ReqwestClient {
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Body>, HttpClientError> {
        let request = reqwest::Request::try_from(request).map_err(|e| client_error(&e))?;
        let response = self
            .client()
            .map_err(|e| client_error(&e))?
            .execute(request)
            .await
            .map_err(|e| client_error(&e))?;
        let mut builder = http::Response::builder().status(response.status());
        if let Some(headers) = builder.headers_mut() {
            *headers = response.headers().clone();
        }
        let body = response
            .bytes_stream()
            .map_err(|e| BodyError(e.to_string()));
        builder
            .body(Body::from_stream(body))
            .map_err(|e| HttpClientError::new(HttpClientErrorKind::Other, e.to_string()))
    }
}

/// The stores available on Lambda.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// Per-instance memory: for local runs and single-instance tests.
    Memory,
    /// Consumers, keys and quota counters in a DynamoDB table (shared by
    /// all instances).
    DynamoDb { table: String },
}

impl StoreChoice {
    pub fn from_env(store: Option<&str>, table: Option<String>) -> Result<Self, String> {
        match store.unwrap_or("memory") {
            "memory" => Ok(Self::Memory),
            "dynamodb" => match table.filter(|t| !t.is_empty()) {
                Some(table) => Ok(Self::DynamoDb { table }),
                None => Err(format!(
                    "{ENV_STORE}=dynamodb needs {ENV_TABLE} (the table name)"
                )),
            },
            other => Err(format!(
                "{ENV_STORE}={other} is not a known store (memory, dynamodb)"
            )),
        }
    }
}

/// The key-value store, picked at cold start.
///
/// The DynamoDB calls are boxed (here and in [`LambdaQuota`]): the AWS
/// SDK's futures are ~20 KB, and inline they made every store call's
/// future that large, on the memory store too, and the native server's
/// request future 27 KB (6 KB boxed), copied as it moves: `memcpy` was 9%
/// of its CPU. Measured on scenario (a): 49.0 against 51.4 µs per request
/// (4 alternating rounds). A heap allocation is nothing beside a DynamoDB
/// round trip.
#[derive(Debug, Clone)]
pub enum LambdaKv {
    Memory(MemoryKv<TokioClock>),
    DynamoDb(DynamoKv),
}

impl KvStore for LambdaKv {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self {
            Self::Memory(kv) => kv.get(key).await,
            Self::DynamoDb(kv) => Box::pin(kv.get(key)).await,
        }
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), StoreError> {
        match self {
            Self::Memory(kv) => kv.put(key, value, ttl).await,
            Self::DynamoDb(kv) => Box::pin(kv.put(key, value, ttl)).await,
        }
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Memory(kv) => kv.put_if_absent(key, value, ttl).await,
            Self::DynamoDb(kv) => Box::pin(kv.put_if_absent(key, value, ttl)).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Self::Memory(kv) => kv.delete(key).await,
            Self::DynamoDb(kv) => Box::pin(kv.delete(key)).await,
        }
    }
}

/// The quota store, picked at cold start.
#[derive(Debug, Clone)]
pub enum LambdaQuota {
    Memory(MemoryQuotaStore<TokioClock>),
    DynamoDb(DynamoQuota),
}

impl QuotaStore for LambdaQuota {
    async fn consume(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        expires_at_unix_ms: u64,
    ) -> Result<Consumed, StoreError> {
        match self {
            Self::Memory(store) => store.consume(key, amount, limit, expires_at_unix_ms).await,
            Self::DynamoDb(store) => {
                Box::pin(store.consume(key, amount, limit, expires_at_unix_ms)).await
            }
        }
    }

    async fn refund(&self, key: &str, amount: u64) -> Result<u64, StoreError> {
        match self {
            Self::Memory(store) => store.refund(key, amount).await,
            Self::DynamoDb(store) => Box::pin(store.refund(key, amount)).await,
        }
    }
}

pub struct LambdaPlatform {
    http: ReqwestClient,
    clock: TokioClock,
    quota: LambdaQuota,
    kv: LambdaKv,
}

impl LambdaPlatform {
    /// `sdk` is required for the DynamoDB store.
    pub fn new(
        http: ReqwestClient,
        store: StoreChoice,
        sdk: Option<&aws_config::SdkConfig>,
    ) -> Self {
        let (kv, quota) = match (store, sdk) {
            (StoreChoice::DynamoDb { table }, Some(sdk)) => {
                let client = aws_sdk_dynamodb::Client::new(sdk);
                (
                    LambdaKv::DynamoDb(DynamoKv::new(client.clone(), table.clone())),
                    LambdaQuota::DynamoDb(DynamoQuota::new(client, table)),
                )
            }
            _ => (
                LambdaKv::Memory(MemoryKv::new(TokioClock)),
                LambdaQuota::Memory(MemoryQuotaStore::new(TokioClock)),
            ),
        };
        Self {
            http,
            clock: TokioClock,
            quota,
            kv,
        }
    }
}

impl Platform for LambdaPlatform {
    type Http = ReqwestClient;
    type Quota = LambdaQuota;
    type Kv = LambdaKv;
    type Clock = TokioClock;

    fn http(&self) -> &ReqwestClient {
        &self.http
    }
    fn quota(&self) -> &Self::Quota {
        &self.quota
    }
    fn kv(&self) -> &Self::Kv {
        &self.kv
    }
    fn clock(&self) -> &TokioClock {
        &self.clock
    }
    fn spawn(&self, task: gateway_core::platform::BackgroundTask) {
        crate::background::spawn(task);
    }

    /// From `rand`'s thread-local generator: ChaCha12 seeded from the OS and
    /// reseeded every 64 KiB, a CSPRNG without a `getrandom` system call per
    /// request id (one per request showed in `strace` of the native server).
    fn fill_random(&self, dest: &mut [u8]) {
        use rand::Rng as _;
        rand::rng().fill_bytes(dest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store call's future on the memory store stays small whatever the
    /// DynamoDB branch holds (see [`LambdaKv`]): unboxed, the SDK's futures
    /// made each of these ~20 KB.
    #[test]
    fn store_call_futures_do_not_carry_the_sdk_futures() {
        const MAX: usize = 1024;
        let kv = LambdaKv::Memory(MemoryKv::new(TokioClock));
        let quota = LambdaQuota::Memory(MemoryQuotaStore::new(TokioClock));
        let sizes = [
            ("kv get", std::mem::size_of_val(&kv.get("k"))),
            (
                "kv put",
                std::mem::size_of_val(&kv.put("k", Bytes::new(), None)),
            ),
            (
                "kv put_if_absent",
                std::mem::size_of_val(&kv.put_if_absent("k", Bytes::new(), None)),
            ),
            ("kv delete", std::mem::size_of_val(&kv.delete("k"))),
            (
                "quota consume",
                std::mem::size_of_val(&quota.consume("k", 1, 1, 0)),
            ),
            ("quota refund", std::mem::size_of_val(&quota.refund("k", 1))),
        ];
        for (call, size) in sizes {
            assert!(
                size <= MAX,
                "the {call} future is {size} bytes (at most {MAX})"
            );
        }
    }
}
