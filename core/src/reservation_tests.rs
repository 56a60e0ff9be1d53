//! A reservation is a cap: the upstream call can never use more than the
//! request reserved, whatever the client left out, and what the provider
//! bills is what the counter ends at. The fake upstreams here behave like
//! real providers (they honour the completion limit they are sent, ramble
//! to 1000 tokens per choice without one) and bill independently of the
//! gateway's estimate.

use bytes::Bytes;
use futures_executor::block_on;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::auth::api_key::sha256;
use crate::testing::{admin_call, FakeHttp, FakeReply, TestPlatform};
use crate::util::hex;
use crate::{Body, Config, Gateway};

const ADMIN_KEY: &str = "cap-admin";

const CONFIG: &str = r#"
providers:
  openai: { kind: openai, base_url: "https://api.openai.com/v1", api_key: "${env:K}" }
  vllm: { kind: openai, base_url: "http://vllm.internal/v1" }
  claude: { kind: anthropic, base_url: "http://claude.internal", api_key: "${env:K}" }
models:
  - { name: gpt, provider: openai, upstream_model: gpt-5, pricing: { input: 1.0, cached_input: 1.0, output: 1.0 } }
  - { name: local, provider: vllm, upstream_model: llama, pricing: { input: 1.0, cached_input: 1.0, output: 1.0 } }
  - { name: silent, provider: vllm, upstream_model: no-usage, pricing: { input: 1.0, cached_input: 1.0, output: 1.0 } }
  - { name: stall, provider: vllm, upstream_model: stall, pricing: { input: 1.0, cached_input: 1.0, output: 1.0 } }
  - { name: greedy, provider: vllm, upstream_model: greedy, pricing: { input: 1.0, cached_input: 1.0, output: 1.0 } }
  - { name: claude, provider: claude, upstream_model: claude-x, pricing: { input: 1.0, cached_input: 1.0, output: 1.0 } }
admin:
  path_prefix: /admin
  key_sha256: "${env:ADMIN_SHA}"
plans:
  tokens:
    reserve_completion_tokens: 50
    limits:
      - { name: tph, window_s: 3600, tokens: 3000, algorithm: fixed_window }
routes:
  - name: ai
    match: { path_prefix: /v1 }
    auth: { methods: [api_key] }
    ai: {}
"#;

/// Tokens the fake providers bill as prompt, whatever was sent.
const BILLED_PROMPT: u64 = 20;
/// What a fake provider generates per choice when nothing limits it.
const RAMBLE: u64 = 1000;

/// The completion limit a request carried (`None`: unlimited).
fn sent_limit(body: &Value) -> Option<u64> {
    ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| body[*k].as_u64())
}

/// A provider that honours the limit it is sent, like the real ones.
fn provider(request: &Request<Bytes>) -> FakeReply {
    let body: Value = serde_json::from_slice(request.body()).unwrap();
    let per_choice = sent_limit(&body).unwrap_or(RAMBLE).min(RAMBLE);
    let json = |v: Value| {
        let mut response = Response::new(Body::from(v.to_string()));
        response
            .headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        FakeReply::Respond(response)
    };
    if request.uri().host() == Some("claude.internal") {
        return json(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": "words"}], "stop_reason": "max_tokens",
            "stop_sequence": null,
            "usage": {"input_tokens": BILLED_PROMPT, "output_tokens": per_choice},
        }));
    }
    if body["model"] == "stall" {
        // Headers, then (for a stream) one chunk, then nothing ever again.
        let first = Bytes::from_static(b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n");
        let chunks = if body["stream"] == true {
            vec![Ok(first)]
        } else {
            vec![]
        };
        let stalled = futures_util::stream::iter(chunks).chain(futures_util::stream::pending());
        return FakeReply::Respond(Response::new(Body::from_stream(stalled)));
    }
    let choices = body["n"].as_u64().unwrap_or(1);
    let completion = per_choice * choices;
    let mut reply = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
        "choices": (0..choices).map(|i| json!({"index": i, "finish_reason": "length",
            "message": {"role": "assistant", "content": "words"}})).collect::<Vec<_>>(),
        "usage": {"prompt_tokens": BILLED_PROMPT, "completion_tokens": completion,
            "total_tokens": BILLED_PROMPT + completion},
    });
    if body["model"] == "greedy" {
        reply["usage"] = json!({"prompt_tokens": u64::MAX, "completion_tokens": u64::MAX});
    }
    if body["model"] == "no-usage" {
        reply.as_object_mut().unwrap().remove("usage");
    }
    json(reply)
}

fn gateway() -> Gateway<TestPlatform> {
    let sha = hex(&sha256(ADMIN_KEY.as_bytes()));
    let config = Config::from_yaml(CONFIG, |n| match n {
        "ADMIN_SHA" => Some(sha.clone()),
        "K" => Some("sk-provider".into()),
        _ => None,
    })
    .unwrap();
    Gateway::new(config, TestPlatform::new(FakeHttp::new(provider)))
}

fn admin(gw: &Gateway<TestPlatform>, method: &str, path: &str, body: Value) -> Value {
    admin_call(gw, ADMIN_KEY, method, path, &body).1
}

fn key(gw: &Gateway<TestPlatform>) -> String {
    admin(
        gw,
        "POST",
        "/consumers",
        json!({"id": "team", "plan": "tokens"}),
    );
    admin(gw, "POST", "/consumers/team/keys", json!({}))["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn counter(gw: &Gateway<TestPlatform>) -> u64 {
    admin(gw, "GET", "/consumers/team/usage", Value::Null)["limits"][0]["used"]
        .as_u64()
        .unwrap()
}

/// Sends a chat for `model` with `extra` fields; the status and the
/// reply's total usage (0 when it reports none).
fn chat(gw: &Gateway<TestPlatform>, key: &str, model: &str, extra: Value) -> (StatusCode, Value) {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": "hello"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let request = Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .body(Bytes::from(body.to_string()))
        .unwrap();
    let (parts, body) = block_on(gw.handle(request)).into_parts();
    let body = block_on(body.collect(usize::MAX)).unwrap();
    (
        parts.status,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// The last request the fake provider received.
fn last_sent(gw: &Gateway<TestPlatform>) -> Value {
    let requests = gw.platform().http.requests();
    serde_json::from_slice(requests.last().unwrap().body()).unwrap()
}

#[test]
fn a_chat_without_a_limit_is_sent_with_the_reserved_cap_in_each_vendors_field() {
    let gw = gateway();
    let key = key(&gw);
    assert_eq!(chat(&gw, &key, "gpt", json!({})).0, StatusCode::OK);
    let sent = last_sent(&gw);
    assert_eq!(sent["max_completion_tokens"], 50, "{sent}");
    assert!(sent.get("max_tokens").is_none(), "{sent}");
    assert_eq!(chat(&gw, &key, "local", json!({})).0, StatusCode::OK);
    let sent = last_sent(&gw);
    assert_eq!(sent["max_tokens"], 50, "{sent}");
    assert!(sent.get("max_completion_tokens").is_none(), "{sent}");
    assert_eq!(chat(&gw, &key, "claude", json!({})).0, StatusCode::OK);
    assert_eq!(
        last_sent(&gw)["max_tokens"],
        50,
        "not Anthropic's default 4096"
    );
    // The client's own limit is what it reserved: sent as it is.
    assert_eq!(
        chat(&gw, &key, "local", json!({"max_tokens": 70})).0,
        StatusCode::OK
    );
    assert_eq!(last_sent(&gw)["max_tokens"], 70);
}

/// Requests without `max_tokens`, with a five-tool list, until the budget
/// refuses: what the provider billed stays within the budget, and the
/// counter ends at exactly what it billed.
#[test]
fn uncapped_requests_never_bill_past_the_budget() {
    let gw = gateway();
    let key = key(&gw);
    let tools: Vec<Value> = (0..5)
        .map(|i| {
            json!({"type": "function", "function": {"name": format!("tool_{i}"),
            "description": "Looks something up in a system of record.",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}})
        })
        .collect();
    let (mut billed, mut refused) = (0, false);
    for _ in 0..200 {
        match chat(&gw, &key, "local", json!({"tools": tools})) {
            (StatusCode::OK, reply) => billed += reply["usage"]["total_tokens"].as_u64().unwrap(),
            (StatusCode::TOO_MANY_REQUESTS, _) => {
                refused = true;
                break;
            }
            (status, reply) => panic!("{status}: {reply}"),
        }
    }
    assert!(refused, "the budget must run out");
    assert!(
        billed <= 3000,
        "the provider billed {billed} on a 3000 budget"
    );
    assert_eq!(counter(&gw), billed);
}

#[test]
fn n_choices_reserve_n_times_the_limit() {
    let gw = gateway();
    let key = key(&gw);
    let (mut billed, mut admitted) = (0, 0);
    for _ in 0..6 {
        if let (StatusCode::OK, reply) =
            chat(&gw, &key, "local", json!({"n": 2, "max_tokens": 400}))
        {
            billed += reply["usage"]["total_tokens"].as_u64().unwrap();
            admitted += 1;
        }
    }
    // Each reserves ~2 × 400 + prompt: three fit in 3000, a fourth does not.
    assert_eq!(admitted, 3, "billed {billed}");
    assert!(billed <= 3000);
    assert_eq!(counter(&gw), billed);
}

#[test]
fn a_reply_without_usage_is_charged_its_whole_reservation() {
    let gw = gateway();
    let key = key(&gw);
    let (status, reply) = chat(&gw, &key, "silent", json!({"max_tokens": 100}));
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(reply.get("usage").is_none());
    // The prompt estimate of one short message, plus all 100 completion
    // tokens the provider may have produced (and billed).
    let used = counter(&gw);
    assert!(used >= 100 + 5, "charged {used}");
}

#[test]
fn tools_count_in_the_reservation() {
    let gw = gateway();
    let key = key(&gw);
    // ~5000 tokens of tool definitions cannot fit a 3000-token budget.
    let huge =
        json!([{"type": "function", "function": {"name": "f", "description": "x".repeat(20_000)}}]);
    let (status, reply) = chat(&gw, &key, "local", json!({"tools": huge, "max_tokens": 10}));
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{reply}");
    assert_eq!(reply["error"]["code"], "rate_limit_exceeded");
    assert_eq!(counter(&gw), 0);
}

#[test]
fn absurd_limits_are_refused_not_summed() {
    let gw = gateway();
    let key = key(&gw);
    for extra in [
        json!({"max_tokens": 18446744073709551615u64}),
        json!({"n": 0}),
        json!({"n": 100000}),
        json!({"max_tokens": 4294967295u64, "n": 128}),
    ] {
        let (status, reply) = chat(&gw, &key, "local", extra.clone());
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::TOO_MANY_REQUESTS,
            "{extra}: {status} {reply}"
        );
    }
    assert_eq!(counter(&gw), 0);
}

/// The whole text of a stream from the stalling upstream, with a runtime
/// deadline (Unix ms) if given.
fn stalled_stream(gw: &Gateway<TestPlatform>, key: &str, deadline: Option<u64>) -> String {
    let mut request = Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .body(Bytes::from(
            json!({"model": "stall", "stream": true, "max_tokens": 10,
                "messages": [{"role": "user", "content": "hello"}]})
            .to_string(),
        ))
        .unwrap();
    if let Some(unix_ms) = deadline {
        request
            .extensions_mut()
            .insert(crate::RuntimeDeadline { unix_ms });
    }
    let response = block_on(gw.handle(request));
    assert_eq!(response.status(), StatusCode::OK);
    block_on(StreamExt::collect::<Vec<_>>(response.into_body()))
        .into_iter()
        .map(|c| String::from_utf8_lossy(&c.unwrap()).into_owned())
        .collect()
}

/// An upstream that answers headers and then stalls: the complete reply
/// times out (504) and is settled; the stream ends with an error event
/// after its idle timeout and is settled, nothing held forever.
#[test]
fn an_upstream_that_stalls_after_headers_is_timed_out_and_settled() {
    let gw = gateway();
    let key = key(&gw);
    let (status, reply) = chat(&gw, &key, "stall", json!({"max_tokens": 10}));
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{reply}");
    assert_eq!(counter(&gw), 0, "a timed-out call is refunded");

    let text = stalled_stream(&gw, &key, None);
    assert!(text.contains("\"hi\""), "{text}");
    assert!(
        text.contains("\"error\""),
        "the stream ends with an error event: {text}"
    );
    // No usage came: the reservation (prompt estimate + 10) is charged.
    let used = counter(&gw);
    assert!((10..40).contains(&used), "charged {used}");
}

/// A runtime deadline (a Lambda invocation's) closer than the time needed
/// to settle: the stream ends at once with an error event and is settled,
/// instead of being killed with the reservation unsettled.
#[test]
fn a_stream_ends_and_settles_before_the_runtime_deadline() {
    let gw = gateway();
    let key = key(&gw);
    let now = crate::platform::Clock::now_unix_ms(&gw.platform().clock);
    let text = stalled_stream(&gw, &key, Some(now + 1_000));
    assert!(!text.contains("\"hi\""), "ended before relaying: {text}");
    assert!(text.contains("\"error\""), "{text}");
    assert!(counter(&gw) > 0, "settled, not lost");
}

/// A hostile upstream reporting `u64::MAX` tokens: accounting saturates
/// instead of panicking or wrapping, and the budget is spent.
#[test]
fn absurd_reported_usage_saturates() {
    let gw = gateway();
    let key = key(&gw);
    let (status, _) = chat(&gw, &key, "greedy", json!({"max_tokens": 10}));
    assert_eq!(status, StatusCode::OK);
    assert!(counter(&gw) >= 3000);
    let (status, _) = chat(&gw, &key, "local", json!({"max_tokens": 10}));
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}
