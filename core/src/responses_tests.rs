//! The OpenAI Responses dialect through `Gateway::handle`, in memory:
//! translation over an OpenAI-compatible and an Anthropic upstream,
//! conversation state (`previous_response_id` across providers, `GET`,
//! `DELETE`, scoped to the consumer, `store: false`), streams, and the
//! budget charged like chat completions.

use bytes::Bytes;
use futures_executor::block_on;
use http::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::auth::api_key::sha256;
use crate::testing::{admin_call, FakeHttp, FakeReply, TestPlatform};
use crate::util::hex;
use crate::{Body, Config, Gateway};

const ADMIN_KEY: &str = "responses-admin";
const RESPONSE_TOOL_USE: &str =
    include_str!("../../tests/fixtures/anthropic/response_tool_use.json");

const CONFIG: &str = r#"
providers:
  claude: { kind: anthropic, base_url: "http://anthropic.internal/v1", api_key: "${env:LLM_KEY}" }
  upstream: { kind: openai, base_url: "http://llm.internal/v1", api_key: "${env:LLM_KEY}" }
models:
  - { name: sonnet, provider: claude, upstream_model: claude-sonnet-4-5 }
  - { name: gpt, provider: upstream, upstream_model: gpt-4o-mini-2024-07-18 }
admin:
  path_prefix: /admin
  key_sha256: "${env:ADMIN_SHA}"
plans:
  tokens:
    limits:
      - { name: daily, window_s: 86400, tokens: 100000, algorithm: fixed_window }
routes:
  - name: ai
    match: { path_prefix: /v1 }
    auth: { methods: [api_key] }
    ai: {}
"#;

/// A chat completion (or its stream) that answers with the text of the
/// last user message reversed, so a test sees which turn was answered.
fn upstream() -> FakeHttp {
    FakeHttp::new(|request| {
        let body: Value = serde_json::from_slice(request.body()).unwrap_or(Value::Null);
        let reply = |text: String, kind: &'static str| {
            let mut response = Response::new(Body::from(text));
            response
                .headers_mut()
                .insert("content-type", kind.parse().unwrap());
            FakeReply::Respond(response)
        };
        match request.uri().path() {
            "/v1/messages" => reply(RESPONSE_TOOL_USE.into(), "application/json"),
            "/v1/chat/completions" => {
                let last = body["messages"]
                    .as_array()
                    .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
                    .map(|m| crate::ai::usage::content_text(&m["content"]))
                    .unwrap_or_default();
                let answer: String = last.chars().rev().collect();
                let usage =
                    json!({"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107});
                if body["stream"] == true {
                    let chunk = |delta: Value, finish: Value| json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
                    let (head, tail) = answer.split_at(answer.len() / 2);
                    let frames = [
                        chunk(json!({"role": "assistant", "content": head}), Value::Null),
                        chunk(json!({"content": tail}), json!("stop")),
                        json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "choices": [], "usage": usage}),
                    ];
                    let mut text: String =
                        frames.iter().map(|f| format!("data: {f}\n\n")).collect();
                    text.push_str("data: [DONE]\n\n");
                    reply(text, "text/event-stream")
                } else {
                    reply(
                        json!({"id": "chatcmpl-c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}],
                            "usage": usage})
                        .to_string(),
                        "application/json",
                    )
                }
            }
            _ => reply("{}".into(), "application/json"),
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

fn call(
    gw: &Gateway<TestPlatform>,
    key: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (http::response::Parts, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .body(body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string())))
        .unwrap();
    let (parts, body) = block_on(gw.handle(request)).into_parts();
    let bytes = block_on(body.collect(usize::MAX)).unwrap();
    (parts, String::from_utf8_lossy(&bytes).into_owned())
}

fn create(gw: &Gateway<TestPlatform>, key: &str, body: &Value) -> Value {
    let (parts, text) = call(gw, key, "POST", "/v1/responses", Some(body));
    assert_eq!(parts.status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn last_upstream(gw: &Gateway<TestPlatform>) -> (String, Value) {
    let sent = gw.platform().http.requests();
    let last = sent.last().unwrap();
    (
        last.uri().path().to_owned(),
        serde_json::from_slice(last.body()).unwrap(),
    )
}

#[test]
fn a_conversation_continues_on_another_provider_and_is_charged() {
    let gw = gateway();
    let key = consumer(&gw, "alice");
    let first = create(
        &gw,
        &key,
        &json!({"model": "gpt", "instructions": "Be brief.", "input": "stressed"}),
    );
    assert_eq!(first["object"], "response");
    assert_eq!(first["status"], "completed");
    assert_eq!(first["model"], "gpt");
    assert_eq!(first["output"][0]["content"][0]["text"], "desserts");
    assert_eq!(first["usage"]["input_tokens"], 100);
    let (path, sent) = last_upstream(&gw);
    assert_eq!(path, "/v1/chat/completions");
    assert_eq!(sent["model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(used_tokens(&gw, "alice"), 107);

    // The second turn names the first and is served by Anthropic: the
    // provider sees the whole conversation, without the first turn's
    // instructions (OpenAI's rule), with this turn's.
    let id = first["id"].as_str().unwrap();
    assert!(id.starts_with("resp_"), "{id}");
    let second = create(
        &gw,
        &key,
        &json!({"model": "sonnet", "instructions": "Answer in French.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "and the weather?"}]}],
        "previous_response_id": id}),
    );
    let (path, sent) = last_upstream(&gw);
    assert_eq!(path, "/v1/messages");
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert!(
        sent["system"].to_string().contains("Answer in French."),
        "{sent}"
    );
    assert!(!sent.to_string().contains("Be brief."), "{sent}");
    let turns = sent["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "{sent}");
    assert_eq!(turns[0]["role"], "user");
    assert!(turns[0]["content"].to_string().contains("stressed"));
    assert_eq!(turns[1]["role"], "assistant");
    assert!(turns[1]["content"].to_string().contains("desserts"));
    assert!(turns[2]["content"].to_string().contains("and the weather?"));
    assert_eq!(second["previous_response_id"], id);
    assert_eq!(second["output"][1]["type"], "function_call");
    assert_eq!(second["output"][1]["name"], "get_weather");
    // Anthropic's usage with its cache tokens: 412 + 100 + 300 in, 48 out.
    assert_eq!(second["usage"]["input_tokens"], 812);
    assert_eq!(
        second["usage"]["input_tokens_details"]["cached_tokens"],
        300
    );
    assert_eq!(used_tokens(&gw, "alice"), 107 + 860);

    // The third turn answers the tool call; the call and its output reach
    // the provider as a tool round trip.
    let call_id = second["output"][1]["call_id"].as_str().unwrap();
    create(
        &gw,
        &key,
        &json!({"model": "gpt", "previous_response_id": second["id"],
        "input": [{"type": "function_call_output", "call_id": call_id, "output": "14°C"}]}),
    );
    let (_, sent) = last_upstream(&gw);
    let messages = sent["messages"].as_array().unwrap();
    let tail: Vec<&str> = messages
        .iter()
        .rev()
        .take(2)
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(tail, ["tool", "assistant"], "{sent}");
    assert_eq!(messages[messages.len() - 2]["tool_calls"][0]["id"], call_id);
    assert_eq!(messages[messages.len() - 1]["content"], "14°C");
}

#[test]
fn stored_responses_belong_to_their_consumer() {
    let gw = gateway();
    let alice = consumer(&gw, "alice");
    let mallory = consumer(&gw, "mallory");
    let first = create(
        &gw,
        &alice,
        &json!({"model": "gpt", "input": "abc", "metadata": {"ticket": "7"}}),
    );
    let path = format!("/v1/responses/{}", first["id"].as_str().unwrap());

    let (parts, text) = call(&gw, &alice, "GET", &path, None);
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), first);

    // Another consumer finds nothing: not by GET, DELETE or a continuation.
    let (parts, text) = call(&gw, &mallory, "GET", &path, None);
    assert_eq!(parts.status, StatusCode::NOT_FOUND, "{text}");
    assert!(text.contains("not found"), "{text}");
    let (parts, _) = call(&gw, &mallory, "DELETE", &path, None);
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    let (parts, text) = call(
        &gw,
        &mallory,
        "POST",
        "/v1/responses",
        Some(&json!({"model": "gpt", "input": "x", "previous_response_id": first["id"]})),
    );
    assert_eq!(parts.status, StatusCode::BAD_REQUEST, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["error"]["param"],
        "previous_response_id"
    );

    // The owner deletes it; then it is gone.
    let (parts, text) = call(&gw, &alice, "DELETE", &path, None);
    assert_eq!(parts.status, StatusCode::OK, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"id": first["id"], "object": "response", "deleted": true})
    );
    let (parts, _) = call(&gw, &alice, "GET", &path, None);
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    let (parts, _) = call(&gw, &alice, "PUT", &path, None);
    assert_eq!(parts.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn store_false_keeps_nothing() {
    let gw = gateway();
    let key = consumer(&gw, "codex");
    let response = create(
        &gw,
        &key,
        &json!({"model": "gpt", "input": "abc", "store": false}),
    );
    assert_eq!(response["store"], false);
    let (parts, _) = call(
        &gw,
        &key,
        "GET",
        &format!("/v1/responses/{}", response["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
}

/// `(event type, data)` of a Responses SSE body.
fn events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let data = frame
                .split_once("\ndata: ")
                .unwrap_or_else(|| panic!("{frame}"))
                .1;
            serde_json::from_str(data).unwrap()
        })
        .collect()
}

#[test]
fn a_stream_is_stored_before_its_last_event_and_charged() {
    let gw = gateway();
    let key = consumer(&gw, "streamer");
    let (parts, text) = call(
        &gw,
        &key,
        "POST",
        "/v1/responses",
        Some(&json!({"model": "gpt", "input": "drawer", "stream": true})),
    );
    assert_eq!(parts.status, StatusCode::OK, "{text}");
    let events = events(&text);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.completed", "{text}");
    assert_eq!(
        last["response"]["output"][0]["content"][0]["text"],
        "reward"
    );
    assert_eq!(last["response"]["usage"]["output_tokens"], 7);
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "reward");
    assert_eq!(used_tokens(&gw, "streamer"), 107);
    // Kept by the time the client saw `response.completed`.
    let id = last["response"]["id"].as_str().unwrap();
    let (parts, text) = call(&gw, &key, "GET", &format!("/v1/responses/{id}"), None);
    assert_eq!(parts.status, StatusCode::OK, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        last["response"]
    );
}

#[test]
fn errors_on_responses_paths_are_in_openai_shape() {
    let gw = gateway();
    let (parts, text) = call(
        &gw,
        "sk-wrong",
        "POST",
        "/v1/responses",
        Some(&json!({"model": "gpt", "input": "x"})),
    );
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    let error: Value = serde_json::from_str(&text).unwrap();
    assert!(error["error"]["message"].is_string(), "{text}");
    let key = consumer(&gw, "bob");
    let (parts, text) = call(
        &gw,
        &key,
        "POST",
        "/v1/responses",
        Some(
            &json!({"model": "gpt", "input": "x", "tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}}),
        ),
    );
    assert_eq!(parts.status, StatusCode::BAD_REQUEST);
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["param"], "tool_choice");
    let (parts, _) = call(&gw, &key, "GET", "/v1/responses", None);
    assert_eq!(parts.status, StatusCode::METHOD_NOT_ALLOWED);
}
