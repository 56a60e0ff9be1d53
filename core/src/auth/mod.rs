//! Phases 2 and 3: authenticate, then authorize.
//!
//! A route's `auth.methods` lists the credentials it accepts (any of them):
//! - `api_key`: a gateway key from `Authorization: Bearer`, `x-api-key`
//!   (Anthropic style) or `api-key` (Azure style); looked up by SHA-256 in
//!   the `KvStore`, through an in-instance cache (`auth.api_keys.cache_ttl_ms`,
//!   default 30 s: a revoked key stops working everywhere within that time);
//! - `jwt` / `jwt:<issuer>`: a bearer JWT from a configured issuer.
//!
//! The caller becomes an [`Identity`]: a consumer id, the consumer record
//! when one exists (config first, then the store, through an in-instance
//! cache with the key cache's TTL and size), and the token's scopes.
//!
//! - An API key's consumer is the key's consumer (a key whose consumer is
//!   gone is refused).
//! - A token's consumer comes from its subject (`sub` or the issuer's
//!   `consumer_claim`, 1–256 bytes without control characters, else 401):
//!   the issuer's `consumer_map` first; then, with `consumer_mapping:
//!   direct`, a subject that is a known consumer's id; otherwise the
//!   namespaced id `jwt:<issuer>:<subject>`, which no API-key consumer can
//!   have (consumer ids have no `:`). A caller with no consumer record gets
//!   the issuer's `default_plan` (as a record with only that plan); without
//!   one, only the route's plan applies to it, counted per consumer id.
//!
//! Authorization then checks required scopes, the consumer's allowed
//! routes and (on AI routes) allowed models. Failures: 401 with
//! `WWW-Authenticate`, 403; a key store that fails or does not answer
//! within `auth.store_timeout_ms` is 503 (`store_unavailable`), never a
//! pass.
//!
//! A verified JWT is remembered (by its SHA-256) until its `exp`, at most
//! 5 minutes, and for JWKS issuers at most the JWKS cache TTL, so repeated
//! requests with one token skip the signature check.

pub mod api_key;
mod config;
pub mod jwt;
pub mod store;

use std::time::Duration;

use http::HeaderMap;

use self::api_key::{digest_eq, looks_like_api_key, sha256, KeyRecord};
use self::jwt::{ConsumerMapping, JwksCache, JwtIssuer};
use self::store::{valid_consumer_id, Consumer, TtlCache};
use crate::error::GatewayError;
use crate::platform::{Clock, Platform, StoreError, TimedKv};
use crate::util::{duration_ms, hex};

pub use self::store::Consumer as ConsumerRecord;

pub const DEFAULT_KEY_CACHE_TTL: Duration = Duration::from_secs(30);
pub const DEFAULT_KEY_CACHE_SIZE: usize = 10_000;
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// `auth:` settings shared by all routes.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// TTL of the key and consumer caches.
    pub key_cache_ttl: Duration,
    /// Entries in each of the key, consumer and token caches (LRU).
    pub key_cache_size: usize,
    /// Deadline of every key-store call (request path and admin API).
    pub store_timeout: Duration,
    pub issuers: Vec<JwtIssuer>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            key_cache_ttl: DEFAULT_KEY_CACHE_TTL,
            key_cache_size: DEFAULT_KEY_CACHE_SIZE,
            store_timeout: DEFAULT_STORE_TIMEOUT,
            issuers: Vec::new(),
        }
    }
}

/// The key store of `platform` under the configured deadline.
pub(crate) fn timed_kv<'a, P: Platform>(auth: &AuthConfig, platform: &'a P) -> TimedKv<'a, P> {
    TimedKv::new(platform, auth.store_timeout)
}

/// A key-store failure on the request path or in the admin API: 503.
pub(crate) fn store_unavailable(what: &str, error: StoreError) -> GatewayError {
    GatewayError::StoreUnavailable {
        detail: format!("{what}: {error}"),
    }
}

/// A route's `auth:` policy.
#[derive(Debug, Clone, Default)]
pub struct RouteAuth {
    pub api_key: bool,
    /// Indexes into [`AuthConfig::issuers`].
    pub jwt_issuers: Vec<usize>,
    pub required_scopes: Vec<String>,
    /// Send `X-Consumer-Id` upstream.
    pub forward_consumer_id: bool,
    /// Send the client's credential headers upstream (off by default).
    pub forward_credential: bool,
}

/// `admin:` settings.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Normalised without a trailing slash.
    pub path_prefix: String,
    /// Hex SHA-256 of the admin key (lower case).
    pub key_sha256: String,
}

/// What authentication reads from the config: its own settings and the
/// consumers defined in the file.
#[derive(Debug, Clone, Copy)]
pub struct AuthView<'a> {
    pub auth: &'a AuthConfig,
    pub consumers: &'a [Consumer],
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub consumer_id: String,
    pub consumer: Option<Consumer>,
    pub scopes: Vec<String>,
    pub method: &'static str,
}

/// Request headers that carry credentials; never forwarded upstream unless a
/// route says so.
pub const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "x-api-key", "api-key"];

/// Per-instance auth state: caches of key and consumer lookups, JWKS and
/// verified tokens. Negative answers are cached too (an unknown consumer
/// is not looked up on every request); the admin API invalidates what it
/// changes on this instance, other instances see it within the TTL.
pub(crate) struct AuthState {
    pub(crate) keys: TtlCache<Option<KeyRecord>>,
    pub(crate) consumers: TtlCache<Option<Consumer>>,
    pub(crate) jwks: JwksCache,
    /// SHA-256 of a verified token → (issuer index, claims, trusted until ms).
    tokens: TtlCache<(usize, jwt::Verified, u64)>,
}

/// Verified tokens are remembered at most this long (and never past their
/// `exp`, nor, for JWKS issuers, past the JWKS cache TTL, so a withdrawn key
/// stops being trusted as soon as uncached tokens stop being).
const TOKEN_CACHE_MAX: Duration = Duration::from_secs(300);

impl AuthState {
    pub(crate) fn new(config: &AuthConfig) -> Self {
        Self {
            keys: TtlCache::new(duration_ms(config.key_cache_ttl), config.key_cache_size),
            consumers: TtlCache::new(duration_ms(config.key_cache_ttl), config.key_cache_size),
            jwks: JwksCache::default(),
            tokens: TtlCache::new(
                u64::try_from(TOKEN_CACHE_MAX.as_millis()).unwrap_or(u64::MAX),
                config.key_cache_size,
            ),
        }
    }
}

/// The credentials a request carries.
#[derive(Debug, Default, PartialEq, Eq)]
struct Credentials<'a> {
    api_key: Option<&'a str>,
    bearer_token: Option<&'a str>,
}

/// The token of a `Bearer <token>` header value (scheme case-insensitive).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

fn credentials(headers: &HeaderMap) -> Credentials<'_> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let bearer = header("authorization").and_then(bearer_token);
    let mut found = Credentials::default();
    for candidate in [header("x-api-key"), header("api-key"), bearer]
        .into_iter()
        .flatten()
    {
        if candidate.starts_with(api_key::KEY_PREFIX) {
            found.api_key.get_or_insert(candidate);
        }
    }
    if let Some(token) = bearer.filter(|t| !t.starts_with(api_key::KEY_PREFIX)) {
        found.bearer_token = Some(token);
    }
    found
}

const AMBIGUOUS: &str =
    "Send one credential: the request has the same credential header twice, or two different API keys.";

/// A credential header sent twice, or two different gateway API keys in
/// different headers: which one would be judged depends on order, and a
/// proxy in front may have appended one. Refused rather than guessed.
fn ambiguous_credentials(headers: &HeaderMap) -> bool {
    let mut keys: Vec<&str> = Vec::new();
    for name in CREDENTIAL_HEADERS {
        let mut values = headers.get_all(name).iter();
        let first = values.next();
        if values.next().is_some() {
            return true;
        }
        let Some(value) = first.and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let value = bearer_token(value).unwrap_or(value.trim());
        if value.starts_with(api_key::KEY_PREFIX) {
            keys.push(value);
        }
    }
    keys.windows(2).any(|pair| pair[0] != pair[1])
}

fn unauthorized(message: &'static str, invalid_token: bool) -> GatewayError {
    GatewayError::Unauthorized {
        message,
        invalid_token,
    }
}

const BAD_KEY: &str = "Incorrect API key provided, or the key was revoked.";

/// The consumer record for `id`: config first, then the store (uncached:
/// the admin API's view).
pub(crate) async fn find_consumer<P: Platform>(
    config: AuthView<'_>,
    platform: &P,
    id: &str,
) -> Result<Option<Consumer>, GatewayError> {
    if let Some(consumer) = config.consumers.iter().find(|c| c.id == id) {
        return Ok(Some(consumer.clone()));
    }
    if !valid_consumer_id(id) {
        // Namespaced JWT callers (`jwt:…`) cannot have a record.
        return Ok(None);
    }
    store::get_consumer(&timed_kv(config.auth, platform), id)
        .await
        .map_err(|e| store_unavailable("consumer lookup", e))
}

/// [`find_consumer`] through the instance's consumer cache (request path).
async fn lookup_consumer<P: Platform>(
    config: AuthView<'_>,
    platform: &P,
    state: &AuthState,
    id: &str,
) -> Result<Option<Consumer>, GatewayError> {
    if let Some(consumer) = config.consumers.iter().find(|c| c.id == id) {
        return Ok(Some(consumer.clone()));
    }
    let now_ms = platform.clock().now_unix_ms();
    if let Some(cached) = state.consumers.get(id, now_ms) {
        return Ok(cached);
    }
    let found = find_consumer(config, platform, id).await?;
    state.consumers.insert(id.to_owned(), found.clone(), now_ms);
    Ok(found)
}

/// The identity of a token's subject under `issuer`'s mapping (see the
/// module docs).
async fn jwt_identity<P: Platform>(
    config: AuthView<'_>,
    platform: &P,
    state: &AuthState,
    issuer: &JwtIssuer,
    verified: jwt::Verified,
) -> Result<Identity, GatewayError> {
    let subject = verified.subject;
    let mut resolved = None;
    if let Some(mapped) = issuer.consumer_map.get(&subject) {
        let consumer = lookup_consumer(config, platform, state, mapped).await?;
        resolved = Some((mapped.clone(), consumer));
    } else if issuer.consumer_mapping == ConsumerMapping::Direct && valid_consumer_id(&subject) {
        if let Some(consumer) = lookup_consumer(config, platform, state, &subject).await? {
            resolved = Some((subject.clone(), Some(consumer)));
        }
    }
    let (consumer_id, consumer) =
        resolved.unwrap_or_else(|| (issuer.namespaced_id(&subject), None));
    let consumer = consumer.or_else(|| {
        issuer.default_plan.as_ref().map(|plan| Consumer {
            id: consumer_id.clone(),
            metadata: Default::default(),
            allowed_routes: None,
            allowed_models: None,
            plan: Some(plan.clone()),
        })
    });
    Ok(Identity {
        consumer_id,
        consumer,
        scopes: verified.scopes,
        method: "jwt",
    })
}

async fn verify_api_key<P: Platform>(
    config: AuthView<'_>,
    platform: &P,
    state: &AuthState,
    key: &str,
) -> Result<Identity, GatewayError> {
    if !looks_like_api_key(key) {
        return Err(unauthorized(BAD_KEY, true));
    }
    let hash = hex(&sha256(key.as_bytes()));
    let now_ms = platform.clock().now_unix_ms();
    let record = match state.keys.get(&hash, now_ms) {
        Some(cached) => cached,
        None => {
            let record = store::get_key_by_hash(&timed_kv(config.auth, platform), &hash)
                .await
                .map_err(|e| store_unavailable("key lookup", e))?;
            state.keys.insert(hash.clone(), record.clone(), now_ms);
            record
        }
    };
    let Some(record) = record.filter(|r| digest_eq(&r.key_sha256, &hash)) else {
        return Err(unauthorized(BAD_KEY, true));
    };
    if record.revoked {
        return Err(unauthorized(BAD_KEY, true));
    }
    if record.is_expired(now_ms / 1000) {
        return Err(unauthorized("The API key has expired.", true));
    }
    let consumer = lookup_consumer(config, platform, state, &record.consumer_id).await?;
    if consumer.is_none() {
        // The key outlived its consumer.
        return Err(unauthorized(BAD_KEY, true));
    }
    Ok(Identity {
        consumer_id: record.consumer_id,
        consumer,
        scopes: Vec::new(),
        method: "api_key",
    })
}

/// Until when a verified token may be accepted without checking it again.
fn trusted_until(issuer: &JwtIssuer, verified: &jwt::Verified, now_ms: u64) -> u64 {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut until = verified.expires_at_unix_s.saturating_mul(1000);
    until = until.min(now_ms.saturating_add(ms(TOKEN_CACHE_MAX)));
    if let Some(jwks) = &issuer.jwks {
        until = until.min(now_ms.saturating_add(ms(jwks.cache_ttl)));
    }
    until
}

/// Phase 2: who is calling, under the route's policy.
pub(crate) async fn authenticate<P: Platform>(
    config: AuthView<'_>,
    platform: &P,
    state: &AuthState,
    policy: &RouteAuth,
    headers: &HeaderMap,
) -> Result<Identity, GatewayError> {
    if ambiguous_credentials(headers) {
        return Err(unauthorized(AMBIGUOUS, true));
    }
    let found = credentials(headers);
    if let (true, Some(key)) = (policy.api_key, found.api_key) {
        return verify_api_key(config, platform, state, key).await;
    }
    if let (false, Some(token)) = (policy.jwt_issuers.is_empty(), found.bearer_token) {
        let now_ms = platform.clock().now_unix_ms();
        let token_hash =
            (token.len() <= jwt::MAX_TOKEN_LEN).then(|| hex(&sha256(token.as_bytes())));
        let cached = token_hash
            .as_deref()
            .and_then(|hash| state.tokens.get(hash, now_ms))
            .filter(|(index, _, until)| *until > now_ms && policy.jwt_issuers.contains(index));
        if let Some((index, verified, _)) = cached {
            let issuer = &config.auth.issuers[index];
            return jwt_identity(config, platform, state, issuer, verified).await;
        }
        let mut failure = None;
        for &index in &policy.jwt_issuers {
            let issuer = &config.auth.issuers[index];
            match jwt::verify_token(
                issuer,
                token,
                platform.http(),
                platform.clock(),
                &state.jwks,
            )
            .await
            {
                Ok(verified) => {
                    if let Some(hash) = token_hash {
                        let until = trusted_until(issuer, &verified, now_ms);
                        state
                            .tokens
                            .insert(hash, (index, verified.clone(), until), now_ms);
                    }
                    return jwt_identity(config, platform, state, issuer, verified).await;
                }
                Err(e) => {
                    tracing::info!(issuer = %issuer.name, reason = ?e, "token refused");
                    // Report the issuer whose signature matched, if any.
                    if failure.is_none() || e.is_after_signature() {
                        failure = Some(e);
                    }
                }
            }
        }
        let message = failure.map_or("The token is invalid.", |f| f.client_message());
        return Err(unauthorized(message, true));
    }
    if found.api_key.is_some() || found.bearer_token.is_some() {
        return Err(unauthorized(
            "This route does not accept the kind of credential sent.",
            true,
        ));
    }
    Err(unauthorized(
        "Missing credentials: send `Authorization: Bearer <key or token>`.",
        false,
    ))
}

/// Phase 3 for a route: required scopes and the consumer's route list.
pub(crate) fn authorize_route(
    identity: &Identity,
    policy: &RouteAuth,
    route_name: &str,
) -> Result<(), GatewayError> {
    if let Some(missing) = policy
        .required_scopes
        .iter()
        .find(|scope| !identity.scopes.contains(scope))
    {
        return Err(GatewayError::Forbidden(format!(
            "This route requires the scope `{missing}`."
        )));
    }
    if let Some(allowed) = identity
        .consumer
        .as_ref()
        .and_then(|c| c.allowed_routes.as_ref())
    {
        if !allowed.iter().any(|r| r == route_name) {
            return Err(GatewayError::Forbidden(format!(
                "Consumer `{}` may not call route `{route_name}`.",
                identity.consumer_id
            )));
        }
    }
    Ok(())
}

/// Phase 3 on AI routes: the consumer's model list.
pub(crate) fn authorize_model(
    identity: Option<&Identity>,
    model: &str,
) -> Result<(), GatewayError> {
    let Some(identity) = identity else {
        return Ok(());
    };
    if let Some(allowed) = identity
        .consumer
        .as_ref()
        .and_then(|c| c.allowed_models.as_ref())
    {
        if !allowed.iter().any(|m| m == model) {
            return Err(GatewayError::Forbidden(format!(
                "Consumer `{}` may not use model `{model}`.",
                identity.consumer_id
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn credentials_from_each_header_style() {
        let key = "sk-gw-0011aabb_secret";
        for h in [
            headers(&[("authorization", &format!("Bearer {key}"))]),
            headers(&[("x-api-key", key)]),
            headers(&[("api-key", key)]),
            headers(&[("authorization", &format!("bearer  {key}"))]),
        ] {
            assert_eq!(
                credentials(&h),
                Credentials {
                    api_key: Some(key),
                    bearer_token: None
                }
            );
        }
        let jwt = headers(&[("authorization", "Bearer a.b.c")]);
        assert_eq!(
            credentials(&jwt),
            Credentials {
                api_key: None,
                bearer_token: Some("a.b.c")
            }
        );
        assert_eq!(
            credentials(&headers(&[("authorization", "Basic xyz")])),
            Credentials::default()
        );
    }
}
