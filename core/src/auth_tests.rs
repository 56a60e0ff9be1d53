//! Authentication and authorization through `Gateway::handle`, in memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_executor::block_on;
use http::{Request, Response, StatusCode};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use crate::auth::api_key::{sha256, KEY_PREFIX};
use crate::platform::Clock;
use crate::testing::jwt_fixtures::*;
use crate::testing::{admin_call, EndlessBody, FakeHttp, FakeReply, TestPlatform};
use crate::util::hex;
use crate::{Body, Config, Gateway};

const ADMIN_KEY: &str = "admin-test-key-please-rotate";
const ISS: &str = "https://issuer.test";
const AUD: &str = "gateway";

const CONFIG: &str = r#"
providers:
  mock: { kind: mock }
models:
  - { name: mock-gpt, provider: mock }
  - { name: other-gpt, provider: mock }
plans:
  free: {}
  trial:
    limits:
      - { name: per-hour, window_s: 3600, requests: 2, algorithm: fixed_window }
  solo:
    limits:
      - { name: per-hour, window_s: 3600, requests: 1, algorithm: fixed_window }
consumers:
  - { id: config-team, allowed_models: [mock-gpt], plan: free }
auth:
  api_keys: { cache_ttl_ms: 5000 }
  jwt:
    corp:
      issuer: https://issuer.test
      audience: [gateway]
      leeway_s: 10
      consumer_mapping: direct
      consumer_map: { idp-user-7: config-team }
      keys:
        - { kid: rsa1, alg: RS256, pem: "${env:RSA1_PUBLIC}" }
        - { kid: ec1, alg: ES256, pem: "${env:EC256_PUBLIC}" }
        - { kid: ed1, alg: EdDSA, pem: "${env:ED25519_PUBLIC}" }
        - { kid: hs1, alg: HS256, secret: "${env:HS_SECRET}" }
    rotating:
      issuer: https://rotating.test
      jwks_url: http://idp.internal/jwks.json
      jwks_cache_ttl_ms: 60000
      jwks_refetch_interval_ms: 1000
    partner:
      issuer: https://partner.test
      default_plan: solo
      keys:
        - { kid: p1, alg: RS256, pem: "${env:RSA2_PUBLIC}" }
admin:
  path_prefix: /admin
  key_sha256: "${env:ADMIN_SHA}"
routes:
  - name: ai
    match: { path_prefix: /v1 }
    auth: { methods: [api_key, jwt] }
    ai: {}
  - name: scoped
    match: { path_prefix: /scoped }
    auth: { methods: ["jwt:corp"], required_scopes: ["reports:read"], forward_consumer_id: true }
    proxy: { url: "http://rest.internal" }
  - name: rest
    match: { path_prefix: /api }
    auth: { methods: [api_key], forward_consumer_id: true }
    proxy: { url: "http://rest.internal" }
  - name: jwtrest
    match: { path_prefix: /jwtrest }
    auth: { methods: [jwt], forward_consumer_id: true }
    plan: trial
    proxy: { url: "http://rest.internal" }
  - name: open
    match: { path_prefix: /open }
    proxy: { url: "http://rest.internal" }
"#;

struct World {
    gw: Gateway<TestPlatform>,
    http: FakeHttp,
    jwks: Arc<Mutex<String>>,
    /// The IdP's state: `IDP_UP`, `IDP_FAILING` (500) or `IDP_HANGING`.
    idp: Arc<AtomicU8>,
}

const IDP_UP: u8 = 0;
const IDP_FAILING: u8 = 1;
const IDP_HANGING: u8 = 2;

fn world() -> World {
    let jwks = Arc::new(Mutex::new(json!({"keys": []}).to_string()));
    let served = jwks.clone();
    let idp = Arc::new(AtomicU8::new(IDP_UP));
    let idp_state = idp.clone();
    let http = FakeHttp::new(move |request| {
        if request.uri().path() == "/jwks.json" {
            return match idp_state.load(Ordering::SeqCst) {
                IDP_FAILING => {
                    let mut response = Response::new(Body::from("down"));
                    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                    FakeReply::Respond(response)
                }
                IDP_HANGING => FakeReply::Hang,
                _ => FakeReply::Respond(Response::new(Body::from(served.lock().unwrap().clone()))),
            };
        }
        FakeReply::Respond(Response::new(Body::from("upstream")))
    });
    let env: HashMap<&str, String> = HashMap::from([
        ("RSA1_PUBLIC", RSA1_PUBLIC.to_owned()),
        ("RSA2_PUBLIC", RSA2_PUBLIC.to_owned()),
        ("EC256_PUBLIC", EC256_PUBLIC.to_owned()),
        ("ED25519_PUBLIC", ED25519_PUBLIC.to_owned()),
        ("HS_SECRET", HS_SECRET.to_owned()),
        ("ADMIN_SHA", hex(&sha256(ADMIN_KEY.as_bytes()))),
    ]);
    let config = Config::from_yaml(CONFIG, |name| env.get(name).cloned()).unwrap();
    World {
        gw: Gateway::new(config, TestPlatform::new(http.clone())),
        http,
        jwks,
        idp,
    }
}

fn send(gw: &Gateway<TestPlatform>, request: Request<Bytes>) -> (http::response::Parts, Value) {
    let (parts, body) = block_on(gw.handle(request)).into_parts();
    let bytes = block_on(body.collect(usize::MAX)).unwrap();
    (parts, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn admin(gw: &Gateway<TestPlatform>, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
    admin_call(gw, ADMIN_KEY, method, path, &body)
}

fn chat(credential: Option<(&str, String)>, model: &str) -> Request<Bytes> {
    let mut builder = Request::post("/v1/chat/completions");
    if let Some((name, value)) = credential {
        builder = builder.header(name, value);
    }
    builder
        .body(Bytes::from(
            json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
        ))
        .unwrap()
}

fn bearer(token: &str) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {token}")))
}

fn now_s(w: &World) -> u64 {
    w.gw.platform().clock.now_unix_ms() / 1000
}

/// Creates consumer `id` through the admin API and returns a new key for it.
fn consumer_with_key(w: &World, id: &str, extra: Value) -> (String, String) {
    let mut consumer = json!({"id": id});
    if let (Some(c), Some(e)) = (consumer.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let (status, body) = admin(&w.gw, "POST", "/consumers", consumer);
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, key) = admin(&w.gw, "POST", &format!("/consumers/{id}/keys"), json!({}));
    assert_eq!(status, StatusCode::CREATED, "{key}");
    (
        key["key"].as_str().unwrap().to_owned(),
        key["id"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn missing_credentials_are_401_with_challenge() {
    let w = world();
    let (parts, body) = send(&w.gw, chat(None, "mock-gpt"));
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        parts.headers["www-authenticate"],
        r#"Bearer realm="gateway""#
    );
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let (parts, _) = send(&w.gw, Request::get("/open/x").body(Bytes::new()).unwrap());
    assert_eq!(
        parts.status,
        StatusCode::OK,
        "routes without auth stay public"
    );
}

#[test]
fn admin_api_takes_only_bearer_keys_object_bodies_and_small_bodies() {
    let w = world();
    // The admin key only as `Authorization: Bearer` (as documented).
    let request = Request::get("/admin/consumers/x")
        .header("x-api-key", ADMIN_KEY)
        .body(Bytes::new())
        .unwrap();
    let (parts, _) = send(&w.gw, request);
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    // A JSON array is not an object, even where every field is optional.
    let (status, _) = admin(&w.gw, "POST", "/consumers", json!({"id": "arr"}));
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = admin(&w.gw, "POST", "/consumers/arr/keys", json!([]));
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = admin(&w.gw, "GET", "/consumers/arr/keys", Value::Null);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().map(Vec::len), Some(0), "{body}");
    // Bodies are bounded.
    let big = json!({"id": "big", "metadata": {"pad": "x".repeat(100 * 1024)}});
    let (status, _) = admin(&w.gw, "POST", "/consumers", big);
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn bodies_are_read_only_after_authentication() {
    let w = world();
    let status_of = |request: Request<EndlessBody>, body: &EndlessBody| {
        let status = block_on(w.gw.handle_body(request)).status();
        (status, body.bytes_read())
    };
    // An unauthenticated caller cannot make the gateway read a body.
    let body = EndlessBody::default();
    let request = Request::post("/v1/chat/completions")
        .body(body.clone())
        .unwrap();
    assert_eq!(status_of(request, &body), (StatusCode::UNAUTHORIZED, 0));
    let body = EndlessBody::default();
    let request = Request::post("/admin/consumers")
        .header("authorization", "Bearer wrong-key")
        .body(body.clone())
        .unwrap();
    assert_eq!(status_of(request, &body), (StatusCode::UNAUTHORIZED, 0));
    // The admin key holder gets a 413 at 64 KiB, and no further.
    let body = EndlessBody::default();
    let request = Request::post("/admin/consumers")
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .body(body.clone())
        .unwrap();
    let (status, read) = status_of(request, &body);
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(read, 64 * 1024 + EndlessBody::FRAME as u64);
}

#[test]
fn admin_api_needs_the_admin_key() {
    let w = world();
    let request = Request::post("/admin/consumers")
        .body(Bytes::from("{}"))
        .unwrap();
    assert_eq!(send(&w.gw, request).0.status, StatusCode::UNAUTHORIZED);
    let request = Request::post("/admin/consumers")
        .header("authorization", "Bearer wrong")
        .body(Bytes::from(r#"{"id":"x"}"#))
        .unwrap();
    assert_eq!(send(&w.gw, request).0.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn api_key_lifecycle_through_the_admin_api() {
    let w = world();
    let (key, key_id) = consumer_with_key(&w, "team-a", json!({"metadata": {"team": "a"}}));
    assert!(key.starts_with(&format!("{KEY_PREFIX}{key_id}_")));

    for credential in [
        bearer(&key),
        Some(("x-api-key", key.clone())),
        Some(("api-key", key.clone())),
    ] {
        let (parts, body) = send(&w.gw, chat(credential, "mock-gpt"));
        assert_eq!(parts.status, StatusCode::OK, "{body}");
    }

    let (status, listed) = admin(&w.gw, "GET", "/consumers/team-a/keys", Value::Null);
    assert_eq!(status, StatusCode::OK);
    let listing = listed.to_string();
    assert!(
        !listing.contains(&key[KEY_PREFIX.len() + 9..]),
        "the secret must never be listed"
    );
    assert!(
        !listing.contains(&hex(&sha256(key.as_bytes()))),
        "nor its hash"
    );
    assert_eq!(listed["data"][0]["id"], key_id.as_str());
    assert_eq!(listed["data"][0]["revoked"], false);

    let (status, _) = admin(&w.gw, "DELETE", &format!("/keys/{key_id}"), Value::Null);
    assert_eq!(status, StatusCode::OK);
    let (parts, _) = send(&w.gw, chat(bearer(&key), "mock-gpt"));
    assert_eq!(
        parts.status,
        StatusCode::UNAUTHORIZED,
        "revoked keys stop at once on this instance"
    );
    assert_eq!(
        parts.headers["www-authenticate"],
        r#"Bearer realm="gateway", error="invalid_token""#
    );

    let (status, consumer) = admin(&w.gw, "GET", "/consumers/team-a", Value::Null);
    assert_eq!(
        (status, &consumer["metadata"]["team"]),
        (StatusCode::OK, &json!("a"))
    );
    let (status, _) = admin(&w.gw, "POST", "/consumers", json!({"id": "team-a"}));
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = admin(&w.gw, "POST", "/consumers", json!({"id": "bad/id"}));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = admin(
        &w.gw,
        "POST",
        "/consumers",
        json!({"id": "p", "plan": "gold"}),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[test]
fn unknown_wrong_and_expired_keys_are_401() {
    let w = world();
    let (key, _) = consumer_with_key(&w, "team-b", json!({}));
    let mut wrong = key.clone();
    wrong.pop();
    wrong.push('x');
    assert_eq!(
        send(&w.gw, chat(bearer(&wrong), "mock-gpt")).0.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&w.gw, chat(bearer("sk-gw-nothing"), "mock-gpt"))
            .0
            .status,
        StatusCode::UNAUTHORIZED
    );

    let expires_at = now_s(&w) + 60;
    let (status, expiring) = admin(
        &w.gw,
        "POST",
        "/consumers/team-b/keys",
        json!({"expires_at": expires_at}),
    );
    assert_eq!(status, StatusCode::CREATED);
    let expiring = expiring["key"].as_str().unwrap().to_owned();
    assert_eq!(
        send(&w.gw, chat(bearer(&expiring), "mock-gpt")).0.status,
        StatusCode::OK
    );
    w.gw.platform().clock.advance(Duration::from_secs(61));
    let (parts, body) = send(&w.gw, chat(bearer(&expiring), "mock-gpt"));
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));
}

#[test]
fn ambiguous_credentials_are_401() {
    let w = world();
    let (key, _) = consumer_with_key(&w, "team-a", json!({}));
    let (other, _) = consumer_with_key(&w, "team-b", json!({}));
    // Two Authorization headers: the second one must not be ignored.
    let mut request = chat(bearer(&key), "mock-gpt");
    request
        .headers_mut()
        .append("authorization", format!("Bearer {other}").parse().unwrap());
    let (parts, body) = send(&w.gw, request);
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED, "{body}");
    // Two different keys in two headers.
    let mut request = chat(bearer(&key), "mock-gpt");
    request
        .headers_mut()
        .insert("x-api-key", other.parse().unwrap());
    let (parts, _) = send(&w.gw, request);
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    // The same key in two headers is fine.
    let mut request = chat(bearer(&key), "mock-gpt");
    request
        .headers_mut()
        .insert("x-api-key", key.parse().unwrap());
    let (parts, body) = send(&w.gw, request);
    assert_eq!(parts.status, StatusCode::OK, "{body}");
}

#[test]
fn consumer_allow_lists_are_403() {
    let w = world();
    let (key, _) = consumer_with_key(
        &w,
        "limited",
        json!({"allowed_models": ["mock-gpt"], "allowed_routes": ["ai"]}),
    );
    assert_eq!(
        send(&w.gw, chat(bearer(&key), "mock-gpt")).0.status,
        StatusCode::OK
    );
    let (parts, body) = send(&w.gw, chat(bearer(&key), "other-gpt"));
    assert_eq!(parts.status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "permission_denied");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("other-gpt"));
    let request = Request::get("/api/x")
        .header("x-api-key", key.clone())
        .body(Bytes::new())
        .unwrap();
    assert_eq!(
        send(&w.gw, request).0.status,
        StatusCode::FORBIDDEN,
        "route not in allowed_routes"
    );
    let models = Request::get("/v1/models")
        .header("x-api-key", key)
        .body(Bytes::new())
        .unwrap();
    let (_, listed) = send(&w.gw, models);
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        1,
        "only allowed models are listed"
    );
}

#[test]
fn credentials_are_not_forwarded_but_consumer_id_is() {
    let w = world();
    let (key, _) = consumer_with_key(&w, "fwd", json!({}));
    let request = Request::get("/api/x")
        .header("authorization", format!("Bearer {key}"))
        .header("x-consumer-id", "spoofed")
        .body(Bytes::new())
        .unwrap();
    assert_eq!(send(&w.gw, request).0.status, StatusCode::OK);
    let sent = w.http.requests().pop().unwrap();
    assert!(!sent.headers().contains_key("authorization"));
    assert_eq!(sent.headers()["x-consumer-id"], "fwd");
}

#[test]
fn jwt_with_each_algorithm_family() {
    let w = world();
    let claims = claims(ISS, AUD, "config-team", now_s(&w));
    for (alg, key, kid) in [
        (Algorithm::RS256, RSA1_PRIVATE, "rsa1"),
        (Algorithm::ES256, EC256_PRIVATE, "ec1"),
        (Algorithm::EdDSA, ED25519_PRIVATE, "ed1"),
        (Algorithm::HS256, HS_SECRET, "hs1"),
    ] {
        let token = sign(alg, key, Some(kid), &claims);
        let (parts, body) = send(&w.gw, chat(bearer(&token), "mock-gpt"));
        assert_eq!(parts.status, StatusCode::OK, "{alg:?}: {body}");
    }
    // The config consumer's allow-list applies to token callers too.
    let token = sign(Algorithm::RS256, RSA1_PRIVATE, Some("rsa1"), &claims);
    assert_eq!(
        send(&w.gw, chat(bearer(&token), "other-gpt")).0.status,
        StatusCode::FORBIDDEN
    );
}

/// An HS256 token with a hand-written header (to add fields
/// `jsonwebtoken::Header` cannot carry), validly signed with the test secret.
fn hs256_with_header(header: &Value, claims: &Value) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let signing_input = format!("{}.{}", b64(header), b64(claims));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(HS_SECRET.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    let signature =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

#[test]
fn jwt_critical_header_extensions_are_refused() {
    let w = world();
    let good = claims(ISS, AUD, "someone", now_s(&w));
    // The hand-signed token is accepted without extensions, so the refusals
    // below are about `crit` and `b64`, not the signing.
    let plain = hs256_with_header(&json!({"alg": "HS256", "typ": "JWT", "kid": "hs1"}), &good);
    let (parts, body) = send(&w.gw, chat(bearer(&plain), "mock-gpt"));
    assert_eq!(parts.status, StatusCode::OK, "{body}");
    for header in [
        json!({"alg": "HS256", "kid": "hs1", "crit": ["http://example.com/ext"], "http://example.com/ext": true}),
        json!({"alg": "HS256", "kid": "hs1", "crit": ["b64"], "b64": false}),
        json!({"alg": "HS256", "kid": "hs1", "b64": false}),
    ] {
        let token = hs256_with_header(&header, &good);
        let (parts, _) = send(&w.gw, chat(bearer(&token), "mock-gpt"));
        assert_eq!(parts.status, StatusCode::UNAUTHORIZED, "{header}");
    }
}

#[test]
fn jwt_attacks_are_refused() {
    let w = world();
    let now = now_s(&w);
    let good = claims(ISS, AUD, "someone", now);
    let valid = sign(Algorithm::RS256, RSA1_PRIVATE, Some("rsa1"), &good);
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let cases: Vec<(&str, String)> = vec![
        ("alg none", alg_none("rsa1", &good)),
        (
            "HS256 with the RSA public key as secret",
            sign(Algorithm::HS256, RSA1_PUBLIC, Some("rsa1"), &good),
        ),
        (
            "expired",
            sign(
                Algorithm::RS256,
                RSA1_PRIVATE,
                Some("rsa1"),
                &with("exp", json!(now - 60)),
            ),
        ),
        (
            "nbf in the future",
            sign(
                Algorithm::RS256,
                RSA1_PRIVATE,
                Some("rsa1"),
                &with("nbf", json!(now + 600)),
            ),
        ),
        (
            "iat in the future",
            sign(
                Algorithm::RS256,
                RSA1_PRIVATE,
                Some("rsa1"),
                &with("iat", json!(now + 600)),
            ),
        ),
        (
            "wrong iss",
            sign(
                Algorithm::RS256,
                RSA1_PRIVATE,
                Some("rsa1"),
                &with("iss", json!("https://evil.test")),
            ),
        ),
        (
            "wrong aud",
            sign(
                Algorithm::RS256,
                RSA1_PRIVATE,
                Some("rsa1"),
                &with("aud", json!("someone-else")),
            ),
        ),
        (
            "no exp",
            sign(
                Algorithm::RS256,
                RSA1_PRIVATE,
                Some("rsa1"),
                &with("exp", Value::Null),
            ),
        ),
        (
            "unknown kid",
            sign(Algorithm::RS256, RSA2_PRIVATE, Some("nope"), &good),
        ),
        (
            "signed by another key",
            sign(Algorithm::RS256, RSA2_PRIVATE, Some("rsa1"), &good),
        ),
        (
            "tampered payload",
            tampered(&valid, &with("sub", json!("admin"))),
        ),
        ("truncated", valid[..valid.len() - 10].to_owned()),
        ("garbage", "not.a.jwt".to_owned()),
        (
            "64 KB",
            format!("{}.{}.x", "a".repeat(32 * 1024), "b".repeat(32 * 1024)),
        ),
    ];
    for (name, token) in cases {
        let (parts, body) = send(&w.gw, chat(bearer(&token), "mock-gpt"));
        assert_eq!(parts.status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            !message.to_lowercase().contains("signature"),
            "{name}: detail leaked: {message}"
        );
    }
    assert_eq!(
        send(&w.gw, chat(bearer(&valid), "mock-gpt")).0.status,
        StatusCode::OK
    );
}

#[test]
fn required_scopes_are_403_when_missing() {
    let w = world();
    let mut c = claims(ISS, AUD, "reporter", now_s(&w));
    let without = sign(Algorithm::ES256, EC256_PRIVATE, Some("ec1"), &c);
    let request = |token: &str| {
        Request::get("/scoped/r")
            .header("authorization", format!("Bearer {token}"))
            .body(Bytes::new())
            .unwrap()
    };
    assert_eq!(
        send(&w.gw, request(&without)).0.status,
        StatusCode::FORBIDDEN
    );
    c["scope"] = json!("openid reports:read");
    let with = sign(Algorithm::ES256, EC256_PRIVATE, Some("ec1"), &c);
    assert_eq!(send(&w.gw, request(&with)).0.status, StatusCode::OK);
    assert_eq!(
        w.http.requests().pop().unwrap().headers()["x-consumer-id"],
        "jwt:corp:reporter",
        "an unknown subject is namespaced by its issuer"
    );
    // An API key is not accepted on a JWT-only route.
    let (key, _) = consumer_with_key(&w, "k", json!({}));
    assert_eq!(
        send(&w.gw, request(&key)).0.status,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn jwks_rotation_without_restart() {
    let w = world();
    let claims = claims("https://rotating.test", AUD, "rotated", now_s(&w));
    *w.jwks.lock().unwrap() = jwks(&[(Algorithm::RS256, "k1", RSA1_PRIVATE)]);
    let old = sign(Algorithm::RS256, RSA1_PRIVATE, Some("k1"), &claims);
    assert_eq!(
        send(&w.gw, chat(bearer(&old), "mock-gpt")).0.status,
        StatusCode::OK
    );

    // A new key appears: its first token triggers a refetch (unknown kid).
    *w.jwks.lock().unwrap() = jwks(&[
        (Algorithm::RS256, "k1", RSA1_PRIVATE),
        (Algorithm::RS256, "k2", RSA2_PRIVATE),
    ]);
    w.gw.platform().clock.advance(Duration::from_secs(2));
    let new = sign(Algorithm::RS256, RSA2_PRIVATE, Some("k2"), &claims);
    assert_eq!(
        send(&w.gw, chat(bearer(&new), "mock-gpt")).0.status,
        StatusCode::OK
    );

    // The old key is withdrawn: still trusted until the cache expires, then refused.
    *w.jwks.lock().unwrap() = jwks(&[(Algorithm::RS256, "k2", RSA2_PRIVATE)]);
    assert_eq!(
        send(&w.gw, chat(bearer(&old), "mock-gpt")).0.status,
        StatusCode::OK
    );
    w.gw.platform().clock.advance(Duration::from_secs(61));
    assert_eq!(
        send(&w.gw, chat(bearer(&old), "mock-gpt")).0.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&w.gw, chat(bearer(&new), "mock-gpt")).0.status,
        StatusCode::OK
    );

    // Unknown kids do not hammer the IdP: one refetch per interval.
    let fetches = || {
        w.http
            .requests()
            .iter()
            .filter(|r| r.uri().path() == "/jwks.json")
            .count()
    };
    w.gw.platform().clock.advance(Duration::from_secs(2));
    let before = fetches();
    let stranger = sign(Algorithm::RS256, RSA1_PRIVATE, Some("k9"), &claims);
    for _ in 0..5 {
        assert_eq!(
            send(&w.gw, chat(bearer(&stranger), "mock-gpt")).0.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(fetches() - before, 1);
}

fn jwks_fetches(w: &World) -> usize {
    w.http
        .requests()
        .iter()
        .filter(|r| r.uri().path() == "/jwks.json")
        .count()
}

fn get_with(path: &str, token: &str) -> Request<Bytes> {
    Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Bytes::new())
        .unwrap()
}

fn partner_token(w: &World, sub: &str) -> String {
    let claims = claims("https://partner.test", AUD, sub, now_s(w));
    sign(Algorithm::RS256, RSA2_PRIVATE, Some("p1"), &claims)
}

fn corp_token(w: &World, sub: &str) -> String {
    let claims = claims(ISS, AUD, sub, now_s(w));
    sign(Algorithm::RS256, RSA1_PRIVATE, Some("rsa1"), &claims)
}

#[test]
fn jwt_subjects_are_namespaced_per_issuer_with_separate_counters() {
    let w = world();
    // An API-key consumer `team-a` with a generous plan exists.
    consumer_with_key(&w, "team-a", json!({"plan": "free"}));
    let consumer_header = |token: &str| {
        let (parts, body) = send(&w.gw, get_with("/jwtrest/x", token));
        assert_eq!(parts.status, StatusCode::OK, "{body}");
        w.http.requests().pop().unwrap().headers()["x-consumer-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    // The partner issuer (namespaced) does not become the API-key consumer.
    assert_eq!(
        consumer_header(&partner_token(&w, "team-a")),
        "jwt:partner:team-a"
    );
    // Same subject, two issuers: two consumers, two counters (route plan
    // `trial`: 2 requests per consumer).
    let corp = corp_token(&w, "shared-sub");
    assert_eq!(consumer_header(&corp), "jwt:corp:shared-sub");
    assert_eq!(consumer_header(&corp), "jwt:corp:shared-sub");
    assert_eq!(
        send(&w.gw, get_with("/jwtrest/x", &corp)).0.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let partner = partner_token(&w, "shared-sub");
    assert_eq!(consumer_header(&partner), "jwt:partner:shared-sub");
    // The partner's default plan (`solo`: 1 request) applies to its
    // unknown callers on top of the route's plan.
    assert_eq!(
        send(&w.gw, get_with("/jwtrest/x", &partner)).0.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Unusual characters are percent-encoded, so ids stay header- and
    // key-safe; a `/` cannot fake a key segment.
    assert_eq!(
        consumer_header(&partner_token(&w, "josé/r:x")),
        "jwt:partner:jos%C3%A9%2Fr%3Ax"
    );
}

#[test]
fn unknown_jwt_consumers_get_the_issuer_default_plan_or_only_the_route_plan() {
    let w = world();
    // `ai` has no plan. Partner (default_plan: solo): one request.
    let partner = partner_token(&w, "newcomer");
    assert_eq!(
        send(&w.gw, chat(bearer(&partner), "mock-gpt")).0.status,
        StatusCode::OK
    );
    let (parts, body) = send(&w.gw, chat(bearer(&partner), "mock-gpt"));
    assert_eq!(parts.status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Corp has no default plan: its unknown callers get the route's (none).
    let corp = corp_token(&w, "newcomer");
    for _ in 0..3 {
        assert_eq!(
            send(&w.gw, chat(bearer(&corp), "mock-gpt")).0.status,
            StatusCode::OK
        );
    }
}

#[test]
fn jwt_subjects_map_to_known_consumers_only_when_configured() {
    let w = world();
    // consumer_map: idp-user-7 → config-team (allowed_models: [mock-gpt]).
    let mapped = corp_token(&w, "idp-user-7");
    assert_eq!(
        send(&w.gw, chat(bearer(&mapped), "mock-gpt")).0.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&w.gw, chat(bearer(&mapped), "other-gpt")).0.status,
        StatusCode::FORBIDDEN
    );
    // Direct mapping (corp): a subject that is an admin-created consumer
    // is that consumer, at once on this instance (the cached "unknown"
    // is dropped when the consumer is created).
    let direct = corp_token(&w, "late-team");
    assert_eq!(
        send(&w.gw, chat(bearer(&direct), "other-gpt")).0.status,
        StatusCode::OK
    );
    let (status, _) = admin(
        &w.gw,
        "POST",
        "/consumers",
        json!({"id": "late-team", "allowed_models": ["mock-gpt"]}),
    );
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        send(&w.gw, chat(bearer(&direct), "other-gpt")).0.status,
        StatusCode::FORBIDDEN
    );
    // The partner issuer does not map directly: same subject, no record.
    let partner = partner_token(&w, "late-team");
    assert_eq!(
        send(&w.gw, chat(bearer(&partner), "other-gpt")).0.status,
        StatusCode::OK
    );
}

#[test]
fn invalid_jwt_subjects_are_401() {
    let w = world();
    let long_ok = "s".repeat(256);
    assert_eq!(
        send(
            &w.gw,
            chat(bearer(&partner_token(&w, &long_ok)), "mock-gpt")
        )
        .0
        .status,
        StatusCode::OK
    );
    for sub in [
        "s".repeat(257),
        "x".repeat(2048),
        "line\nbreak".to_owned(),
        "bell\u{7}".to_owned(),
        "del\u{7f}".to_owned(),
        "c1\u{85}".to_owned(),
    ] {
        let (parts, body) = send(&w.gw, chat(bearer(&partner_token(&w, &sub)), "mock-gpt"));
        assert_eq!(parts.status, StatusCode::UNAUTHORIZED, "{sub:?}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("subject"),
            "{body}"
        );
    }
}

#[test]
fn jwks_symmetric_and_encryption_keys_are_ignored() {
    use base64::Engine;
    let w = world();
    let claims = claims("https://rotating.test", AUD, "someone", now_s(&w));
    let secret = "a-symmetric-secret-published-in-the-jwks";
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let mut rsa: Value =
        serde_json::from_str(&jwks(&[(Algorithm::RS256, "enc1", RSA1_PRIVATE)])).unwrap();
    rsa["keys"][0]["use"] = json!("enc");
    let document = json!({"keys": [
        {"kty": "oct", "kid": "sym", "alg": "HS256", "k": k},
        rsa["keys"][0],
        // An RSA key that claims an EC algorithm.
        {"kty": "RSA", "kid": "mismatch", "alg": "ES256",
         "n": rsa["keys"][0]["n"], "e": rsa["keys"][0]["e"]},
    ]});
    *w.jwks.lock().unwrap() = document.to_string();
    for (alg, key, kid) in [
        (Algorithm::HS256, secret, "sym"),
        (Algorithm::RS256, RSA1_PRIVATE, "enc1"),
    ] {
        let token = sign(alg, key, Some(kid), &claims);
        let (parts, body) = send(&w.gw, chat(bearer(&token), "mock-gpt"));
        assert_eq!(parts.status, StatusCode::UNAUTHORIZED, "{kid}: {body}");
    }
}

/// A token the token cache has not seen (a fresh `jti`).
fn rotating_token(w: &World, n: usize) -> String {
    let mut c = claims("https://rotating.test", AUD, "someone", now_s(w));
    c["jti"] = json!(format!("t{n}"));
    sign(Algorithm::RS256, RSA1_PRIVATE, Some("k1"), &c)
}

#[test]
fn jwks_outage_costs_one_fetch_per_backoff_step_and_stale_keys_keep_working() {
    for outage in [IDP_HANGING, IDP_FAILING] {
        let w = world();
        *w.jwks.lock().unwrap() = jwks(&[(Algorithm::RS256, "k1", RSA1_PRIVATE)]);
        let ok = |n: usize| {
            let (parts, body) = send(&w.gw, chat(bearer(&rotating_token(&w, n)), "mock-gpt"));
            assert_eq!(parts.status, StatusCode::OK, "{body}");
        };
        ok(0);
        assert_eq!(jwks_fetches(&w), 1);
        // The keys go stale (TTL 60 s) while the IdP is down.
        w.idp.store(outage, Ordering::SeqCst);
        w.gw.platform().clock.advance(Duration::from_secs(61));
        let before = jwks_fetches(&w);
        // Concurrent requests: one fetch, everyone served with the stale keys.
        let requests: Vec<_> = (1..=20)
            .map(|n| {
                w.gw.handle(chat(bearer(&rotating_token(&w, n)), "mock-gpt"))
            })
            .collect();
        for response in block_on(futures_util::future::join_all(requests)) {
            assert_eq!(response.status(), StatusCode::OK);
        }
        for n in 21..30 {
            ok(n);
        }
        assert_eq!(jwks_fetches(&w) - before, 1, "one attempt, then backoff");
        // Backoff: refetch interval (1 s) after the first failure, then 2 s.
        w.gw.platform().clock.advance(Duration::from_millis(1_000));
        ok(30);
        ok(31);
        assert_eq!(jwks_fetches(&w) - before, 2);
        w.gw.platform().clock.advance(Duration::from_millis(1_000));
        ok(32);
        assert_eq!(jwks_fetches(&w) - before, 2, "second failure: wait 2 s");
        w.gw.platform().clock.advance(Duration::from_millis(1_000));
        // The IdP is back: the next attempt succeeds and the backoff ends.
        w.idp.store(IDP_UP, Ordering::SeqCst);
        ok(33);
        assert_eq!(jwks_fetches(&w) - before, 3);
        ok(34);
        assert_eq!(jwks_fetches(&w) - before, 3, "fresh keys: no fetch");
    }
}

#[test]
fn a_hung_key_store_is_503_not_a_hang() {
    let w = world();
    let (cached, _) = consumer_with_key(&w, "team-c", json!({}));
    let (uncached, _) = consumer_with_key(&w, "team-h", json!({}));
    assert_eq!(
        send(&w.gw, chat(bearer(&cached), "mock-gpt")).0.status,
        StatusCode::OK
    );
    w.gw.platform().kv.hanging.store(true, Ordering::SeqCst);
    let (parts, body) = send(&w.gw, chat(bearer(&uncached), "mock-gpt"));
    assert_eq!(parts.status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable");
    assert!(
        !body.to_string().contains("timed out"),
        "no internals: {body}"
    );
    // What is cached keeps working; the admin API fails closed too.
    assert_eq!(
        send(&w.gw, chat(bearer(&cached), "mock-gpt")).0.status,
        StatusCode::OK
    );
    let (status, body) = admin(&w.gw, "POST", "/consumers", json!({"id": "during"}));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    w.gw.platform().kv.hanging.store(false, Ordering::SeqCst);
    assert_eq!(
        send(&w.gw, chat(bearer(&uncached), "mock-gpt")).0.status,
        StatusCode::OK
    );
}

#[test]
fn consumer_records_are_cached() {
    let w = world();
    let (key, _) = consumer_with_key(&w, "team-r", json!({}));
    let reads = || w.gw.platform().kv.reads("consumers/team-r");
    let before = reads();
    for _ in 0..5 {
        assert_eq!(
            send(&w.gw, chat(bearer(&key), "mock-gpt")).0.status,
            StatusCode::OK
        );
    }
    assert_eq!(reads() - before, 1, "one store read per cache TTL");
    // Unknown subjects of a direct-mapping issuer: looked up once too.
    let token = corp_token(&w, "nobody-here");
    for _ in 0..3 {
        send(&w.gw, chat(bearer(&token), "mock-gpt"));
    }
    assert_eq!(w.gw.platform().kv.reads("consumers/nobody-here"), 1);
    // Namespaced ids are never looked up.
    send(&w.gw, chat(bearer(&partner_token(&w, "p")), "mock-gpt"));
    assert_eq!(w.gw.platform().kv.reads("consumers/jwt:"), 0);
}

fn admin_request(method: &str, path: &str, body: Value) -> Request<Bytes> {
    Request::builder()
        .method(method)
        .uri(format!("/admin{path}"))
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .body(Bytes::from(body.to_string()))
        .unwrap()
}

#[test]
fn concurrent_consumer_creations_have_one_winner() {
    let w = world();
    // Every store read yields once, so the two creations interleave:
    // both check, then both write.
    w.gw.platform()
        .kv
        .yield_on_get
        .store(true, Ordering::SeqCst);
    w.gw.platform().clock.yield_before_timers(true);
    let creations: Vec<_> = ["first", "second"]
        .iter()
        .map(|n| {
            w.gw.handle(admin_request(
                "POST",
                "/consumers",
                json!({"id": "race", "metadata": {"writer": n}}),
            ))
        })
        .collect();
    let mut statuses: Vec<StatusCode> = block_on(futures_util::future::join_all(creations))
        .iter()
        .map(Response::status)
        .collect();
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT]);
    let (status, consumer) = admin(&w.gw, "GET", "/consumers/race", Value::Null);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(consumer["metadata"]["writer"], "first", "never overwritten");
}

#[test]
fn a_colliding_key_id_never_takes_over_the_index() {
    use crate::auth::api_key::KeyRecord;
    use crate::auth::store::{self, InsertKeyError};
    let platform = TestPlatform::new(FakeHttp::new(|_| FakeReply::Hang));
    let kv = crate::platform::TimedKv::new(&platform, Duration::from_secs(1));
    let record = |consumer: &str, hash: &str| KeyRecord {
        id: "same-id".into(),
        consumer_id: consumer.into(),
        key_sha256: hash.into(),
        created_at_unix_s: 0,
        expires_at_unix_s: None,
        revoked: false,
    };
    block_on(store::insert_key(&kv, &record("victim", "aa"))).unwrap();
    let second = block_on(store::insert_key(&kv, &record("attacker", "bb")));
    assert!(matches!(second, Err(InsertKeyError::Taken)), "{second:?}");
    let found = block_on(store::get_key_by_id(&kv, "same-id"))
        .unwrap()
        .unwrap();
    assert_eq!(
        found.consumer_id, "victim",
        "revoking by id hits the right key"
    );
    assert_eq!(block_on(store::get_key_by_hash(&kv, "bb")).unwrap(), None);
}
