//! Golden tests of the Messages mapping, on fixtures shaped from the
//! Anthropic and OpenAI API references (sources named at each fixture).

use http::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

use super::*;
use crate::ai::request::{ChatRequest, MessagesRequest, NativeRequest};
use crate::ai::sse::{EventRewriter, SseDecoder};
use crate::error::GatewayError;

const CLAUDE_CODE: &str =
    include_str!("../../../../../tests/fixtures/anthropic/request_claude_code.json");

fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(ANTHROPIC_VERSION, HeaderValue::from_static("2023-06-01"));
    headers.append(
        ANTHROPIC_BETA,
        HeaderValue::from_static("claude-code-20250219,interleaved-thinking-2025-05-14"),
    );
    headers.append(
        ANTHROPIC_BETA,
        HeaderValue::from_static("context-management-2025-06-27"),
    );
    headers
}

fn parse(body: &Value) -> Result<ChatRequest, GatewayError> {
    parse_messages(body.to_string().as_bytes(), &HeaderMap::new(), true)
}

fn param(error: GatewayError) -> &'static str {
    match error {
        GatewayError::InvalidRequest { param: Some(p), .. } => p,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_claude_code_request_maps_to_the_canonical_form() {
    let chat = parse_messages(CLAUDE_CODE.as_bytes(), &headers(), true).unwrap();
    assert_eq!(chat.model, "claude-opus-4-8");
    assert!(chat.stream && chat.include_usage);
    // The client's limit is the cap, written by each provider in its field.
    assert_eq!((chat.max_tokens, chat.gateway_capped), (Some(64000), true));
    assert!(!chat.body.contains_key("max_tokens"));
    let body = &chat.body;
    let messages = chat.messages();
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(
        messages[0]["content"],
        "You are Claude Code, Anthropic's official CLI for Claude.\nUse the tools to answer."
    );
    let user = &messages[1]["content"];
    assert_eq!(
        user[0]["text"],
        "What is in this image, and list the files?"
    );
    assert_eq!(
        user[1]["image_url"]["url"],
        "data:image/png;base64,iVBORw0KGgo="
    );
    assert_eq!(user[2]["type"], "file");
    assert_eq!(
        user[2]["file"]["file_data"],
        "data:application/pdf;base64,JVBERi0x"
    );
    assert_eq!(user[2]["file"]["filename"], "spec.pdf");
    // Thinking is dropped; text and the tool call stay.
    let assistant = &messages[2];
    assert_eq!(assistant["content"], "Let me look.");
    let call = &assistant["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01D7FLrfh4GYq7yT1ULFeyMV");
    assert_eq!(call["function"]["name"], "Bash");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(
        arguments,
        json!({"command": "ls", "description": "List files"})
    );
    // The tool result answers the call first, then the user's text.
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV", "content": "README.md\nsrc"})
    );
    assert_eq!(messages[4]["role"], "user");
    assert_eq!(messages[4]["content"][0]["text"], "Thanks, now summarise.");
    assert_eq!(
        messages[5],
        json!({"role": "system", "content": "Reminder: be concise."})
    );
    assert_eq!(messages.len(), 6);
    // Custom tools become functions; the Anthropic-defined one is dropped.
    let tools = body["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0]["function"]["name"], "Bash");
    assert_eq!(
        tools[0]["function"]["parameters"]["required"],
        json!(["command"])
    );
    assert_eq!(tools[1]["function"]["description"], "Reads a file");
    assert_eq!(body["tool_choice"], "auto");
    assert_eq!(body["parallel_tool_calls"], false);
    assert_eq!(body["user"], "user_3f1c_account_9a2b_session_77");
    assert_eq!(body["stop"], json!(["</done>"]));
    assert_eq!(body["temperature"], 1);
    for dropped in [
        "thinking",
        "context_management",
        "output_config",
        "top_k",
        "system",
        "metadata",
    ] {
        assert!(!body.contains_key(dropped), "{dropped} kept");
    }
    // Nothing Anthropic-only survives anywhere in the canonical body.
    assert!(!Value::Object(body.clone())
        .to_string()
        .contains("cache_control"));
    // The native request keeps the body and both headers.
    let Some(NativeRequest::AnthropicMessages(MessagesRequest {
        body: native,
        version,
        beta,
    })) = chat.native.as_deref()
    else {
        panic!("no native body")
    };
    assert_eq!(native["thinking"], json!({"type": "adaptive"}));
    assert_eq!(version.as_deref(), Some("2023-06-01"));
    assert_eq!(
        beta.as_deref(),
        Some("claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27")
    );
}

#[test]
fn max_tokens_is_required_and_bad_fields_are_400_naming_them() {
    let base =
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("max_tokens");
    assert_eq!(param(parse(&missing).unwrap_err()), "max_tokens");
    // count_tokens takes no max_tokens.
    assert!(parse_messages(missing.to_string().as_bytes(), &HeaderMap::new(), false).is_ok());
    let cases = [
        (json!({"max_tokens": 0}), "max_tokens"),
        (json!({"max_tokens": "10"}), "max_tokens"),
        (json!({"messages": []}), "messages"),
        (
            json!({"messages": [{"role": "bot", "content": "x"}]}),
            "messages",
        ),
        (
            json!({"messages": [{"role": "user", "content": 7}]}),
            "messages",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"text": "no type"}]}]}),
            "messages",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "search_result", "source": "x"}]}]}),
            "messages",
        ),
        (json!({"system": 3}), "system"),
        (json!({"system": [{"type": "image"}]}), "system"),
        (json!({"stream": "yes"}), "stream"),
        (json!({"temperature": "hot"}), "temperature"),
        (json!({"top_k": -1}), "top_k"),
        (json!({"stop_sequences": "x"}), "stop_sequences"),
        (json!({"metadata": {"user_id": 5}}), "metadata"),
        (json!({"tools": {}}), "tools"),
        (json!({"tools": [{"name": "f"}]}), "tools"),
        (json!({"tool_choice": "auto"}), "tool_choice"),
        (json!({"tool_choice": {"type": "tool"}}), "tool_choice"),
        (json!({"thinking": true}), "thinking"),
    ];
    for (extra, expected) in cases {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        assert_eq!(param(parse(&body).unwrap_err()), expected, "{extra}");
    }
}

#[test]
fn forcing_an_anthropic_defined_tool_elsewhere_is_a_clear_400() {
    let body = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "tool_choice": {"type": "tool", "name": "web_search"}});
    let error = parse(&body).unwrap_err();
    assert!(error.to_string().contains("web_search"), "{error}");
    // Unforced, it is dropped and no tool_choice remains.
    let mut body = body;
    body["tool_choice"] = json!({"type": "any"});
    let chat = parse(&body).unwrap();
    assert!(!chat.body.contains_key("tools") && !chat.body.contains_key("tool_choice"));
}

#[test]
fn a_completion_renders_as_a_message() {
    // Shape per https://platform.openai.com/docs/api-reference/chat/object
    let completion = json!({
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "gpt-x",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Checking.", "reasoning_content": "Need the tool.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}}]
        }}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150, "prompt_tokens_details": {"cached_tokens": 100}}
    });
    let message = message_from_completion(&completion, "claude-opus-4-8");
    assert_eq!(message["id"], "msg_abc");
    assert_eq!(
        (message["type"].as_str(), message["role"].as_str()),
        (Some("message"), Some("assistant"))
    );
    assert_eq!(message["model"], "claude-opus-4-8");
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(
        message["content"][0],
        json!({"type": "thinking", "thinking": "Need the tool.", "signature": ""})
    );
    assert_eq!(
        message["content"][1],
        json!({"type": "text", "text": "Checking."})
    );
    assert_eq!(
        message["content"][2],
        json!({"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}})
    );
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100, "output_tokens": 30})
    );
    for (finish, stop) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
    ] {
        assert_eq!(finish_reason_to_stop_reason(finish), stop);
    }
}

/// Runs canonical chunks through the stream renderer and returns the
/// `(event name, data)` pairs it wrote.
fn render(chunks: &[Value], done: bool) -> Vec<(String, Value)> {
    let mut stream = MessagesStream::new("claude-opus-4-8", 30);
    let mut out = Vec::new();
    for chunk in chunks {
        stream.on_event(&chunk.to_string(), &mut out);
    }
    if done {
        stream.on_event("[DONE]", &mut out);
    }
    stream.on_end(&mut out);
    let mut events = Vec::new();
    for frame in out {
        let (name, data) = frame.split_once('\n').unwrap();
        let name = name.strip_prefix("event: ").unwrap().to_owned();
        let mut decoder = SseDecoder::default();
        decoder.push(format!("{data}\n").as_bytes(), |d| {
            events.push((name.clone(), serde_json::from_str(d).unwrap()));
        });
    }
    events
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-s1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

#[test]
fn a_canonical_stream_renders_as_anthropic_events_in_order() {
    let chunks = [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"reasoning_content": "Hmm."}), None),
        chunk(json!({"content": "Let me "}), None),
        chunk(json!({"content": "check."}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"comm"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "and\":\"ls\"}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        json!({"id": "chatcmpl-s1", "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62, "prompt_tokens_details": {"cached_tokens": 8}}}),
    ];
    let events = render(&chunks, true);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    for (name, data) in &events {
        assert_eq!(
            data["type"],
            name.as_str(),
            "the event name is the data's type"
        );
    }
    let start = &events[0].1["message"];
    assert_eq!(start["id"], "msg_s1");
    assert_eq!(start["model"], "claude-opus-4-8");
    assert_eq!(
        start["usage"]["input_tokens"], 30,
        "input usage filled from the first event"
    );
    assert_eq!(events[2].1["content_block"]["type"], "thinking");
    assert_eq!(
        events[3].1["delta"],
        json!({"type": "thinking_delta", "thinking": "Hmm."})
    );
    assert_eq!(events[5].1["index"], 1);
    assert_eq!(
        events[7].1["delta"],
        json!({"type": "text_delta", "text": "check."})
    );
    assert_eq!(
        events[9].1["content_block"],
        json!({"type": "tool_use", "id": "call_1", "name": "Bash", "input": {}})
    );
    let json_text: String = events[10..12]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["index"], 2);
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(json_text, r#"{"command":"ls"}"#);
    let delta = &events[13].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        delta["usage"],
        json!({"input_tokens": 42, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 8, "output_tokens": 12})
    );
}

#[test]
fn a_stream_error_or_cut_becomes_an_error_event() {
    let failed = render(
        &[
            chunk(json!({"content": "Hi"}), None),
            json!({"error": {"message": "The upstream provider failed mid-stream (overloaded_error): Overloaded", "type": "upstream_error", "code": "overloaded_error"}}),
        ],
        false,
    );
    let (name, last) = failed.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(last["error"]["type"], "overloaded_error");
    assert!(failed.iter().all(|(n, _)| n != "message_stop"));
    // Input that ends without [DONE] and without an error still ends loudly.
    let cut = render(&[chunk(json!({"content": "Hi"}), None)], false);
    assert_eq!(cut.last().unwrap().0, "error");
}

#[test]
fn tool_result_images_follow_the_tool_message_and_errors_say_so() {
    // A Read of a screenshot and a failed command, as Claude Code sends
    // them (<https://docs.anthropic.com/en/docs/build-with-claude/tool-use>:
    // `tool_result` content may hold text and image blocks; `is_error`).
    let chat = parse(&json!({
        "model": "m", "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "Look at the screenshot, then run ls."},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/tmp/s.png"}},
                {"type": "tool_use", "id": "toolu_2", "name": "Bash", "input": {"command": "ls /nope"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                    {"type": "text", "text": "Read image (5 KB)"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                ]},
                {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true, "content": "ls: cannot access '/nope'"},
            ]},
        ],
    }))
    .unwrap();
    let messages = chat.messages();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "tool", "tool", "user"]);
    assert_eq!(messages[2]["content"], "Read image (5 KB)");
    assert_eq!(messages[3]["content"], "Error: ls: cannot access '/nope'");
    let follow_up = messages[4]["content"].as_array().unwrap();
    assert!(follow_up[0]["text"].as_str().unwrap().contains("toolu_1"));
    assert_eq!(
        follow_up[1],
        json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}})
    );
}
