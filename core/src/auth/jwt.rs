//! JWT verification with `jsonwebtoken` (pure-Rust crypto, also on wasm32).
//!
//! - The algorithm is fixed by the key, never by the token: a token is only
//!   checked with a key whose configured algorithm equals the token's `alg`
//!   (so `alg: none` and HS256-signed-with-the-RSA-public-key are refused).
//! - Keys come from the config (shared secret by reference, PEM, or JWK) or
//!   from a JWKS URL fetched through the `HttpClient` port and cached for
//!   `jwks_cache_ttl`; an unknown `kid` triggers a refetch at most once per
//!   `jwks_refetch_interval`, so key rotation needs no redeploy. A JWKS
//!   contributes asymmetric keys only (RSA, EC, OKP): `kty: oct` keys and
//!   keys marked `use: enc` are ignored, and a key's `alg` must fit its type.
//! - One refetch at a time per issuer (single flight): while it runs, other
//!   requests use the keys they have (stale or not) and do not wait; only
//!   when no key set was ever fetched do they wait for it. After a failed
//!   fetch the next attempt waits `jwks_refetch_interval`, doubling with
//!   each further failure (at most 5 minutes), so an IdP outage costs one
//!   slow request per backoff step, not a timeout on every request.
//! - `exp` (required), `nbf` and `iat` are checked against the `Clock` port
//!   with `leeway_s`; `iss` and `aud` when configured.
//! - The consumer claim (`sub` by default) must be 1–256 bytes without
//!   control characters; it names the caller as [`Verified::subject`], which
//!   `auth` maps to a consumer id (see [`ConsumerMapping`]).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Uri};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::platform::with_timeout;
use crate::platform::{Clock, HttpClient};

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// The longest consumer claim (`sub`) accepted, in bytes.
pub const MAX_SUBJECT_LEN: usize = 256;
/// The longest wait between JWKS fetch attempts after repeated failures.
const MAX_JWKS_BACKOFF: Duration = Duration::from_secs(300);
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// A verification key with its fixed algorithm.
#[derive(Clone)]
pub struct VerifyKey {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct JwksSource {
    pub url: Uri,
    pub cache_ttl: Duration,
    pub refetch_interval: Duration,
}

/// How a token's subject becomes a consumer id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConsumerMapping {
    /// `jwt:<issuer name>:<subject>` (the subject percent-encoded outside
    /// `A-Z a-z 0-9 . _ - ~ @ + = |`): one issuer's `sub: team-a` is never
    /// the API-key consumer `team-a`, nor another issuer's `team-a`.
    #[default]
    Namespaced,
    /// A subject that is the id of a known consumer (config or admin API)
    /// is that consumer; any other subject is namespaced. For an IdP that
    /// is trusted to name gateway consumers.
    Direct,
}

/// One trusted token issuer.
#[derive(Debug, Clone)]
pub struct JwtIssuer {
    pub name: String,
    pub issuer: Option<String>,
    pub audience: Vec<String>,
    pub leeway_s: u64,
    pub consumer_claim: String,
    pub scopes_claim: String,
    pub keys: Vec<VerifyKey>,
    pub jwks: Option<JwksSource>,
    pub consumer_mapping: ConsumerMapping,
    /// Subject → consumer id, checked first (`consumer_map`).
    pub consumer_map: BTreeMap<String, String>,
    /// The plan of a caller that maps to no known consumer; `None`: only
    /// the route's plan applies to it.
    pub default_plan: Option<String>,
}

impl JwtIssuer {
    /// The namespaced consumer id of `subject` (see [`ConsumerMapping`]).
    pub fn namespaced_id(&self, subject: &str) -> String {
        let mut id = format!("jwt:{}:", self.name);
        for byte in subject.bytes() {
            if byte.is_ascii_alphanumeric()
                || matches!(byte, b'.' | b'_' | b'-' | b'~' | b'@' | b'+' | b'=' | b'|')
            {
                id.push(char::from(byte));
            } else {
                id.push_str(&format!("%{byte:02X}"));
            }
        }
        id
    }
}

/// Whether `subject` is acceptable as a caller's name: 1–256 bytes, no
/// control characters (which would end up in logs, headers and store keys).
pub fn valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.len() <= MAX_SUBJECT_LEN
        && !subject.chars().any(char::is_control)
}

/// Why a token was refused. Only [`JwtFailure::client_message`] reaches the
/// client; signature details never do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtFailure {
    Malformed,
    UnknownKey,
    AlgorithmNotAllowed,
    BadSignature,
    Expired,
    NotYetValid,
    IssuedInFuture,
    WrongIssuer,
    WrongAudience,
    MissingClaim(String),
    /// The consumer claim is too long or has control characters.
    InvalidSubject,
}

impl JwtFailure {
    /// A failure found after the signature checked out: more telling than
    /// another issuer's "unknown key" when several issuers are tried.
    pub fn is_after_signature(&self) -> bool {
        matches!(
            self,
            Self::Expired
                | Self::NotYetValid
                | Self::IssuedInFuture
                | Self::WrongIssuer
                | Self::WrongAudience
                | Self::MissingClaim(_)
                | Self::InvalidSubject
        )
    }

    pub fn client_message(&self) -> &'static str {
        match self {
            Self::Expired => "The token has expired.",
            Self::NotYetValid | Self::IssuedInFuture => "The token is not valid yet.",
            Self::WrongIssuer | Self::WrongAudience => "The token was not issued for this gateway.",
            Self::InvalidSubject => {
                "The token's subject is invalid (1-256 bytes, no control characters)."
            }
            _ => "The token is invalid.",
        }
    }
}

/// A verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The consumer claim's value, checked by [`valid_subject`].
    pub subject: String,
    pub scopes: Vec<String>,
    pub expires_at_unix_s: u64,
}

/// Whether `alg` is a signature algorithm for a key of this type.
fn algorithm_fits(alg: Algorithm, params: &AlgorithmParameters) -> bool {
    use Algorithm::*;
    match params {
        AlgorithmParameters::RSA(_) => {
            matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
        }
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, alg),
            (EllipticCurve::P256, ES256) | (EllipticCurve::P384, ES384)
        ),
        AlgorithmParameters::OctetKeyPair(_) => alg == EdDSA,
        // `oct` (a shared secret) and unknown key types: never.
        _ => false,
    }
}

/// The algorithm an asymmetric signature JWK is used with: its `alg`,
/// else what its type implies. `None` for a symmetric (`kty: oct`) key, a
/// key marked `use: enc`, an `alg` that does not fit the key's type, and
/// key types the gateway does not verify with.
pub fn jwk_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    if matches!(
        jwk.common.public_key_use,
        Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
    ) {
        return None;
    }
    if let Some(alg) = jwk.common.key_algorithm {
        return Algorithm::try_from(alg)
            .ok()
            .filter(|alg| algorithm_fits(*alg, &jwk.algorithm));
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        _ => None,
    }
}

/// Usable keys of a JWKS document; keys it cannot use are skipped.
pub fn keys_from_jwks(document: &[u8]) -> Result<Vec<VerifyKey>, String> {
    let set: JwkSet =
        serde_json::from_slice(document).map_err(|e| format!("JWKS is not valid: {e}"))?;
    Ok(set
        .keys
        .iter()
        .filter_map(|jwk| {
            let alg = jwk_algorithm(jwk)?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some(VerifyKey {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            })
        })
        .collect())
}

/// Parses `HS256`, `ES384`, … (case-sensitive, as in JOSE).
pub fn parse_algorithm(alg: &str) -> Result<Algorithm, String> {
    Algorithm::from_str(alg).map_err(|_| {
        format!("unknown algorithm `{alg}` (HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA)")
    })
}

struct JwksState {
    keys: Arc<Vec<VerifyKey>>,
    fetched_at_ms: Option<u64>,
    last_attempt_ms: Option<u64>,
    /// Failed attempts since the last success (drives the backoff).
    failures: u32,
    /// Attempts finished so far (a waiter sees whether one ended while it
    /// waited).
    completed: u64,
    /// Held by the one request that fetches (single flight).
    fetching: Arc<futures_util::lock::Mutex<()>>,
}

impl Default for JwksState {
    fn default() -> Self {
        Self {
            keys: Arc::default(),
            fetched_at_ms: None,
            last_attempt_ms: None,
            failures: 0,
            completed: 0,
            fetching: Arc::new(futures_util::lock::Mutex::new(())),
        }
    }
}

#[derive(Clone)]
struct JwksSnapshot {
    keys: Arc<Vec<VerifyKey>>,
    fetched_at_ms: Option<u64>,
    last_attempt_ms: Option<u64>,
    failures: u32,
    completed: u64,
    fetching: Arc<futures_util::lock::Mutex<()>>,
}

/// Per-issuer JWKS cache, shared by the requests of one instance.
#[derive(Default)]
pub struct JwksCache {
    states: Mutex<HashMap<String, JwksState>>,
}

impl JwksCache {
    fn snapshot(&self, issuer: &str) -> JwksSnapshot {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let s = states.entry(issuer.to_owned()).or_default();
        JwksSnapshot {
            keys: s.keys.clone(),
            fetched_at_ms: s.fetched_at_ms,
            last_attempt_ms: s.last_attempt_ms,
            failures: s.failures,
            completed: s.completed,
            fetching: s.fetching.clone(),
        }
    }

    fn note_attempt(&self, issuer: &str, now_ms: u64) {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        states.entry(issuer.to_owned()).or_default().last_attempt_ms = Some(now_ms);
    }

    fn store(&self, issuer: &str, keys: Vec<VerifyKey>, now_ms: u64) -> Arc<Vec<VerifyKey>> {
        let keys = Arc::new(keys);
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let state = states.entry(issuer.to_owned()).or_default();
        state.keys = keys.clone();
        state.fetched_at_ms = Some(now_ms);
        state.failures = 0;
        state.completed += 1;
        keys
    }

    /// Records a failed fetch that ended at `now_ms` (the backoff counts
    /// from there: a fetch that timed out does not eat its own backoff);
    /// drops the keys when they are far too old (`withdraw`). Returns the
    /// keys left.
    fn fail(&self, issuer: &str, now_ms: u64, withdraw: bool) -> Arc<Vec<VerifyKey>> {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let state = states.entry(issuer.to_owned()).or_default();
        state.failures = state.failures.saturating_add(1);
        state.completed += 1;
        state.last_attempt_ms = Some(now_ms);
        if withdraw {
            state.keys = Arc::default();
        }
        state.keys.clone()
    }
}

async fn fetch_jwks(
    http: &impl HttpClient,
    clock: &impl Clock,
    url: &Uri,
) -> Result<Vec<VerifyKey>, String> {
    let mut request = Request::new(Bytes::new());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = url.clone();
    request.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    );
    // One deadline for the answer and its body: an IdP that sends headers
    // and stalls must not hold the request either.
    let fetch = async {
        let response = http
            .send(request)
            .await
            .map_err(|e| format!("JWKS fetch failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("JWKS fetch answered {}", response.status()));
        }
        response
            .into_body()
            .collect(MAX_JWKS_BYTES)
            .await
            .map_err(|e| format!("JWKS body: {e}"))
    };
    let body = with_timeout(clock, JWKS_FETCH_TIMEOUT, fetch)
        .await
        .ok_or("JWKS fetch timed out")??;
    keys_from_jwks(&body)
}

/// How long after the last attempt the next one may start: immediately
/// for stale keys after a success, `refetch_interval` for an unknown
/// `kid`, and after `n` failures `refetch_interval × 2^(n-1)` (≤ 5 min).
fn retry_after_ms(jwks: &JwksSource, failures: u32, stale: bool) -> u64 {
    let interval = duration_ms(jwks.refetch_interval);
    match failures {
        0 if stale => 0,
        0 => interval,
        n => interval
            .saturating_mul(1u64 << (n - 1).min(20))
            .min(duration_ms(MAX_JWKS_BACKOFF).max(interval)),
    }
}

/// The keys to try for a token with `kid`, fetching or refreshing the JWKS
/// when it is stale or does not know `kid` (one fetch at a time; see the
/// module docs).
async fn candidate_keys(
    issuer: &JwtIssuer,
    kid: Option<&str>,
    http: &impl HttpClient,
    clock: &impl Clock,
    cache: &JwksCache,
) -> Vec<VerifyKey> {
    let matches = |k: &VerifyKey| kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid;
    let mut keys: Vec<VerifyKey> = issuer.keys.iter().filter(|k| matches(k)).cloned().collect();
    let Some(jwks) = &issuer.jwks else {
        return keys;
    };
    let now = clock.now_unix_ms();
    let snapshot = cache.snapshot(&issuer.name);
    let ttl_ms = duration_ms(jwks.cache_ttl);
    let stale = snapshot
        .fetched_at_ms
        .is_none_or(|at| now.saturating_sub(at) >= ttl_ms);
    let unknown_kid =
        kid.is_some_and(|kid| !snapshot.keys.iter().any(|k| k.kid.as_deref() == Some(kid)));
    let due = snapshot
        .last_attempt_ms
        .is_none_or(|at| now.saturating_sub(at) >= retry_after_ms(jwks, snapshot.failures, stale));
    let mut cached = snapshot.keys.clone();
    if (stale || unknown_kid) && due {
        // Never fetched: wait for a fetch in flight. Otherwise do not wait:
        // whoever holds the lock is fetching; use the keys at hand.
        let guard = if snapshot.fetched_at_ms.is_none() {
            Some(snapshot.fetching.lock().await)
        } else {
            snapshot.fetching.try_lock()
        };
        if let Some(_guard) = guard {
            let current = cache.snapshot(&issuer.name);
            if current.completed != snapshot.completed {
                // Someone fetched (or tried) while this request waited.
                cached = current.keys;
            } else {
                let now = clock.now_unix_ms();
                cache.note_attempt(&issuer.name, now);
                cached = match fetch_jwks(http, clock, &jwks.url).await {
                    Ok(fresh) => {
                        tracing::info!(issuer = %issuer.name, keys = fresh.len(), "JWKS fetched");
                        cache.store(&issuer.name, fresh, now)
                    }
                    Err(error) => {
                        tracing::warn!(issuer = %issuer.name, %error, "JWKS fetch failed; keeping the cached keys");
                        // Long past its TTL: stop trusting keys that may have been withdrawn.
                        let withdraw = current
                            .fetched_at_ms
                            .is_some_and(|at| now.saturating_sub(at) >= 2 * ttl_ms.max(1));
                        cache.fail(&issuer.name, clock.now_unix_ms(), withdraw)
                    }
                };
            }
        }
    }
    keys.extend(cached.iter().filter(|k| matches(k)).cloned());
    keys
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn claim_u64(claims: &Map<String, Value>, name: &str) -> Option<u64> {
    claims
        .get(name)
        .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)))
}

/// Checks the registered claims against `now_s`.
fn check_claims(
    issuer: &JwtIssuer,
    claims: &Map<String, Value>,
    now_s: u64,
) -> Result<Verified, JwtFailure> {
    let leeway = issuer.leeway_s;
    let exp = claim_u64(claims, "exp").ok_or_else(|| JwtFailure::MissingClaim("exp".into()))?;
    if now_s >= exp.saturating_add(leeway) {
        return Err(JwtFailure::Expired);
    }
    if let Some(nbf) = claim_u64(claims, "nbf") {
        if now_s.saturating_add(leeway) < nbf {
            return Err(JwtFailure::NotYetValid);
        }
    }
    if let Some(iat) = claim_u64(claims, "iat") {
        if iat > now_s.saturating_add(leeway) {
            return Err(JwtFailure::IssuedInFuture);
        }
    }
    if let Some(expected) = &issuer.issuer {
        if claims.get("iss").and_then(Value::as_str) != Some(expected.as_str()) {
            return Err(JwtFailure::WrongIssuer);
        }
    }
    if !issuer.audience.is_empty() {
        let matches = |a: &str| issuer.audience.iter().any(|want| want == a);
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => matches(a),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(matches),
            _ => false,
        };
        if !ok {
            return Err(JwtFailure::WrongAudience);
        }
    }
    let subject = claims
        .get(&issuer.consumer_claim)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| JwtFailure::MissingClaim(issuer.consumer_claim.clone()))?;
    if !valid_subject(subject) {
        return Err(JwtFailure::InvalidSubject);
    }
    let subject = subject.to_owned();
    let scopes_value = claims.get(&issuer.scopes_claim).or_else(|| {
        // `scp` is the common alternative spelling (Azure AD, Okta).
        (issuer.scopes_claim == "scope")
            .then(|| claims.get("scp"))
            .flatten()
    });
    let scopes = match scopes_value {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    Ok(Verified {
        subject,
        scopes,
        expires_at_unix_s: exp,
    })
}

/// RFC 7515 §4.1.11: a `crit` header names extensions the verifier must
/// understand, and this gateway understands none, so any `crit` is refused;
/// so is `b64: false` (RFC 7797, an unencoded payload). The header is read
/// again here because `jsonwebtoken`'s `Header` drops unknown fields.
fn has_unsupported_extensions(token: &str) -> bool {
    use base64::Engine;
    let Some(encoded) = token.split('.').next() else {
        return true;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded) else {
        return true;
    };
    let Ok(Value::Object(header)) = serde_json::from_slice::<Value>(&bytes) else {
        return true;
    };
    header.contains_key("crit") || header.get("b64") == Some(&Value::Bool(false))
}

/// Verifies `token` for `issuer`.
pub async fn verify_token(
    issuer: &JwtIssuer,
    token: &str,
    http: &impl HttpClient,
    clock: &impl Clock,
    cache: &JwksCache,
) -> Result<Verified, JwtFailure> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtFailure::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| JwtFailure::Malformed)?;
    if has_unsupported_extensions(token) {
        return Err(JwtFailure::Malformed);
    }
    let keys = candidate_keys(issuer, header.kid.as_deref(), http, clock, cache).await;
    if keys.is_empty() {
        return Err(JwtFailure::UnknownKey);
    }
    let mut failure = JwtFailure::AlgorithmNotAllowed;
    for key in keys.iter().filter(|k| k.alg == header.alg) {
        let mut validation = Validation::new(key.alg);
        // Time and audience are checked below against the Clock port.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
            Ok(data) => return check_claims(issuer, &data.claims, clock.now_unix_ms() / 1000),
            Err(_) => failure = JwtFailure::BadSignature,
        }
    }
    Err(failure)
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::task::Poll;

    use futures_executor::block_on;
    use http::Response;

    use super::*;
    use crate::body::Body;
    use crate::platform::{HttpClientError, MaybeSend};
    use crate::testing::jwt_fixtures::{claims, jwks, sign, RSA1_PRIVATE};

    /// A clock whose timers never fire: a fetch in flight stays in flight
    /// until the IdP answers.
    struct StillClock(AtomicU64);

    impl Clock for StillClock {
        fn now_unix_ms(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
        fn sleep(&self, _: Duration) -> impl Future<Output = ()> + MaybeSend + use<> {
            std::future::pending()
        }
    }

    /// An IdP that answers only when the test lets it (`gate`).
    struct GatedIdp {
        document: String,
        fetches: AtomicUsize,
        gate: futures_util::lock::Mutex<()>,
    }

    impl HttpClient for GatedIdp {
        async fn send(&self, _: Request<Bytes>) -> Result<Response<Body>, HttpClientError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let _open = self.gate.lock().await;
            Ok(Response::new(Body::from(self.document.clone())))
        }
    }

    fn issuer() -> JwtIssuer {
        JwtIssuer {
            name: "idp".into(),
            issuer: None,
            audience: Vec::new(),
            leeway_s: 10,
            consumer_claim: "sub".into(),
            scopes_claim: "scope".into(),
            keys: Vec::new(),
            jwks: Some(JwksSource {
                url: Uri::from_static("http://idp.test/jwks.json"),
                cache_ttl: Duration::from_secs(60),
                refetch_interval: Duration::from_secs(1),
            }),
            consumer_mapping: ConsumerMapping::default(),
            consumer_map: BTreeMap::new(),
            default_plan: None,
        }
    }

    #[test]
    fn one_jwks_fetch_in_flight_while_the_others_use_stale_keys() {
        let idp = GatedIdp {
            document: jwks(&[(Algorithm::RS256, "k1", RSA1_PRIVATE)]),
            fetches: AtomicUsize::new(0),
            gate: futures_util::lock::Mutex::new(()),
        };
        let clock = StillClock(AtomicU64::new(1_700_000_000_000));
        let cache = JwksCache::default();
        let issuer = issuer();
        let token = sign(
            Algorithm::RS256,
            RSA1_PRIVATE,
            Some("k1"),
            &claims("any", "any", "someone", 1_700_000_000),
        );
        let verify = || verify_token(&issuer, &token, &idp, &clock, &cache);
        block_on(verify()).unwrap();
        assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);

        // Stale keys, and the IdP hangs.
        clock.0.fetch_add(61_000, Ordering::SeqCst);
        let gate = block_on(idp.gate.lock());
        block_on(async {
            let mut calls: Vec<_> = (0..20).map(|_| Box::pin(verify())).collect();
            let mut waiting = Vec::new();
            for mut call in calls.drain(..) {
                match futures_util::poll!(&mut call) {
                    Poll::Ready(result) => {
                        result.unwrap();
                    }
                    Poll::Pending => waiting.push(call),
                }
            }
            assert_eq!(
                idp.fetches.load(Ordering::SeqCst),
                2,
                "one refetch in flight"
            );
            assert_eq!(waiting.len(), 1, "the others did not wait");
            drop(gate);
            for call in waiting {
                call.await.unwrap();
            }
        });
        assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn without_any_keys_requests_wait_for_the_one_fetch() {
        let idp = GatedIdp {
            document: jwks(&[(Algorithm::RS256, "k1", RSA1_PRIVATE)]),
            fetches: AtomicUsize::new(0),
            gate: futures_util::lock::Mutex::new(()),
        };
        let clock = StillClock(AtomicU64::new(1_700_000_000_000));
        let cache = JwksCache::default();
        let issuer = issuer();
        let token = sign(
            Algorithm::RS256,
            RSA1_PRIVATE,
            Some("k1"),
            &claims("any", "any", "someone", 1_700_000_000),
        );
        let gate = block_on(idp.gate.lock());
        block_on(async {
            let mut calls: Vec<_> = (0..5)
                .map(|_| Box::pin(verify_token(&issuer, &token, &idp, &clock, &cache)))
                .collect();
            for call in &mut calls {
                assert!(futures_util::poll!(call).is_pending());
            }
            assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);
            drop(gate);
            for call in calls {
                call.await.unwrap();
            }
        });
        assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn subjects_are_bounded_and_namespaced() {
        assert!(valid_subject("auth0|5f1c"));
        assert!(valid_subject(&"x".repeat(MAX_SUBJECT_LEN)));
        assert!(!valid_subject(&"x".repeat(MAX_SUBJECT_LEN + 1)));
        assert!(!valid_subject(""));
        assert!(!valid_subject("a\u{0}b"));
        assert_eq!(issuer().namespaced_id("a:b/c d"), "jwt:idp:a%3Ab%2Fc%20d");
    }
}
