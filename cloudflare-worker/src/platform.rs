//! The Workers platform: `worker::Fetch` upstream, JS clock and timers,
//! Web Crypto randomness, KV and Durable Object stores.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use gateway_core::platform::{
    Clock, Consumed, HttpClient, HttpClientError, HttpClientErrorKind, KvStore, MaybeSend,
    Platform, QuotaStore, StoreError,
};
use gateway_core::{Body, BodyError};
use worker::wasm_bindgen::JsValue;
use worker::{js_sys, web_sys};

use crate::js_http::{self, JsBody};
use crate::quota_object::{QuotaReply, QuotaRequest};

/// Clock from `Date.now()`, timers from `setTimeout`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsClock;

impl Clock for JsClock {
    fn now_unix_ms(&self) -> u64 {
        worker::Date::now().as_millis()
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + MaybeSend + use<> {
        worker::Delay::from(duration)
    }
}

/// Upstream calls with the Workers `fetch`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchClient;

fn js_error(context: &str, err: impl std::fmt::Display) -> HttpClientError {
    HttpClientError::new(HttpClientErrorKind::Connect, format!("{context}: {err}"))
}

/// Builds the outbound request. The body goes as bytes (not a stream) so the
/// upstream gets a `Content-Length`; redirects are relayed, not followed.
fn web_request(request: &http::Request<Bytes>) -> Result<web_sys::Request, JsValue> {
    let init = web_sys::RequestInit::new();
    init.set_method(request.method().as_str());
    let headers = web_sys::Headers::new()?;
    for (name, value) in request.headers() {
        headers.append(name.as_str(), &String::from_utf8_lossy(value.as_bytes()))?;
    }
    init.set_headers(headers.as_ref());
    if !request.body().is_empty() {
        let body = js_sys::Uint8Array::from(request.body().as_ref());
        init.set_body(body.as_ref());
    }
    init.set_redirect(web_sys::RequestRedirect::Manual);
    web_sys::Request::new_with_str_and_init(&request.uri().to_string(), &init)
}

impl HttpClient for FetchClient {
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Body>, HttpClientError> {
        let request =
            web_request(&request).map_err(|e| js_error("building request", format!("{e:?}")))?;
        let response: web_sys::Response = worker::Fetch::Request(request.into())
            .send()
            .await
            .map_err(|e| js_error("fetch", e))?
            .into();
        let status = http::StatusCode::from_u16(response.status())
            .map_err(|e| HttpClientError::new(HttpClientErrorKind::Other, e.to_string()))?;
        let headers = js_http::header_map(&response.headers());
        let body =
            match js_http::read_body(&headers, response.body(), || response.array_buffer()).await {
                Ok(None) => Body::empty(),
                Ok(Some(JsBody::Full(bytes))) => Body::full(bytes),
                Ok(Some(JsBody::Stream(stream))) => Body::from_stream(stream),
                // Cut halfway: the error surfaces where the body is read, as it
                // would from the stream.
                Err(error) => {
                    let error = BodyError(format!("reading the upstream body: {error:?}"));
                    Body::from_stream(futures_util::stream::once(async move { Err(error) }))
                }
            };
        let mut response = http::Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// The `KvStore` port on a Workers KV namespace. KV is eventually
/// consistent across locations and its shortest TTL is 60 s: shorter TTLs
/// are raised to 60 s.
///
/// KV has no conditional write, so `put_if_absent` first claims the key
/// in a `QuotaCounter` Durable Object (object `kv-claim/<key>`, a counter
/// with limit 1: one strongly consistent owner per key, so of concurrent
/// claimants exactly one wins), then reads KV and writes only if KV holds
/// nothing. What that guarantees: two `put_if_absent` calls never both
/// succeed, anywhere; a value written by a plain `put` (which claims
/// nothing) is seen only as far as KV's eventual consistency allows (up to
/// ~60 s late in another location). The gateway writes the keys it must
/// not overwrite (key-id index, key records, consumers) only through
/// `put_if_absent`. `delete` releases the claim.
pub struct WorkersKv {
    kv: worker::KvStore,
    claims: DurableObjectQuotaStore,
}

impl WorkersKv {
    pub fn new(kv: worker::KvStore, claims: worker::ObjectNamespace) -> Self {
        Self {
            kv,
            claims: DurableObjectQuotaStore::new(claims),
        }
    }
}

/// The Durable Object holding the claim on KV key `key`.
fn claim_key(key: &str) -> String {
    format!("kv-claim/{key}")
}

/// A claim's window end: the value's expiry, or "for as long as it exists".
fn claim_expiry(ttl: Option<Duration>) -> u64 {
    let now = worker::Date::now().as_millis();
    match ttl {
        Some(ttl) => {
            let secs = ttl.as_secs().max(KV_MIN_TTL_SECS);
            now.saturating_add(secs.saturating_mul(1000))
        }
        None => u64::MAX / 2,
    }
}

const KV_MIN_TTL_SECS: u64 = 60;

fn store_error(context: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError(format!("{context}: {err}"))
}

impl KvStore for WorkersKv {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let value = self
            .kv
            .get(key)
            .bytes()
            .await
            .map_err(|e| store_error("kv get", e))?;
        Ok(value.map(Bytes::from))
    }

    async fn put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), StoreError> {
        let mut put = self
            .kv
            .put_bytes(key, &value)
            .map_err(|e| store_error("kv put", e))?;
        if let Some(ttl) = ttl {
            put = put.expiration_ttl(ttl.as_secs().max(KV_MIN_TTL_SECS));
        }
        put.execute().await.map_err(|e| store_error("kv put", e))
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let claim = claim_key(key);
        let claimed = self.claims.consume(&claim, 1, 1, claim_expiry(ttl)).await?;
        if !claimed.admitted {
            return Ok(false);
        }
        // Claimed: only a plain `put` can have written the key.
        if self.get(key).await?.is_some() {
            return Ok(false);
        }
        if let Err(error) = self.put(key, value, ttl).await {
            // Best effort: a claim left behind only blocks this key.
            let _ = self.claims.refund(&claim, 1).await;
            return Err(error);
        }
        Ok(true)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.kv
            .delete(key)
            .await
            .map_err(|e| store_error("kv delete", e))?;
        self.claims.refund(&claim_key(key), 1).await.map(|_| ())
    }
}

/// The `QuotaStore` port on Durable Objects: one `QuotaCounter` object per
/// counter key, so every key has a single, strongly consistent owner.
pub struct DurableObjectQuotaStore {
    namespace: worker::ObjectNamespace,
}

impl DurableObjectQuotaStore {
    pub fn new(namespace: worker::ObjectNamespace) -> Self {
        Self { namespace }
    }

    async fn call(&self, key: &str, request: &QuotaRequest) -> Result<QuotaReply, StoreError> {
        let stub = self
            .namespace
            .id_from_name(key)
            .and_then(|id| id.get_stub())
            .map_err(|e| store_error("quota object", e))?;
        let body = serde_json::to_string(request).map_err(|e| store_error("quota request", e))?;
        let mut init = worker::RequestInit::new();
        init.with_method(worker::Method::Post)
            .with_body(Some(JsValue::from_str(&body)));
        // The host is ignored: the stub routes to the object.
        let request = worker::Request::new_with_init("https://quota-counter/", &init)
            .map_err(|e| store_error("quota request", e))?;
        let mut response = stub
            .fetch_with_request(request)
            .await
            .map_err(|e| store_error("quota object fetch", e))?;
        if response.status_code() != 200 {
            let text = response.text().await.unwrap_or_default();
            return Err(StoreError(format!(
                "quota object answered {}: {text}",
                response.status_code()
            )));
        }
        let text = response
            .text()
            .await
            .map_err(|e| store_error("quota reply", e))?;
        serde_json::from_str(&text).map_err(|e| store_error("quota reply", e))
    }
}

impl QuotaStore for DurableObjectQuotaStore {
    async fn consume(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        expires_at_unix_ms: u64,
    ) -> Result<Consumed, StoreError> {
        let reply = self
            .call(
                key,
                &QuotaRequest::Consume {
                    amount,
                    limit,
                    expires_at_unix_ms,
                },
            )
            .await?;
        Ok(Consumed {
            admitted: reply.admitted,
            used: reply.used,
        })
    }

    async fn refund(&self, key: &str, amount: u64) -> Result<u64, StoreError> {
        Ok(self.call(key, &QuotaRequest::Refund { amount }).await?.used)
    }
}

pub struct WorkerPlatform {
    http: FetchClient,
    clock: JsClock,
    kv: WorkersKv,
    quota: DurableObjectQuotaStore,
}

impl WorkerPlatform {
    pub fn from_env(env: &worker::Env) -> worker::Result<Self> {
        Ok(Self {
            http: FetchClient,
            clock: JsClock,
            kv: WorkersKv::new(
                env.kv(crate::KV_BINDING)?,
                env.durable_object(crate::QUOTA_BINDING)?,
            ),
            quota: DurableObjectQuotaStore::new(env.durable_object(crate::QUOTA_BINDING)?),
        })
    }
}

impl Platform for WorkerPlatform {
    type Http = FetchClient;
    type Quota = DurableObjectQuotaStore;
    type Kv = WorkersKv;
    type Clock = JsClock;

    fn http(&self) -> &FetchClient {
        &self.http
    }
    fn quota(&self) -> &DurableObjectQuotaStore {
        &self.quota
    }
    fn kv(&self) -> &WorkersKv {
        &self.kv
    }
    fn clock(&self) -> &JsClock {
        &self.clock
    }
    fn spawn(&self, task: gateway_core::platform::BackgroundTask) {
        crate::background::spawn(task);
    }

    fn fill_random(&self, dest: &mut [u8]) {
        if let Err(err) = getrandom::fill(dest) {
            tracing::error!(error = %err, "crypto.getRandomValues failed");
            panic!("Web Crypto random source unavailable: {err}");
        }
    }
}
