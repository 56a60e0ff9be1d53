//! A scripted coding-agent model, `agent-bash`, on the Anthropic and the
//! OpenAI mocks, so a real agent (Claude Code) can complete a task that
//! needs a tool call against the gateway with no key:
//! - tools offered (one named `Bash`) and no tool result yet → call `Bash`
//!   with `echo gateway-agent-$((6*7))` (only a shell that ran it prints
//!   `gateway-agent-42`);
//! - the last turn is a tool result → the final text `Tool said: <result>`;
//! - no tools (an agent's side requests) → `ok`.
//!
//! Wire shapes: <https://docs.anthropic.com/en/api/messages>,
//! <https://docs.anthropic.com/en/api/messages-streaming>,
//! <https://platform.openai.com/docs/api-reference/chat-streaming>.

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// The command the scripted model asks the agent to run.
pub const AGENT_COMMAND: &str = "echo gateway-agent-$((6*7))";
/// What that command prints.
pub const AGENT_MARKER: &str = "gateway-agent-42";

/// What the model says next: a Bash call, or text.
enum Turn {
    Call,
    Text(String),
}

fn next_turn(offers_bash: bool, tool_result: Option<String>) -> Turn {
    match (tool_result, offers_bash) {
        (Some(result), _) => Turn::Text(format!("Tool said: {}", result.trim())),
        (None, true) => Turn::Call,
        (None, false) => Turn::Text("ok".into()),
    }
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn sse(frames: Vec<String>) -> Response {
    let body = Body::from_stream(futures_util::stream::iter(
        frames
            .into_iter()
            .map(|f| Ok::<_, std::io::Error>(Bytes::from(f))),
    ));
    ([("content-type", "text/event-stream")], body).into_response()
}

/// The model on the Anthropic mock's `/v1/messages`.
pub(crate) fn anthropic(request: &Value) -> Response {
    let last = request["messages"].as_array().and_then(|m| m.last());
    let tool_result = last
        .and_then(|m| m["content"].as_array())
        .and_then(|blocks| blocks.iter().find(|b| b["type"] == "tool_result"))
        .map(|b| text_of(&b["content"]));
    let offers_bash = request["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["name"] == "Bash"));
    let (block, stop) = match next_turn(offers_bash, tool_result) {
        Turn::Call => (
            json!({"type": "tool_use", "id": "toolu_agent01", "name": "Bash",
                "input": {"command": AGENT_COMMAND, "description": "Print the marker"}}),
            "tool_use",
        ),
        Turn::Text(text) => (json!({"type": "text", "text": text}), "end_turn"),
    };
    let usage = json!({"input_tokens": 30, "output_tokens": 10, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0});
    let model = request["model"].clone();
    if request["stream"] != true {
        let message = json!({"id": "msg_agent01", "type": "message", "role": "assistant", "model": model,
            "content": [block], "stop_reason": stop, "stop_sequence": null, "usage": usage});
        return ([("content-type", "application/json")], message.to_string()).into_response();
    }
    let frame = |data: Value| {
        format!(
            "event: {}\ndata: {data}\n\n",
            data["type"].as_str().unwrap_or_default()
        )
    };
    let (start, delta) = if block["type"] == "tool_use" {
        let mut start = block.clone();
        start["input"] = json!({});
        (
            start,
            json!({"type": "input_json_delta", "partial_json": block["input"].to_string()}),
        )
    } else {
        (
            json!({"type": "text", "text": ""}),
            json!({"type": "text_delta", "text": block["text"]}),
        )
    };
    sse(vec![
        frame(
            json!({"type": "message_start", "message": {"id": "msg_agent01", "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage}}),
        ),
        frame(json!({"type": "content_block_start", "index": 0, "content_block": start})),
        frame(json!({"type": "content_block_delta", "index": 0, "delta": delta})),
        frame(json!({"type": "content_block_stop", "index": 0})),
        frame(
            json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 10}}),
        ),
        frame(json!({"type": "message_stop"})),
    ])
}

/// The model on the OpenAI mock's `/v1/chat/completions`.
pub(crate) fn openai(request: &Value) -> Response {
    let last = request["messages"].as_array().and_then(|m| m.last());
    let tool_result = last
        .filter(|m| m["role"] == "tool")
        .map(|m| text_of(&m["content"]));
    let offers_bash = request["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["function"]["name"] == "Bash"));
    let arguments =
        json!({"command": AGENT_COMMAND, "description": "Print the marker"}).to_string();
    let (message, delta, finish) = match next_turn(offers_bash, tool_result) {
        Turn::Call => {
            let call = json!({"index": 0, "id": "call_agent01", "type": "function", "function": {"name": "Bash", "arguments": arguments}});
            (
                json!({"role": "assistant", "content": null, "tool_calls": [call]}),
                json!({"role": "assistant", "tool_calls": [call]}),
                "tool_calls",
            )
        }
        Turn::Text(text) => (
            json!({"role": "assistant", "content": text}),
            json!({"role": "assistant", "content": text}),
            "stop",
        ),
    };
    let usage = json!({"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40});
    let base = json!({"id": "chatcmpl-agent", "created": 1, "model": request["model"]});
    if request["stream"] != true {
        let mut completion = base;
        completion["object"] = json!("chat.completion");
        completion["choices"] = json!([{"index": 0, "message": message, "finish_reason": finish}]);
        completion["usage"] = usage;
        return (
            [("content-type", "application/json")],
            completion.to_string(),
        )
            .into_response();
    }
    let chunk = |choices: Value, usage: Value| {
        let mut chunk = base.clone();
        chunk["object"] = json!("chat.completion.chunk");
        chunk["choices"] = choices;
        chunk["usage"] = usage;
        format!("data: {chunk}\n\n")
    };
    sse(vec![
        chunk(
            json!([{"index": 0, "delta": delta, "finish_reason": null}]),
            Value::Null,
        ),
        chunk(
            json!([{"index": 0, "delta": {}, "finish_reason": finish}]),
            Value::Null,
        ),
        chunk(json!([]), usage),
        "data: [DONE]\n\n".into(),
    ])
}
