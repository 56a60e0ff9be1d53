//! The Anthropic Messages dialect through `Gateway::handle`, in memory:
//! native pass-through to an Anthropic deployment, translation over the
//! mock and an OpenAI-compatible upstream, accounting, error shapes,
//! `count_tokens` and model aliases.

use bytes::Bytes;
use futures_executor::block_on;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::auth::api_key::sha256;
use crate::testing::{admin_call, FakeHttp, FakeReply, TestPlatform};
use crate::util::hex;
use crate::{Body, Config, Gateway};

const ADMIN_KEY: &str = "messages-admin";
const RESPONSE_TOOL_USE: &str =
    include_str!("../../tests/fixtures/anthropic/response_tool_use.json");
const STREAM_TOOL_USE: &str = include_str!("../../tests/fixtures/anthropic/stream_tool_use.sse");

const CONFIG: &str = r#"
providers:
  mock: { kind: mock }
  claude: { kind: anthropic, base_url: "http://anthropic.internal/v1", api_key: "${env:LLM_KEY}" }
  upstream: { kind: openai, base_url: "http://llm.internal/v1", api_key: "${env:LLM_KEY}" }
models:
  - { name: mock-gpt, provider: mock, pricing: { input: 1.0, cached_input: 1.0, output: 1.0 } }
  - { name: sonnet, provider: claude, upstream_model: claude-sonnet-4-5 }
  - { name: gpt, provider: upstream, upstream_model: gpt-4o-mini-2024-07-18, max_output_tokens: 16384 }
model_aliases:
  - { name: "claude-*", model: mock-gpt }
  - { name: claude-opus-4-8, model: sonnet }
  - { name: "*-via-gpt", model: gpt }
admin:
  path_prefix: /admin
  key_sha256: "${env:ADMIN_SHA}"
plans:
  tokens:
    limits:
      - { name: daily, window_s: 86400, tokens: 5000, algorithm: fixed_window }
routes:
  - name: ai
    match: { path_prefix: /v1 }
    auth: { methods: [api_key] }
    ai: {}
"#;

/// The Anthropic and OpenAI upstreams: fixtures by path and `stream`.
fn upstream() -> FakeHttp {
    FakeHttp::new(|request| {
        let body: Value = serde_json::from_slice(request.body()).unwrap_or(Value::Null);
        let path = request.uri().path();
        let reply = |status: u16, text: String, sse: bool| {
            let mut response = Response::new(Body::from(text));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            let kind = if sse {
                "text/event-stream"
            } else {
                "application/json"
            };
            response
                .headers_mut()
                .insert("content-type", kind.parse().unwrap());
            FakeReply::Respond(response)
        };
        match path {
            "/v1/messages/count_tokens" => reply(200, r#"{"input_tokens":1234}"#.into(), false),
            "/v1/messages" if body["stream"] == true => {
                // One chunk per event, as a provider streams them.
                let frames: Vec<Result<Bytes, crate::BodyError>> = STREAM_TOOL_USE
                    .split_inclusive("\n\n")
                    .map(|frame| Ok(Bytes::from(frame.to_owned())))
                    .collect();
                let mut response = Response::new(Body::from_stream(futures_util::stream::iter(frames)));
                response
                    .headers_mut()
                    .insert("content-type", "text/event-stream".parse().unwrap());
                FakeReply::Respond(response)
            }
            "/v1/messages" => reply(200, RESPONSE_TOOL_USE.into(), false),
            "/v1/chat/completions" => reply(
                200,
                json!({
                    "id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                        "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"pwd\"}"}}]}}],
                    "usage": {"prompt_tokens": 70, "completion_tokens": 9, "total_tokens": 79}
                })
                .to_string(),
                false,
            ),
            _ => reply(404, "{}".into(), false),
        }
    })
}

fn gateway() -> Gateway<TestPlatform> {
    let sha = hex(&sha256(ADMIN_KEY.as_bytes()));
    let config = Config::from_yaml(CONFIG, |n| match n {
        "ADMIN_SHA" => Some(sha.clone()),
        "LLM_KEY" => Some("sk-provider-key".into()),
        _ => None,
    })
    .unwrap();
    Gateway::new(config, TestPlatform::new(upstream()))
}

/// A consumer on the `tokens` plan with a key.
fn consumer(gw: &Gateway<TestPlatform>, id: &str) -> String {
    admin_call(
        gw,
        ADMIN_KEY,
        "POST",
        "/consumers",
        &json!({"id": id, "plan": "tokens"}),
    );
    admin_call(
        gw,
        ADMIN_KEY,
        "POST",
        &format!("/consumers/{id}/keys"),
        &json!({}),
    )
    .1["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn used_tokens(gw: &Gateway<TestPlatform>, consumer: &str) -> u64 {
    let usage = admin_call(
        gw,
        ADMIN_KEY,
        "GET",
        &format!("/consumers/{consumer}/usage"),
        &Value::Null,
    )
    .1;
    usage["limits"][0]["used"]
        .as_u64()
        .unwrap_or_else(|| panic!("no usage: {usage}"))
}

fn messages(key: &str, path: &str, body: &Value) -> Request<Bytes> {
    Request::post(path)
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header(
            "anthropic-beta",
            "interleaved-thinking-2025-05-14,context-management-2025-06-27",
        )
        .body(Bytes::from(body.to_string()))
        .unwrap()
}

fn ask(model: &str, stream: bool) -> Value {
    json!({
        "model": model, "max_tokens": 1000, "stream": stream,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "thinking": {"type": "adaptive"},
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "Bash", "description": "Run", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}],
    })
}

fn send(gw: &Gateway<TestPlatform>, request: Request<Bytes>) -> (http::response::Parts, String) {
    let (parts, body) = block_on(gw.handle(request)).into_parts();
    let bytes = block_on(body.collect(usize::MAX)).unwrap();
    (parts, String::from_utf8_lossy(&bytes).into_owned())
}

/// `(event name, data)` of an SSE body; every frame must be named.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let (name, data) = frame.split_once('\n').unwrap_or_else(|| panic!("{frame}"));
            let name = name
                .strip_prefix("event: ")
                .unwrap_or_else(|| panic!("{frame}"));
            let data = data
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("{frame}"));
            (name.to_owned(), serde_json::from_str(data).unwrap())
        })
        .collect()
}

#[test]
fn an_anthropic_deployment_gets_the_request_natively() {
    let gw = gateway();
    let key = consumer(&gw, "native");
    let body = ask("claude-opus-4-8", false);
    let (parts, text) = send(&gw, messages(&key, "/v1/messages?beta=true", &body));
    assert_eq!(parts.status, StatusCode::OK, "{text}");
    // Relayed as the provider sent it (no double translation), but for the
    // model it names: the one the client asked for.
    let mut expected: Value = serde_json::from_str(RESPONSE_TOOL_USE).unwrap();
    expected["model"] = json!("claude-opus-4-8");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected);
    let sent = gw.platform().http.requests();
    let upstream = sent.last().unwrap();
    assert_eq!(upstream.uri().path(), "/v1/messages");
    assert_eq!(upstream.headers()["x-api-key"], "sk-provider-key");
    assert_eq!(upstream.headers()["anthropic-version"], "2023-06-01");
    assert_eq!(
        upstream.headers()["anthropic-beta"],
        "interleaved-thinking-2025-05-14,context-management-2025-06-27"
    );
    let mut expected = body.clone();
    expected["model"] = json!("claude-sonnet-4-5");
    let forwarded: Value = serde_json::from_slice(upstream.body()).unwrap();
    assert_eq!(
        forwarded, expected,
        "the client's body, the deployment's model"
    );
    // Accounting read the provider's usage: 412 + 100 + 300 in, 48 out.
    assert_eq!(used_tokens(&gw, "native"), 860);
}

#[test]
fn a_native_stream_is_relayed_and_settled_from_its_usage_events() {
    let gw = gateway();
    let key = consumer(&gw, "native-stream");
    let (parts, text) = send(
        &gw,
        messages(&key, "/v1/messages", &ask("claude-opus-4-8", true)),
    );
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["content-type"], "text/event-stream");
    // The provider's events byte for byte, but for the model that
    // message_start names: the one the client asked for.
    let frames: Vec<&str> = text.split_inclusive("\n\n").collect();
    let sent: Vec<&str> = STREAM_TOOL_USE.split_inclusive("\n\n").collect();
    assert_eq!(frames.len(), sent.len());
    assert_eq!(frames[1..], sent[1..]);
    let start = |frame: &str| -> Value {
        serde_json::from_str(frame.split_once("data: ").unwrap().1.trim()).unwrap()
    };
    let mut expected = start(sent[0]);
    expected["message"]["model"] = json!("claude-opus-4-8");
    assert!(frames[0].starts_with("event: message_start\n"));
    assert_eq!(start(frames[0]), expected);
    // message_start: 472 in + 64 cache reads; message_delta: 89 out.
    assert_eq!(used_tokens(&gw, "native-stream"), 472 + 64 + 89);
}

#[test]
fn a_native_stream_left_early_charges_the_reported_prompt_and_the_cap() {
    let gw = gateway();
    let key = consumer(&gw, "left");
    let mut body = block_on(gw.handle(messages(
        &key,
        "/v1/messages",
        &ask("claude-opus-4-8", true),
    )))
    .into_body();
    let first = block_on(body.next()).unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("message_start"));
    drop(body);
    gw.platform().run_background();
    // The provider's input count from message_start, and the whole cap for
    // the output it may have generated.
    assert_eq!(used_tokens(&gw, "left"), 472 + 64 + 1000);
}

#[test]
fn the_mock_provider_answers_in_anthropic_shape_through_an_alias() {
    let gw = gateway();
    let key = consumer(&gw, "mock");
    let (parts, text) = send(
        &gw,
        messages(&key, "/v1/messages", &ask("claude-haiku-4-5", false)),
    );
    assert_eq!(parts.status, StatusCode::OK, "{text}");
    let message: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(
        message["model"], "claude-haiku-4-5",
        "the name the client asked for"
    );
    assert_eq!(message["stop_reason"], "end_turn");
    let reply = message["content"][0]["text"].as_str().unwrap();
    assert!(reply.ends_with("You said: hi"), "{reply}");
    let usage = &message["usage"];
    let charged =
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap();
    assert!(charged > 0);
    assert_eq!(
        used_tokens(&gw, "mock"),
        charged,
        "charged what the reply says"
    );

    let (parts, text) = send(
        &gw,
        messages(&key, "/v1/messages", &ask("claude-haiku-4-5", true)),
    );
    assert_eq!(parts.status, StatusCode::OK);
    let events = events(&text);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        &names[..3],
        ["message_start", "ping", "content_block_start"]
    );
    assert_eq!(
        &names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert!(
        events[0].1["message"]["usage"]["input_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    let streamed: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(
        streamed, reply,
        "the stream says what the complete reply says"
    );
    let final_usage = &events[events.len() - 2].1["usage"];
    let streamed_total = final_usage["input_tokens"].as_u64().unwrap()
        + final_usage["output_tokens"].as_u64().unwrap();
    assert_eq!(used_tokens(&gw, "mock"), charged + streamed_total);
}

#[test]
fn an_openai_upstream_gets_the_canonical_request_and_its_tool_call_comes_back_as_tool_use() {
    let gw = gateway();
    let key = consumer(&gw, "translated");
    let (parts, text) = send(
        &gw,
        messages(&key, "/v1/messages", &ask("bash-via-gpt", false)),
    );
    assert_eq!(parts.status, StatusCode::OK, "{text}");
    let sent = gw.platform().http.requests();
    let upstream: Value = serde_json::from_slice(sent.last().unwrap().body()).unwrap();
    assert_eq!(sent.last().unwrap().uri().path(), "/v1/chat/completions");
    assert_eq!(upstream["model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(
        upstream["max_tokens"], 1000,
        "the cap in the field this server takes"
    );
    assert_eq!(
        upstream["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(upstream["tools"][0]["function"]["name"], "Bash");
    assert!(upstream.get("thinking").is_none());
    let message: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(
        message["content"][0],
        json!({"type": "tool_use", "id": "call_9", "name": "Bash", "input": {"command": "pwd"}})
    );
    assert_eq!(message["usage"]["input_tokens"], 70);
    assert_eq!(used_tokens(&gw, "translated"), 79);
}

fn error_of(text: &str) -> (String, String) {
    let error: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("{text}"));
    assert_eq!(error["type"], "error", "{text}");
    (
        error["error"]["type"].as_str().unwrap().to_owned(),
        error["error"]["message"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn errors_on_messages_paths_are_in_anthropic_shape() {
    let gw = gateway();
    let key = consumer(&gw, "errors");
    let mut no_max = ask("claude-haiku-4-5", false);
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let (parts, text) = send(&gw, messages(&key, "/v1/messages", &no_max));
    assert_eq!(parts.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_of(&text),
        (
            "invalid_request_error".into(),
            "max_tokens: Field required".into()
        )
    );

    let (parts, text) = send(
        &gw,
        messages("gw-not-a-key", "/v1/messages", &ask("claude-x", false)),
    );
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(&text).0, "authentication_error");

    let (parts, text) = send(
        &gw,
        messages(&key, "/v1/messages", &ask("gemini-pro", false)),
    );
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&text).0, "not_found_error");

    let (parts, text) = send(&gw, messages(&key, "/v1/messages", &json!("not an object")));
    assert_eq!(parts.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&text).0, "invalid_request_error");

    // A budget spent: 429 rate_limit_error with Retry-After.
    let mut big = ask("claude-haiku-4-5", false);
    big["max_tokens"] = json!(4990);
    send(&gw, messages(&key, "/v1/messages", &big));
    let (parts, text) = send(&gw, messages(&key, "/v1/messages", &big));
    assert_eq!(parts.status, StatusCode::TOO_MANY_REQUESTS, "{text}");
    assert_eq!(error_of(&text).0, "rate_limit_error");
    assert!(parts.headers.contains_key("retry-after"));

    // Chat Completions on the same route keep OpenAI's shape.
    let (parts, text) = send(
        &gw,
        Request::post("/v1/chat/completions")
            .header("x-api-key", "gw-not-a-key")
            .body(Bytes::from("{}"))
            .unwrap(),
    );
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    assert!(serde_json::from_str::<Value>(&text).unwrap()["error"]["code"].is_string());

    // Claude Code's probe of the base URL is a 404, not a failure.
    let (parts, _) = send(&gw, Request::head("/").body(Bytes::new()).unwrap());
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    let (parts, text) = send(
        &gw,
        Request::get("/v1/messages")
            .header("x-api-key", &key)
            .body(Bytes::new())
            .unwrap(),
    );
    assert_eq!(parts.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_of(&text).0, "invalid_request_error");
}

#[test]
fn count_tokens_is_native_on_anthropic_and_the_estimate_elsewhere() {
    let gw = gateway();
    let key = consumer(&gw, "counter");
    let mut body = ask("claude-opus-4-8", false);
    body.as_object_mut().unwrap().remove("max_tokens");
    body.as_object_mut().unwrap().remove("stream");
    let (parts, text) = send(&gw, messages(&key, "/v1/messages/count_tokens", &body));
    assert_eq!(parts.status, StatusCode::OK, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"input_tokens": 1234})
    );
    let sent = gw.platform().http.requests();
    let upstream = sent.last().unwrap();
    assert_eq!(upstream.uri().path(), "/v1/messages/count_tokens");
    assert_eq!(
        serde_json::from_slice::<Value>(upstream.body()).unwrap()["model"],
        "claude-sonnet-4-5"
    );

    body["model"] = json!("claude-haiku-4-5");
    let (parts, text) = send(&gw, messages(&key, "/v1/messages/count_tokens", &body));
    assert_eq!(parts.status, StatusCode::OK);
    let estimate = serde_json::from_str::<Value>(&text).unwrap()["input_tokens"]
        .as_u64()
        .unwrap();
    // The system, the message and the tool definition, 4 bytes a token.
    assert!((20..200).contains(&estimate), "{estimate}");
    // Counting generates nothing: nothing is charged.
    assert_eq!(used_tokens(&gw, "counter"), 0);
}

#[test]
fn aliases_are_validated() {
    let config = |aliases: &str| {
        let yaml = format!(
            "providers: {{ mock: {{ kind: mock }} }}\nmodels: [{{ name: m, provider: mock }}]\nmodel_aliases: {aliases}\nroutes: [{{ name: ai, match: {{ path_prefix: /v1 }}, ai: {{}} }}]\n"
        );
        Config::from_yaml(&yaml, |_| None)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    config(r#"[{ name: "claude-*", model: m }, { name: gpt-4o, model: m }]"#).unwrap();
    let unknown = config(r#"[{ name: "claude-*", model: nope }]"#).unwrap_err();
    assert!(
        unknown.contains("model_aliases[0].model") && unknown.contains("nope"),
        "{unknown}"
    );
    let shadow = config("[{ name: m, model: m }]").unwrap_err();
    assert!(shadow.contains("model_aliases[0].name"), "{shadow}");
    let twice = config(r#"[{ name: "a*", model: m }, { name: "a*", model: m }]"#).unwrap_err();
    assert!(twice.contains("model_aliases[1].name"), "{twice}");
    let empty = config(r#"[{ name: "", model: m }]"#).unwrap_err();
    assert!(empty.contains("model_aliases[0].name"), "{empty}");
}

#[test]
fn exact_aliases_win_over_wildcards_and_models_over_both() {
    let gw = gateway();
    let config = gw.config();
    let name = |requested: &str| {
        config
            .resolve_model(requested)
            .map(|i| config.models[i].name.as_str())
    };
    assert_eq!(
        name("claude-opus-4-8"),
        Some("sonnet"),
        "exact before the earlier-listed wildcard"
    );
    assert_eq!(name("claude-3-haiku"), Some("mock-gpt"));
    assert_eq!(name("gpt"), Some("gpt"));
    assert_eq!(name("x-via-gpt"), Some("gpt"));
    assert_eq!(name("claude"), None, "`claude-*` needs the dash");
    assert_eq!(name("mock-gpt"), Some("mock-gpt"));
}

#[test]
fn a_limit_above_the_models_output_limit_is_lowered_to_it() {
    // Claude Code asks for 64,000 output tokens; gpt-4o-mini refuses more
    // than 16,384, so the gateway asks for what the model gives.
    let gw = gateway();
    // No plan: the 5,000-token budget would refuse either reservation.
    let created = admin_call(
        &gw,
        ADMIN_KEY,
        "POST",
        "/consumers",
        &json!({"id": "clamped"}),
    );
    assert_eq!(created.0, 201, "{}", created.1);
    let key = admin_call(
        &gw,
        ADMIN_KEY,
        "POST",
        "/consumers/clamped/keys",
        &json!({}),
    )
    .1["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut body = ask("opus-via-gpt", false);
    body["max_tokens"] = json!(64000);
    let (parts, text) = send(&gw, messages(&key, "/v1/messages", &body));
    assert_eq!(parts.status, StatusCode::OK, "{text}");
    let sent = gw.platform().http.requests();
    let forwarded: Value = serde_json::from_slice(sent.last().unwrap().body()).unwrap();
    assert_eq!(forwarded["max_tokens"], 16384, "{forwarded}");
    // A smaller limit is the client's own.
    body["max_tokens"] = json!(300);
    send(&gw, messages(&key, "/v1/messages", &body));
    let sent = gw.platform().http.requests();
    let forwarded: Value = serde_json::from_slice(sent.last().unwrap().body()).unwrap();
    assert_eq!(forwarded["max_tokens"], 300, "{forwarded}");
}

#[test]
fn anthropic_clients_get_the_gateways_limits_in_anthropics_headers() {
    let gw = gateway();
    let key = consumer(&gw, "headers");
    let (parts, text) = send(&gw, messages(&key, "/v1/messages", &ask("mock-gpt", false)));
    assert_eq!(parts.status, StatusCode::OK, "{text}");
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", parts.headers))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("anthropic-ratelimit-tokens-limit"), "5000");
    let remaining: u64 = header("anthropic-ratelimit-tokens-remaining")
        .parse()
        .unwrap();
    assert!(remaining < 5000, "{remaining}");
    let reset = header("anthropic-ratelimit-tokens-reset");
    assert!(
        reset.len() == 20 && reset.ends_with('Z') && reset.as_bytes()[10] == b'T',
        "{reset}"
    );
    assert!(parts.headers.get("x-ratelimit-limit-tokens").is_none());
}
