//! Quotas through `Gateway::handle`, in memory: exactness under
//! concurrency, windows, headers, store failures, token settlement.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_executor::block_on;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::auth::api_key::sha256;
use crate::platform::Clock;
use crate::testing::{admin_call, FakeHttp, FakeReply, TestPlatform};
use crate::util::hex;
use crate::{Body, Config, Gateway};

const ADMIN_KEY: &str = "quota-admin";

const CONFIG: &str = r#"
providers:
  mock: { kind: mock }
models:
  # 10 USD per million tokens: 10 micro-USD per token, for spend limits.
  - { name: mock-gpt, provider: mock, pricing: { input: 10.0, cached_input: 10.0, output: 10.0 } }
admin:
  path_prefix: /admin
  key_sha256: "${env:ADMIN_SHA}"
plans:
  fixed:
    limits:
      - { name: rpm, window_s: 60, requests: 2, algorithm: fixed_window }
  hot:
    limits:
      - { name: burst, window_s: 3600, requests: 50, algorithm: fixed_window }
  sliding:
    limits:
      - { name: rpm, window_s: 60, requests: 10 }
  tokens:
    reserve_completion_tokens: 50
    limits:
      - { name: tpm, window_s: 60, tokens: 300, algorithm: fixed_window }
  spend:
    limits:
      - { name: monthly, window_s: 2592000, spend_usd: 0.002, algorithm: fixed_window }
  open:
    on_store_error: fail_open
    limits:
      - { name: rpm, window_s: 60, requests: 1 }
  closed:
    limits:
      - { name: rpm, window_s: 60, requests: 100 }
routes:
  - name: fixed
    match: { path_prefix: /fixed }
    plan: fixed
    proxy: { url: "http://rest.internal" }
  - name: hot
    match: { path_prefix: /hot }
    plan: hot
    proxy: { url: "http://rest.internal" }
  - name: sliding
    match: { path_prefix: /sliding }
    plan: sliding
    proxy: { url: "http://rest.internal" }
  - name: open
    match: { path_prefix: /open }
    plan: open
    proxy: { url: "http://rest.internal" }
  - name: closed
    match: { path_prefix: /closed }
    plan: closed
    proxy: { url: "http://rest.internal" }
  - name: ai
    match: { path_prefix: /v1 }
    auth: { methods: [api_key] }
    ai: {}
"#;

fn gateway() -> Gateway<TestPlatform> {
    let sha = hex(&sha256(ADMIN_KEY.as_bytes()));
    let config = Config::from_yaml(CONFIG, |n| (n == "ADMIN_SHA").then(|| sha.clone())).unwrap();
    let http = FakeHttp::unrecorded(|_| FakeReply::Respond(Response::new(Body::from("ok"))));
    Gateway::new(config, TestPlatform::new(http))
}

fn get(gw: &Gateway<TestPlatform>, path: &str) -> http::response::Parts {
    let response = block_on(gw.handle(Request::get(path).body(Bytes::new()).unwrap()));
    let (parts, body) = response.into_parts();
    drop(block_on(body.collect(usize::MAX)));
    parts
}

fn admin(gw: &Gateway<TestPlatform>, method: &str, path: &str, body: Value) -> Value {
    admin_call(gw, ADMIN_KEY, method, path, &body).1
}

/// A consumer on `plan` with a key; the plan must exist in CONFIG.
fn consumer(gw: &Gateway<TestPlatform>, id: &str, plan: &str) -> String {
    admin(gw, "POST", "/consumers", json!({"id": id, "plan": plan}));
    admin(gw, "POST", &format!("/consumers/{id}/keys"), json!({}))["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn concurrent_requests_never_exceed_the_limit() {
    let gw = gateway();
    let admitted = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..200)
            .map(|_| {
                let gw = gw.clone();
                scope.spawn(move || get(&gw, "/hot/x").status)
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|s| *s == StatusCode::OK)
            .count()
    });
    assert_eq!(admitted, 50);
}

#[test]
fn fixed_window_resets_and_retry_after_points_at_the_reset() {
    let gw = gateway();
    let clock = &gw.platform().clock;
    // Start 45 s into a minute: the window resets in 15 s.
    let now = clock.now_unix_ms();
    clock.advance(Duration::from_millis(60_000 - now % 60_000 + 45_000));
    let first = get(&gw, "/fixed/a");
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.headers["ratelimit-limit"], "2");
    assert_eq!(first.headers["ratelimit-remaining"], "1");
    assert_eq!(first.headers["ratelimit-reset"], "15");
    assert_eq!(get(&gw, "/fixed/a").headers["ratelimit-remaining"], "0");
    let refused = get(&gw, "/fixed/a");
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers["retry-after"], "15");
    assert_eq!(refused.headers["ratelimit-remaining"], "0");
    clock.advance(Duration::from_secs(15));
    assert_eq!(
        get(&gw, "/fixed/a").status,
        StatusCode::OK,
        "a new window admits again"
    );
}

#[test]
fn sliding_window_carries_the_previous_window() {
    let gw = gateway();
    let clock = &gw.platform().clock;
    let now = clock.now_unix_ms();
    clock.advance(Duration::from_millis(60_000 - now % 60_000 + 59_000));
    for _ in 0..10 {
        assert_eq!(get(&gw, "/sliding/a").status, StatusCode::OK);
    }
    // 1 s later a new window starts, but 59/60 of the last 10 still count.
    clock.advance(Duration::from_secs(1));
    assert_eq!(get(&gw, "/sliding/a").status, StatusCode::TOO_MANY_REQUESTS);
    // Half way through: 5 of them still count, so 5 more fit.
    clock.advance(Duration::from_secs(30));
    let admitted = (0..10)
        .filter(|_| get(&gw, "/sliding/a").status == StatusCode::OK)
        .count();
    assert_eq!(admitted, 5);
}

#[test]
fn store_outage_fails_open_or_closed_per_plan() {
    let gw = gateway();
    gw.platform().quota.failing.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(
            get(&gw, "/open/a").status,
            StatusCode::OK,
            "fail_open admits past the limit of 1"
        );
    }
    assert_eq!(
        get(&gw, "/closed/a").status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    gw.platform().quota.failing.store(false, Ordering::SeqCst);
    assert_eq!(get(&gw, "/closed/a").status, StatusCode::OK);
}

fn chat(key: &str, stream: bool, max_tokens: u64) -> Request<Bytes> {
    let body = json!({
        "model": "mock-gpt", "stream": stream, "max_tokens": max_tokens,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Count my tokens please"}],
    });
    Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .body(Bytes::from(body.to_string()))
        .unwrap()
}

fn used_tokens(gw: &Gateway<TestPlatform>, consumer: &str) -> u64 {
    let usage = admin(
        gw,
        "GET",
        &format!("/consumers/{consumer}/usage"),
        Value::Null,
    );
    usage["limits"][0]["used"]
        .as_u64()
        .unwrap_or_else(|| panic!("no usage: {usage}"))
}

#[test]
fn token_reservation_settles_to_real_usage() {
    let gw = gateway();
    let key = consumer(&gw, "tok", "tokens");
    let (parts, body) = block_on(gw.handle(chat(&key, false, 40))).into_parts();
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["x-ratelimit-limit-tokens"], "300");
    let body: Value = serde_json::from_slice(&block_on(body.collect(usize::MAX)).unwrap()).unwrap();
    let total = body["usage"]["total_tokens"].as_u64().unwrap();
    assert_eq!(
        used_tokens(&gw, "tok"),
        total,
        "the counter holds real usage, not the reservation"
    );

    // A stream settles when it ends.
    let response = block_on(gw.handle(chat(&key, true, 40)));
    let chunks: Vec<Bytes> = block_on(response.into_body().map(Result::unwrap).collect());
    let text: String = chunks
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let usage_event = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v["usage"].is_object())
        .unwrap();
    let streamed_total = usage_event["usage"]["total_tokens"].as_u64().unwrap();
    assert_eq!(used_tokens(&gw, "tok"), total + streamed_total);
}

/// Total tokens reported by a streamed completion's usage chunk.
fn streamed_usage(response: Response<Body>) -> (StatusCode, u64) {
    let status = response.status();
    let chunks: Vec<Bytes> = block_on(StreamExt::collect::<Vec<_>>(response.into_body()))
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let text: String = chunks
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let total = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find_map(|v| v["usage"]["total_tokens"].as_u64())
        .unwrap_or(0);
    (status, total)
}

#[test]
fn concurrent_streams_never_overspend_and_settle_exactly() {
    let gw = gateway();
    let key = consumer(&gw, "burst", "tokens");
    // Each request reserves its prompt estimate + 100 of a 300 budget.
    let results: Vec<(StatusCode, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let (gw, key) = (gw.clone(), key.clone());
                scope.spawn(move || streamed_usage(block_on(gw.handle(chat(&key, true, 100)))))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let admitted: Vec<u64> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, t)| *t)
        .collect();
    assert!(!admitted.is_empty());
    assert!(
        results
            .iter()
            .any(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS),
        "the budget must run out: {results:?}"
    );
    let real: u64 = admitted.iter().sum();
    assert!(real <= 300, "admitted usage {real} exceeds the budget");
    assert_eq!(
        used_tokens(&gw, "burst"),
        real,
        "after settlement the counter equals real usage"
    );
}

/// A client that leaves mid-stream, before any usage was reported: the
/// provider may have generated up to the cap, so the reservation stays
/// charged (settled in the background, not lost, not refunded).
#[test]
fn client_disconnect_without_usage_keeps_the_reservation() {
    let gw = gateway();
    let key = consumer(&gw, "gone", "tokens");
    let mut body = block_on(gw.handle(chat(&key, true, 40))).into_body();
    let first = block_on(body.next()).unwrap().unwrap();
    assert!(!first.is_empty());
    let reserved = used_tokens(&gw, "gone");
    assert!(reserved > 40, "prompt estimate + max_tokens: {reserved}");
    drop(body);
    assert_eq!(
        gw.platform().run_background(),
        1,
        "settlement runs in the background"
    );
    assert_eq!(used_tokens(&gw, "gone"), reserved);
}

#[test]
fn spend_limit_charges_real_cost_and_refuses_past_the_budget() {
    let gw = gateway();
    let key = consumer(&gw, "spender", "spend");
    let mut charged = 0;
    let mut refused = None;
    for _ in 0..40 {
        let (parts, body) = block_on(gw.handle(chat(&key, false, 10))).into_parts();
        let body: Value =
            serde_json::from_slice(&block_on(body.collect(usize::MAX)).unwrap()).unwrap();
        if parts.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(body);
            break;
        }
        assert_eq!(parts.status, StatusCode::OK);
        assert!(
            parts.headers.get("x-ratelimit-limit-tokens").is_none(),
            "spend is not advertised as a token rate limit"
        );
        // 10 micro-USD per token at this model's price.
        charged += body["usage"]["total_tokens"].as_u64().unwrap() * 10;
        assert_eq!(
            used_tokens(&gw, "spender"),
            charged,
            "the counter holds the real cost"
        );
    }
    let refused = refused.expect("the budget of 2000 micro-USD ran out");
    assert_eq!(refused["error"]["code"], "insufficient_quota");
    assert!(charged <= 2000, "never charged past the budget: {charged}");
    assert!(
        charged > 2000 - 300,
        "refused only once the next request would not fit: {charged}"
    );
}

#[test]
fn spend_limits_need_every_model_priced() {
    let config = r#"
providers:
  mock: { kind: mock }
models:
  - { name: unpriced, provider: mock }
plans:
  budget:
    limits:
      - { window_s: 86400, spend_usd: 5 }
routes:
  - { match: { path_prefix: /v1 }, ai: {} }
"#;
    let error = Config::from_yaml(config, |_| None).unwrap_err().to_string();
    assert!(
        error.contains("models[0].pricing") && error.contains("spend limit"),
        "{error}"
    );
    let negative = config.replace("spend_usd: 5", "spend_usd: -1");
    let error = Config::from_yaml(&negative, |_| None)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("spend_usd: must be a positive number"),
        "{error}"
    );
    let tiny = config.replace("spend_usd: 5", "spend_usd: 0.0000004");
    let error = Config::from_yaml(&tiny, |_| None).unwrap_err().to_string();
    assert!(error.contains("one micro-dollar"), "{error}");
    let negative_price = config.replace(
        "{ name: unpriced, provider: mock }",
        "{ name: unpriced, provider: mock, pricing: { input: -1.0, cached_input: 0.0, output: 1.0 } }",
    );
    let error = Config::from_yaml(&negative_price, |_| None)
        .unwrap_err()
        .to_string();
    assert!(error.contains("models[0].pricing.input"), "{error}");
}

/// Translated embeddings fan out; what the calls that succeeded cost is
/// charged when a later one fails.
const FAN_OUT_CONFIG: &str = r#"
providers:
  bedrock: { kind: bedrock, region: us-east-1, base_url: "http://bedrock.internal", access_key_id: "${env:AWS_KEY}", secret_access_key: "${env:AWS_SECRET}" }
  gemini: { kind: gemini, base_url: "http://gemini.internal/v1beta", api_key: "${env:AWS_KEY}" }
  mock: { kind: mock }
models:
  - { name: titan, provider: bedrock, upstream_model: "amazon.titan-embed-text-v2:0" }
  - { name: gemini-embed, provider: gemini, upstream_model: gemini-embedding-001 }
  - name: titan-or-mock
    provider: bedrock
    upstream_model: "amazon.titan-embed-text-v2:0"
    fallbacks: [{ provider: mock }]
admin:
  path_prefix: /admin
  key_sha256: "${env:ADMIN_SHA}"
plans:
  tokens:
    limits:
      - { name: tpm, window_s: 60, tokens: 1000000, algorithm: fixed_window }
routes:
  - name: ai
    match: { path_prefix: /v1 }
    auth: { methods: [api_key] }
    ai: {}
"#;

/// A Titan and Gemini upstream that bills what it embeds (Titan: one token
/// per byte, as `inputTextTokenCount`) into `billed`, and fails the call for
/// a text holding `FAIL` (500) or `THROTTLE` (429).
fn billing_embedder(billed: std::sync::Arc<std::sync::atomic::AtomicU64>) -> FakeHttp {
    FakeHttp::new(move |request| {
        let body: Value = serde_json::from_slice(request.body()).unwrap();
        let texts: Vec<String> = match body["requests"].as_array() {
            Some(requests) => requests
                .iter()
                .map(|r| {
                    r["content"]["parts"][0]["text"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect(),
            None => vec![body["inputText"].as_str().unwrap().to_owned()],
        };
        let failure = |status: u16, kind: &str| {
            let mut response = Response::new(Body::from(r#"{"message":"failed"}"#));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            response
                .headers_mut()
                .insert("x-amzn-errortype", kind.parse().unwrap());
            FakeReply::Respond(response)
        };
        if texts.iter().any(|t| t.contains("FAIL")) {
            return failure(500, "InternalServerException");
        }
        if texts.iter().any(|t| t.contains("THROTTLE")) {
            return failure(429, "ThrottlingException");
        }
        let reply = if body.get("requests").is_some() {
            // Gemini reports no usage: the gateway estimates it.
            let estimate: u64 = texts
                .iter()
                .map(|t| crate::ai::usage::estimate_tokens(t))
                .sum();
            billed.fetch_add(estimate, Ordering::SeqCst);
            let embeddings: Vec<Value> = texts.iter().map(|_| json!({"values": [0.5]})).collect();
            json!({"embeddings": embeddings})
        } else {
            let tokens = texts[0].len() as u64;
            billed.fetch_add(tokens, Ordering::SeqCst);
            json!({"embedding": [0.5, -0.25], "inputTextTokenCount": tokens})
        };
        FakeReply::Respond(Response::new(Body::from(reply.to_string())))
    })
}

fn fan_out_gateway() -> (
    Gateway<TestPlatform>,
    FakeHttp,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    let sha = hex(&sha256(ADMIN_KEY.as_bytes()));
    let config = Config::from_yaml(FAN_OUT_CONFIG, |n| match n {
        "ADMIN_SHA" => Some(sha.clone()),
        "AWS_KEY" | "AWS_SECRET" => Some("test".into()),
        _ => None,
    })
    .unwrap();
    let billed = std::sync::Arc::default();
    let http = billing_embedder(std::sync::Arc::clone(&billed));
    (
        Gateway::new(config, TestPlatform::new(http.clone())),
        http,
        billed,
    )
}

fn embed(gw: &Gateway<TestPlatform>, key: &str, model: &str, inputs: &[String]) -> StatusCode {
    let request = Request::post("/v1/embeddings")
        .header("authorization", format!("Bearer {key}"))
        .body(Bytes::from(
            json!({"model": model, "input": inputs}).to_string(),
        ))
        .unwrap();
    let (parts, body) = block_on(gw.handle(request)).into_parts();
    drop(block_on(body.collect(usize::MAX)));
    parts.status
}

#[test]
fn partial_embeddings_failures_charge_the_calls_that_succeeded() {
    for (marker, status) in [
        ("FAIL", StatusCode::BAD_GATEWAY),
        ("THROTTLE", StatusCode::TOO_MANY_REQUESTS),
    ] {
        let (gw, http, billed) = fan_out_gateway();
        let consumer_id = format!("fan-{}", marker.to_lowercase());
        let key = consumer(&gw, &consumer_id, "tokens");
        // 40 Titan calls; the 20th fails.
        let inputs: Vec<String> = (0..40)
            .map(|i| {
                if i == 19 {
                    format!("{marker} {i}")
                } else {
                    format!("text number {i}")
                }
            })
            .collect();
        assert_eq!(embed(&gw, &key, "titan", &inputs), status, "{marker}");
        let successful: u64 = inputs[..19].iter().map(|t| t.len() as u64).sum();
        assert_eq!(billed.load(Ordering::SeqCst), successful, "{marker}");
        assert_eq!(
            used_tokens(&gw, &consumer_id),
            successful,
            "{marker}: the counter holds what the 19 successful calls cost"
        );
        assert!(
            http.requests().len() < inputs.len(),
            "{marker}: no call starts after the failure"
        );
    }
}

#[test]
fn partial_gemini_failures_charge_the_batches_that_succeeded() {
    let (gw, http, billed) = fan_out_gateway();
    let key = consumer(&gw, "fan-gemini", "tokens");
    // Batches of 100; the third fails.
    let mut inputs: Vec<String> = (0..450).map(|i| format!("text number {i}")).collect();
    inputs[250] = "FAIL".into();
    assert_eq!(
        embed(&gw, &key, "gemini-embed", &inputs),
        StatusCode::BAD_GATEWAY
    );
    let successful: u64 = inputs[..200]
        .iter()
        .map(|t| crate::ai::usage::estimate_tokens(t))
        .sum();
    assert_eq!(billed.load(Ordering::SeqCst), successful);
    assert_eq!(used_tokens(&gw, "fan-gemini"), successful);
    assert_eq!(
        http.requests().len(),
        3,
        "no batch starts after the failure"
    );
}

#[test]
fn a_partial_failure_that_falls_back_charges_both_deployments() {
    let (gw, _, billed) = fan_out_gateway();
    let key = consumer(&gw, "fan-fallback", "tokens");
    let inputs: Vec<String> = vec!["first text".into(), "THROTTLE".into(), "third".into()];
    assert_eq!(embed(&gw, &key, "titan-or-mock", &inputs), StatusCode::OK);
    // Titan billed the first call; the mock served all three (estimated).
    let mock: u64 = inputs
        .iter()
        .map(|t| crate::ai::usage::estimate_tokens(t))
        .sum();
    assert_eq!(billed.load(Ordering::SeqCst), 10);
    assert_eq!(used_tokens(&gw, "fan-fallback"), 10 + mock);
}
