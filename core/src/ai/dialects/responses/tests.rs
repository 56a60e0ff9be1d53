//! Golden tests of the Responses mapping, on fixtures shaped from the
//! OpenAI API reference: request bodies and items from
//! <https://platform.openai.com/docs/api-reference/responses/create> and
//! the function-calling guide, a Codex CLI request as captured
//! (`tests/fixtures/codex_responses_request.json`, when present), replies
//! and events from <https://platform.openai.com/docs/api-reference/responses-streaming>.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::response::ResponsesStream;
use super::*;
use crate::ai::request::{ChatRequest, NativeRequest, ResponseStore, ResponsesRequest};
use crate::ai::sse::EventRewriter;
use crate::error::GatewayError;

fn parse(body: &Value) -> Result<ChatRequest, GatewayError> {
    parse_responses(body.to_string().as_bytes())
}

fn native(chat: &ChatRequest) -> &ResponsesRequest {
    match chat.native.as_deref() {
        Some(NativeRequest::OpenAiResponses(request)) => request,
        other => panic!("{other:?}"),
    }
}

fn param(error: GatewayError) -> &'static str {
    match error {
        GatewayError::InvalidRequest { param: Some(p), .. } => p,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_string_input_with_instructions_and_settings_maps_to_a_chat() {
    let chat = parse(&json!({
        "model": "gpt-4.1", "instructions": "Talk like a pirate.", "input": "Are semicolons optional in JavaScript?",
        "max_output_tokens": 300, "temperature": 0.2, "top_p": 0.9, "store": false,
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"format": {"type": "json_schema", "name": "answer", "strict": true,
            "schema": {"type": "object", "properties": {"yes": {"type": "boolean"}}, "required": ["yes"]}}},
        "metadata": {"team": "a"}, "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k",
    }))
    .unwrap();
    assert_eq!(chat.model, "gpt-4.1");
    assert_eq!(
        chat.messages(),
        [
            json!({"role": "system", "content": "Talk like a pirate."}),
            json!({"role": "user", "content": "Are semicolons optional in JavaScript?"}),
        ]
    );
    assert_eq!((chat.max_tokens, chat.gateway_capped), (Some(300), true));
    assert!(!chat.stream);
    let body = &chat.body;
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(body["top_p"], 0.9);
    assert_eq!(body["reasoning_effort"], "low");
    assert_eq!(
        body["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "answer", "strict": true,
            "schema": {"type": "object", "properties": {"yes": {"type": "boolean"}}, "required": ["yes"]}}})
    );
    for dropped in [
        "metadata",
        "include",
        "prompt_cache_key",
        "store",
        "max_output_tokens",
        "instructions",
        "input",
        "text",
        "reasoning",
    ] {
        assert!(
            !body.contains_key(dropped),
            "{dropped} must not reach a provider"
        );
    }
}

#[test]
fn items_map_to_messages_with_tool_calls_and_results() {
    // A second turn as the function-calling guide sends it: the model's
    // call and the tool's output appended to the input.
    let chat = parse(&json!({
        "model": "m", "stream": true,
        "input": [
            {"role": "developer", "content": "Use tools."},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "What is in this image, and the weather in Paris?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
            ]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "custom_tool_call", "call_id": "call_2", "name": "apply_patch", "input": "*** Begin Patch"},
            {"type": "function_call_output", "call_id": "call_1", "output": "14°C"},
            {"type": "custom_tool_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "Done"}]},
        ],
    }))
    .unwrap();
    assert!(chat.stream && chat.include_usage);
    assert_eq!(
        chat.messages(),
        [
            json!({"role": "system", "content": "Use tools."}),
            json!({"role": "user", "content": [
                {"type": "text", "text": "What is in this image, and the weather in Paris?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
            ]}),
            json!({"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin Patch\"}"}},
            ]}),
            json!({"role": "tool", "tool_call_id": "call_1", "content": "14°C"}),
            json!({"role": "tool", "tool_call_id": "call_2", "content": "Done"}),
        ]
    );
    assert_eq!(
        native(&chat).input.len(),
        8,
        "this turn's items are kept for the record"
    );
}

#[test]
fn built_in_tools_are_dropped_custom_tools_become_functions() {
    // The tool kinds the Codex CLI sends (TOOLCHAIN.md): function tools and
    // built-ins it always adds, and a freeform `custom` tool.
    let chat = parse(&json!({
        "model": "m", "input": "fix it", "parallel_tool_calls": true, "tool_choice": "auto",
        "tools": [
            {"type": "function", "name": "exec_command", "description": "Run", "strict": false,
             "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}},
            {"type": "web_search"},
            {"type": "namespace", "name": "mcp", "tools": []},
            {"type": "tool_search"},
            {"type": "custom", "name": "apply_patch", "description": "Patch files.",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch"}},
        ],
    }))
    .unwrap();
    let tools = chat.body["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 2);
    assert_eq!(
        tools[0],
        json!({"type": "function", "function": {"name": "exec_command", "description": "Run", "strict": false,
            "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}}})
    );
    assert_eq!(tools[1]["function"]["name"], "apply_patch");
    assert_eq!(
        tools[1]["function"]["parameters"]["required"],
        json!(["input"])
    );
    let description = tools[1]["function"]["description"].as_str().unwrap();
    assert!(
        description.starts_with("Patch files.")
            && description.contains("lark grammar:\nstart: begin_patch")
    );
    assert_eq!(chat.body["tool_choice"], "auto");
    assert_eq!(chat.body["parallel_tool_calls"], true);
    assert_eq!(native(&chat).custom_tools, ["apply_patch"]);
}

#[test]
fn tool_choice_maps_or_refuses_what_cannot_run() {
    let tools = json!([
        {"type": "function", "name": "a", "parameters": {"type": "object", "properties": {}}},
        {"type": "custom", "name": "b"},
        {"type": "web_search"},
    ]);
    let with = |choice: Value| {
        parse(&json!({"model": "m", "input": "x", "tools": tools, "tool_choice": choice}))
    };
    assert_eq!(
        with(json!({"type": "function", "name": "a"})).unwrap().body["tool_choice"],
        json!({"type": "function", "function": {"name": "a"}})
    );
    assert_eq!(
        with(json!({"type": "custom", "name": "b"})).unwrap().body["tool_choice"],
        json!({"type": "function", "function": {"name": "b"}})
    );
    let allowed = with(json!({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "b"}]})).unwrap();
    assert_eq!(allowed.body["tool_choice"], "required");
    assert_eq!(allowed.body["tools"].as_array().unwrap().len(), 1);
    assert_eq!(allowed.body["tools"][0]["function"]["name"], "b");
    // Forcing a built-in tool the deployment cannot run: a clear 400.
    let error = with(json!({"type": "web_search"})).unwrap_err();
    assert!(error.to_string().contains("web_search"), "{error}");
    assert_eq!(param(error), "tool_choice");
    assert_eq!(
        param(with(json!({"type": "function", "name": "zzz"})).unwrap_err()),
        "tool_choice"
    );
    // Only built-ins and `required`: nothing could satisfy it.
    let only_builtin = parse(
        &json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}], "tool_choice": "required"}),
    );
    assert_eq!(param(only_builtin.unwrap_err()), "tool_choice");
    let dropped = parse(&json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}], "tool_choice": "auto"})).unwrap();
    assert!(!dropped.body.contains_key("tools") && !dropped.body.contains_key("tool_choice"));
}

#[test]
fn unsupported_requests_are_400_naming_the_field() {
    let cases = [
        (json!({"model": "m"}), "input"),
        (json!({"model": "m", "input": []}), "input"),
        (json!({"model": "m", "input": 5}), "input"),
        (
            json!({"model": "m", "input": "x", "background": true}),
            "background",
        ),
        (
            json!({"model": "m", "input": "x", "conversation": "conv_1"}),
            "conversation",
        ),
        (
            json!({"model": "m", "input": "x", "prompt": {"id": "pmpt_1"}}),
            "prompt",
        ),
        (
            json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}),
            "input",
        ),
        (
            json!({"model": "m", "input": [{"type": "hologram"}]}),
            "input",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]}),
            "input",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            "input",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call", "name": "f"}]}),
            "input",
        ),
        (
            json!({"model": "m", "input": "x", "max_output_tokens": 0}),
            "max_output_tokens",
        ),
        (
            json!({"model": "m", "input": "x", "previous_response_id": "../../etc"}),
            "previous_response_id",
        ),
        (json!({"model": "m", "input": "x", "tools": {}}), "tools"),
        (
            json!({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}),
            "text",
        ),
        (
            json!({"model": "m", "input": "x", "stream": "yes"}),
            "stream",
        ),
    ];
    for (body, expected) in cases {
        let error = parse(&body).expect_err(&body.to_string());
        assert_eq!(param(error), expected, "{body}");
    }
}

fn request(custom: &[&str]) -> ResponsesRequest {
    ResponsesRequest {
        body:
            json!({"model": "m", "input": "x", "instructions": "Be brief.", "metadata": {"k": "v"}})
                .as_object()
                .unwrap()
                .clone(),
        id: "resp_0123abcd".into(),
        created_at: 1_741_476_777,
        custom_tools: custom.iter().map(|c| (*c).to_owned()).collect(),
        store: Some(ResponseStore {
            owner: "c".into(),
            retention: std::time::Duration::from_secs(60),
        }),
        ..ResponsesRequest::default()
    }
}

#[test]
fn a_completion_becomes_a_response_object() {
    let completion = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me check.", "reasoning_content": "Weather needs a tool.",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin Patch\\n\"}"}},
            ]}}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150, "prompt_tokens_details": {"cached_tokens": 100}},
    });
    let response =
        response_from_completion(&completion, &request(&["apply_patch"]), "public-model");
    assert_eq!(response["id"], "resp_0123abcd");
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["model"], "public-model");
    assert_eq!(response["instructions"], "Be brief.");
    assert_eq!(response["metadata"], json!({"k": "v"}));
    assert_eq!(response["store"], true);
    let output = response["output"].as_array().unwrap();
    let types: Vec<&str> = output.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["reasoning", "message", "function_call", "custom_tool_call"]
    );
    assert_eq!(
        output[0]["content"][0],
        json!({"type": "reasoning_text", "text": "Weather needs a tool."})
    );
    assert_eq!(output[1]["content"][0]["text"], "Let me check.");
    assert_eq!(output[1]["content"][0]["type"], "output_text");
    assert_eq!(output[2]["call_id"], "call_1");
    assert_eq!(output[2]["name"], "get_weather");
    assert_eq!(output[2]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(output[3]["call_id"], "call_2");
    assert_eq!(output[3]["input"], "*** Begin Patch\n");
    assert_eq!(
        response["usage"],
        json!({"input_tokens": 120, "input_tokens_details": {"cached_tokens": 100},
            "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 150})
    );
    let ids: std::collections::HashSet<&str> =
        output.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 4, "item ids are unique");
}

#[test]
fn a_cut_off_completion_is_incomplete() {
    let completion = json!({"choices": [{"finish_reason": "length", "message": {"role": "assistant", "content": "Once upon"}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 16, "total_tokens": 21}});
    let response = response_from_completion(&completion, &request(&[]), "m");
    assert_eq!(response["status"], "incomplete");
    assert_eq!(
        response["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
}

/// Runs canonical chunks through the stream renderer: the events it
/// writes and the terminal event it holds back for the store.
fn stream(request: ResponsesRequest, chunks: &[Value], done: bool) -> (Vec<Value>, Option<Value>) {
    let terminal = Arc::new(Mutex::new(None));
    let mut rewriter = ResponsesStream::new(Arc::new(request), "public", 42, Arc::clone(&terminal));
    let mut out = Vec::new();
    for chunk in chunks {
        rewriter.on_event(&chunk.to_string(), &mut out);
    }
    if done {
        rewriter.on_event("[DONE]", &mut out);
    }
    rewriter.on_end(&mut out);
    let events = out
        .iter()
        .map(|frame| {
            let (name, data) = frame.trim_end().split_once('\n').unwrap();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(
                name.strip_prefix("event: ").unwrap(),
                data["type"],
                "event line names the type"
            );
            data
        })
        .collect();
    let held = terminal.lock().unwrap().take().map(
        |f| json!({"type": f.event, "sequence_number": f.sequence_number, "response": f.response}),
    );
    (events, held)
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

#[test]
fn a_stream_with_text_and_tool_calls_becomes_responses_events() {
    let chunks = [
        chunk(json!({"role": "assistant", "content": "Hel"}), None),
        chunk(json!({"content": "lo"}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "function": {"arguments": "\"*** Begin\"}"}}]}),
            Some("tool_calls"),
        ),
        json!({"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}}),
    ];
    let (events, held) = stream(request(&["apply_patch"]), &chunks, true);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.output_item.added",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.output_item.done",
        ]
    );
    let numbers: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (0..events.len() as u64).collect::<Vec<_>>());
    assert_eq!(events[0]["response"]["status"], "in_progress");
    assert_eq!(events[0]["response"]["id"], "resp_0123abcd");
    assert_eq!(events[6]["text"], "Hello");
    let arguments: String = events
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, "{\"city\":\"Paris\"}");
    assert_eq!(events[13]["arguments"], arguments);
    assert_eq!(events[16]["input"], "*** Begin");
    assert_eq!(events[17]["item"]["type"], "custom_tool_call");

    let held = held.expect("the terminal event is held for the store");
    assert_eq!(held["type"], "response.completed");
    assert_eq!(held["sequence_number"], events.len() as u64);
    let response = &held["response"];
    assert_eq!(response["status"], "completed");
    assert_eq!(response["usage"]["input_tokens"], 50);
    assert_eq!(response["usage"]["output_tokens"], 20);
    let output: Vec<&str> = response["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(output, ["message", "function_call", "custom_tool_call"]);
}

#[test]
fn a_failed_or_cut_stream_ends_as_failed() {
    let error = json!({"error": {"message": "The upstream stream ended early.", "code": "upstream_invalid_response"}});
    let (events, held) = stream(
        request(&[]),
        &[chunk(json!({"content": "Hi"}), None), error],
        false,
    );
    assert_eq!(events.last().unwrap()["type"], "response.output_text.delta");
    let held = held.unwrap();
    assert_eq!(held["type"], "response.failed");
    assert_eq!(held["response"]["status"], "failed");
    assert_eq!(
        held["response"]["error"]["code"],
        "upstream_invalid_response"
    );
    // A canonical stream that just stops (no `[DONE]`).
    let (_, held) = stream(
        request(&[]),
        &[chunk(json!({"content": "Hi"}), None)],
        false,
    );
    assert_eq!(held.unwrap()["type"], "response.failed");
}

#[test]
fn a_stream_without_usage_is_estimated_and_length_is_incomplete() {
    let (_, held) = stream(
        request(&[]),
        &[chunk(json!({"content": "12345678"}), Some("length"))],
        true,
    );
    let held = held.unwrap();
    assert_eq!(held["type"], "response.incomplete");
    assert_eq!(held["response"]["usage"]["input_tokens"], 42);
    assert_eq!(held["response"]["usage"]["output_tokens"], 2);
}
