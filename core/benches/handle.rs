//! In-process gateway overhead: `Gateway::handle` on the in-memory platform,
//! no sockets. Run: `cargo bench -p gateway-core --features test-util`.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use futures_executor::block_on;
use futures_util::StreamExt;
use gateway_core::testing::{FakeHttp, FakeReply, TestPlatform};
use gateway_core::{Body, Config, Gateway};
use http::{Request, Response};

const CONFIG: &str = r"
providers:
  mock: { kind: mock }
models:
  - { name: mock-gpt, provider: mock }
routes:
  - name: ai
    match: { path_prefix: /v1 }
    ai: {}
  - name: rest
    match: { path_prefix: /api, methods: [GET, POST] }
    proxy: { url: 'http://upstream.internal/base', strip_prefix: true }
";

fn gateway() -> Gateway<TestPlatform> {
    let config = Config::from_yaml(CONFIG, |_| None).expect("bench config");
    let http =
        FakeHttp::unrecorded(|_| FakeReply::Respond(Response::new(Body::from("{\"ok\":true}"))));
    Gateway::new(config, TestPlatform::new(http))
}

fn drain(response: Response<Body>) -> usize {
    block_on(
        response
            .into_body()
            .map(|c| c.map_or(0, |b| b.len()))
            .fold(0, |a, n| async move { a + n }),
    )
}

fn bench_handle(c: &mut Criterion) {
    let gw = gateway();
    c.bench_function("proxy_get_round_trip", |b| {
        b.iter(|| {
            let request = Request::get("/api/items/42?x=1")
                .header("host", "gw.example")
                .body(Bytes::new())
                .expect("request");
            drain(block_on(gw.handle(request)))
        });
    });
    let chat = Bytes::from_static(
        br#"{"model":"mock-gpt","messages":[{"role":"user","content":"Say hello"}]}"#,
    );
    c.bench_function("mock_chat_completion", |b| {
        b.iter(|| {
            let request = Request::post("/v1/chat/completions")
                .body(chat.clone())
                .expect("request");
            drain(block_on(gw.handle(request)))
        });
    });
    c.bench_function("route_not_found", |b| {
        b.iter(|| {
            let request = Request::get("/nope").body(Bytes::new()).expect("request");
            drain(block_on(gw.handle(request)))
        });
    });
}

const AUTH_CONFIG: &str = r#"
auth:
  jwt:
    corp:
      issuer: https://issuer.bench
      audience: [gateway]
      keys:
        - { kid: rsa1, alg: RS256, pem: "${env:RSA1}" }
        - { kid: ec1, alg: ES256, pem: "${env:EC1}" }
        - { kid: ed1, alg: EdDSA, pem: "${env:ED1}" }
admin:
  path_prefix: /admin
  key_sha256: "${env:ADMIN_SHA}"
routes:
  - name: keyed
    match: { path_prefix: /api }
    auth: { methods: [api_key, jwt] }
    proxy: { url: 'http://upstream.internal' }
"#;

/// Per-request cost of authentication: the same proxy round trip as
/// `proxy_get_round_trip`, with an API key (cache hit) or a JWT.
fn bench_auth(c: &mut Criterion) {
    use gateway_core::testing::jwt_fixtures::*;
    use jsonwebtoken::Algorithm;

    let admin_key = "bench-admin-key";
    let env = |name: &str| -> Option<String> {
        Some(match name {
            "RSA1" => RSA1_PUBLIC.to_owned(),
            "EC1" => EC256_PUBLIC.to_owned(),
            "ED1" => ED25519_PUBLIC.to_owned(),
            "ADMIN_SHA" => {
                gateway_core::util::hex(&gateway_core::auth::api_key::sha256(admin_key.as_bytes()))
            }
            _ => return None,
        })
    };
    let config = Config::from_yaml(AUTH_CONFIG, env).expect("bench config");
    let http =
        FakeHttp::unrecorded(|_| FakeReply::Respond(Response::new(Body::from("{\"ok\":true}"))));
    let gw = Gateway::new(config, TestPlatform::new(http));
    let admin = |path: &str, body: &str| {
        let request = Request::post(path)
            .header("authorization", format!("Bearer {admin_key}"))
            .body(Bytes::from(body.to_owned()))
            .expect("request");
        let response = block_on(gw.handle(request));
        let body = block_on(response.into_body().collect(usize::MAX)).expect("body");
        serde_json::from_slice::<serde_json::Value>(&body).expect("json")
    };
    admin("/admin/consumers", r#"{"id":"bench"}"#);
    let key = admin("/admin/consumers/bench/keys", "{}")["key"]
        .as_str()
        .expect("key")
        .to_owned();

    let run = |credential: &str| {
        let request = Request::get("/api/items/42")
            .header("authorization", format!("Bearer {credential}"))
            .body(Bytes::new())
            .expect("request");
        let response = block_on(gw.handle(request));
        assert_eq!(response.status(), 200);
        drain(response)
    };
    c.bench_function("auth_api_key_cache_hit", |b| b.iter(|| run(&key)));
    let now = 1_700_000_000;
    let claims = claims("https://issuer.bench", "gateway", "bench", now);
    let cached = sign(Algorithm::EdDSA, ED25519_PRIVATE, Some("ed1"), &claims);
    c.bench_function("auth_jwt_cache_hit", |b| b.iter(|| run(&cached)));

    // Signature verification alone (what a token's first request costs).
    let issuer = gw.config().auth.issuers[0].clone();
    let jwks = gateway_core::auth::jwt::JwksCache::default();
    let platform = gw.platform();
    for (name, alg, private, kid) in [
        (
            "auth_jwt_verify_rs256",
            Algorithm::RS256,
            RSA1_PRIVATE,
            "rsa1",
        ),
        (
            "auth_jwt_verify_es256",
            Algorithm::ES256,
            EC256_PRIVATE,
            "ec1",
        ),
        (
            "auth_jwt_verify_eddsa",
            Algorithm::EdDSA,
            ED25519_PRIVATE,
            "ed1",
        ),
    ] {
        let token = sign(alg, private, Some(kid), &claims);
        c.bench_function(name, |b| {
            b.iter(|| {
                block_on(gateway_core::auth::jwt::verify_token(
                    &issuer,
                    &token,
                    &platform.http,
                    &platform.clock,
                    &jwks,
                ))
                .expect("valid token")
            })
        });
    }
}

const QUOTA_CONFIG: &str = r"
plans:
  sliding:
    limits:
      - { name: rps, window_s: 1, requests: 1000000000000 }
  fixed:
    limits:
      - { name: rps, window_s: 1, requests: 1000000000000, algorithm: fixed_window }
routes:
  - name: sliding
    match: { path_prefix: /sliding }
    plan: sliding
    proxy: { url: 'http://upstream.internal' }
  - name: fixed
    match: { path_prefix: /fixed }
    plan: fixed
    proxy: { url: 'http://upstream.internal' }
";

/// The quota phase on the in-memory store: the proxy round trip of
/// `proxy_get_round_trip` plus one request limit (and its headers).
fn bench_quota(c: &mut Criterion) {
    let config = Config::from_yaml(QUOTA_CONFIG, |_| None).expect("bench config");
    let http = FakeHttp::unrecorded(|_| FakeReply::Respond(Response::new(Body::from("ok"))));
    let gw = Gateway::new(config, TestPlatform::new(http));
    for (name, path) in [
        ("quota_fixed_window_request_limit", "/fixed/x"),
        ("quota_sliding_window_request_limit", "/sliding/x"),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| {
                let request = Request::get(path).body(Bytes::new()).expect("request");
                let response = block_on(gw.handle(request));
                assert_eq!(response.status(), 200);
                drain(response)
            })
        });
    }
}

/// OpenAI → Anthropic translation: a request with a system prompt, two
/// turns and a tool; the response with text and a tool call; one streamed
/// text delta.
fn bench_translation(c: &mut Criterion) {
    use gateway_core::ai::providers::anthropic::{
        anthropic_request, anthropic_response_to_openai, AnthropicStreamTranslator,
    };
    use gateway_core::ai::ChatRequest;
    use serde_json::json;

    let body = json!({
        "model": "claude", "max_tokens": 512,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": "Let me check."},
            {"role": "user", "content": "Please use the tool."}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]
    })
    .to_string();
    let chat = ChatRequest::parse(body.as_bytes()).expect("chat");
    c.bench_function("anthropic_request_translation", |b| {
        b.iter(|| anthropic_request(&chat, "claude-sonnet-4-5").expect("mapped"))
    });
    let message = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Let me check the weather."}, {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 412, "output_tokens": 48, "cache_read_input_tokens": 300}
    });
    c.bench_function("anthropic_response_translation", |b| {
        b.iter(|| anthropic_response_to_openai(&message, "claude", 1))
    });
    let mut translator = AnthropicStreamTranslator::new("claude", 1, true);
    let delta = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello there"}});
    c.bench_function("anthropic_stream_text_delta", |b| {
        b.iter(|| translator.on_event(&delta))
    });

    use gateway_core::ai::providers::gemini::{
        gemini_request, gemini_response_to_openai, GeminiStreamTranslator,
    };
    c.bench_function("gemini_request_translation", |b| {
        b.iter(|| gemini_request(&chat).expect("mapped"))
    });
    let response = json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Let me check the weather."}, {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 15, "totalTokenCount": 135}
    });
    c.bench_function("gemini_response_translation", |b| {
        b.iter(|| gemini_response_to_openai(&response, "gemini", 1))
    });
    let mut gemini_translator = GeminiStreamTranslator::new("gemini", 1, true);
    let chunk = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello there"}]}, "index": 0}]});
    c.bench_function("gemini_stream_chunk", |b| {
        b.iter(|| gemini_translator.on_response(&chunk))
    });

    use gateway_core::ai::providers::bedrock::{
        bedrock_request, bedrock_response_to_openai, BedrockStreamTranslator, ConverseEvents,
    };
    use gateway_core::ai::sse::EventSource;
    c.bench_function("bedrock_request_translation", |b| {
        b.iter(|| bedrock_request(&chat).expect("mapped"))
    });
    let converse = json!({
        "output": {"message": {"role": "assistant", "content": [{"text": "Let me check the weather."}, {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"location": "Paris"}}}]}},
        "stopReason": "tool_use", "usage": {"inputTokens": 412, "outputTokens": 48, "totalTokens": 760, "cacheReadInputTokens": 300}
    });
    c.bench_function("bedrock_response_translation", |b| {
        b.iter(|| bedrock_response_to_openai(&converse, "claude", "chatcmpl-1", 1))
    });
    // One binary event-stream frame: CRC checks, header decode, translation.
    let frame = gateway_core::aws::event_stream::encode_message(
        &[
            (":event-type", "contentBlockDelta"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        br#"{"contentBlockIndex":0,"delta":{"text":"Hello there"},"p":"abcdefghij"}"#,
    );
    let mut events = ConverseEvents::default();
    let mut bedrock_translator = BedrockStreamTranslator::new("chatcmpl-1", "claude", 1, true);
    c.bench_function("bedrock_stream_frame", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            events
                .push(&frame, &mut |data| {
                    let event = serde_json::from_str(data).expect("json");
                    out.extend(bedrock_translator.on_event(&event));
                })
                .expect("frame");
            out
        })
    });

    use gateway_core::aws::sigv4::{sign, AwsCredentials, SigningScope};
    use gateway_core::config::Secret;
    let credentials = AwsCredentials {
        access_key_id: Secret::new("AKIDEXAMPLE"),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        session_token: Some(Secret::new("session-token")),
    };
    let converse_body = bytes::Bytes::from(bedrock_request(&chat).expect("mapped").to_string());
    c.bench_function("sigv4_sign_bedrock_request", |b| {
        b.iter(|| {
            let mut request = http::Request::post(
                "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse",
            )
            .header("content-type", "application/json")
            .body(converse_body.clone())
            .expect("request");
            let scope = SigningScope { region: "us-east-1", service: "bedrock", unix_time: 1_764_000_000 };
            sign(&mut request, &credentials, scope).expect("signed")
        })
    });
}

criterion_group!(
    benches,
    bench_handle,
    bench_auth,
    bench_quota,
    bench_translation
);
criterion_main!(benches);
