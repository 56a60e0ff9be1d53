//! A scripted coding-agent model, `agent-bash`, on the Anthropic and the
//! OpenAI mocks, so a real agent (Claude Code, the Codex CLI) can complete a
//! task that needs a tool call against the gateway with no key:
//! - a shell tool offered ([`shell_call`]: Claude Code's `Bash`, the Codex
//!   CLI's `exec_command`) and no tool result yet → call it with
//!   `echo gateway-agent-$((6*7))` (only a shell that ran it prints
//!   `gateway-agent-42`), in the arguments that agent's tool takes;
//! - the last turn is a tool result → the final text `Tool said: <result>`;
//! - no shell tool (an agent's side requests) → `ok`.
//!
//! Wire shapes: <https://docs.anthropic.com/en/api/messages>,
//! <https://docs.anthropic.com/en/api/messages-streaming>,
//! <https://platform.openai.com/docs/api-reference/chat-streaming>. The
//! Codex CLI's tools are those of its real request,
//! `tests/fixtures/codex_responses_request.json`.

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// The command the scripted model asks the agent to run.
pub const AGENT_COMMAND: &str = "echo gateway-agent-$((6*7))";
/// What that command prints.
pub const AGENT_MARKER: &str = "gateway-agent-42";

/// The call of the first shell tool among `offered` (tool names in the
/// order the agent sent them), as `(name, arguments)`:
/// - `Bash` (Claude Code): `{"command": <command>, "description": …}`;
/// - `exec_command` (the Codex CLI 0.171.0, `{"cmd": string}` required,
///   no other property needed, `additionalProperties: false`):
///   `{"cmd": <command>}`;
/// - `shell` (the Codex CLI's earlier shell tool, an argv array; not sent
///   by 0.171.0): `{"command": ["bash", "-lc", <command>]}`.
pub fn shell_call<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<(&'a str, Value)> {
    offered.into_iter().find_map(|name| {
        let arguments = match name {
            "Bash" => json!({"command": AGENT_COMMAND, "description": "Print the marker"}),
            "exec_command" => json!({"cmd": AGENT_COMMAND}),
            "shell" => json!({"command": ["bash", "-lc", AGENT_COMMAND]}),
            _ => return None,
        };
        Some((name, arguments))
    })
}

/// What the model says next: a call of a shell tool, or text.
enum Turn<'a> {
    Call(&'a str, Value),
    Text(String),
}

fn next_turn(shell: Option<(&str, Value)>, tool_result: Option<String>) -> Turn<'_> {
    match (tool_result, shell) {
        (Some(result), _) => Turn::Text(format!("Tool said: {}", result.trim())),
        (None, Some((name, arguments))) => Turn::Call(name, arguments),
        (None, None) => Turn::Text("ok".into()),
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
    let offered = request["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str());
    let (block, stop) = match next_turn(shell_call(offered), tool_result) {
        Turn::Call(name, input) => (
            json!({"type": "tool_use", "id": "toolu_agent01", "name": name, "input": input}),
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
    let offered = request["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str());
    let (message, delta, finish) = match next_turn(shell_call(offered), tool_result) {
        Turn::Call(name, arguments) => {
            let call = json!({"index": 0, "id": "call_agent01", "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()}});
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Real Codex CLI 0.171.0 requests (see the `.md` next to them).
    const CODEX_REQUESTS: [&str; 2] = [
        include_str!("../fixtures/codex_responses_request.json"),
        include_str!("../fixtures/codex_responses_request_namespace.json"),
    ];

    /// A captured Responses request as a gateway hands it to a chat
    /// provider: function tools `{"type":"function","name","parameters"}`
    /// become `{"type":"function","function":{…}}`, a `custom` tool a
    /// function of one string argument, other tool types are dropped;
    /// input items become messages (`function_call` → an assistant tool
    /// call, `function_call_output` → a `tool` message).
    fn as_chat(captured: &Value) -> Value {
        let tools: Vec<Value> = captured["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|tool| match tool["type"].as_str() {
                Some("function") => Some(json!({"type": "function", "function": {
                    "name": tool["name"], "description": tool["description"],
                    "parameters": tool["parameters"]}})),
                Some("custom") => Some(json!({"type": "function", "function": {
                    "name": tool["name"], "description": tool["description"],
                    "parameters": {"type": "object", "properties": {"input": {"type": "string"}},
                        "required": ["input"]}}})),
                _ => None,
            })
            .collect();
        let messages: Vec<Value> = captured["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| match item["type"].as_str() {
                Some("message") => json!({"role": item["role"], "content": item["content"]
                    .as_array().unwrap().iter()
                    .map(|part| json!({"type": "text", "text": part["text"]}))
                    .collect::<Vec<_>>()}),
                Some("function_call") => json!({"role": "assistant", "content": null,
                    "tool_calls": [{"id": item["call_id"], "type": "function",
                        "function": {"name": item["name"], "arguments": item["arguments"]}}]}),
                Some("function_call_output") => json!({"role": "tool",
                    "tool_call_id": item["call_id"], "content": item["output"]}),
                other => panic!("an input item the fixture should not have: {other:?}"),
            })
            .collect();
        json!({"model": captured["model"], "stream": false, "tools": tools, "messages": messages})
    }

    /// The chat request of the turn before Codex ran the tool.
    fn first_turn(chat: &Value) -> Value {
        let mut chat = chat.clone();
        let messages = chat["messages"].as_array_mut().unwrap();
        let call = messages.iter().position(|m| m["role"] == "assistant");
        messages.truncate(call.unwrap_or(messages.len()));
        chat
    }

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// `arguments` satisfy the tool's JSON schema as far as the shapes
    /// go: every required property present, no property the schema does
    /// not list (Codex's tools say `additionalProperties: false`), each of
    /// the type the schema names.
    fn assert_fits(arguments: &Value, schema: &Value) {
        let properties = schema["properties"].as_object().unwrap();
        for required in schema["required"].as_array().unwrap() {
            assert!(
                arguments.get(required.as_str().unwrap()).is_some(),
                "{required} missing from {arguments}"
            );
        }
        for (name, value) in arguments.as_object().unwrap() {
            let kind = properties
                .get(name)
                .unwrap_or_else(|| panic!("{name} is not a property of {schema}"))["type"]
                .as_str()
                .unwrap();
            let fits = match kind {
                "string" => value.is_string(),
                "array" => value.is_array(),
                "number" | "integer" => value.is_number(),
                "boolean" => value.is_boolean(),
                _ => value.is_object(),
            };
            assert!(fits, "{name}: {value} is not a {kind}");
        }
    }

    #[tokio::test]
    async fn codex_tools_get_exec_command_with_the_command_as_cmd() {
        for captured in CODEX_REQUESTS {
            let captured: Value = serde_json::from_str(captured).unwrap();
            let chat = first_turn(&as_chat(&captured));
            let completion: Value = serde_json::from_str(&body(openai(&chat)).await).unwrap();
            let choice = &completion["choices"][0];
            assert_eq!(choice["finish_reason"], "tool_calls");
            let call = &choice["message"]["tool_calls"][0]["function"];
            assert_eq!(call["name"], "exec_command");
            let arguments: Value =
                serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
            assert_eq!(arguments, json!({"cmd": AGENT_COMMAND}));
            let schema = captured["tools"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == "exec_command")
                .unwrap()["parameters"]
                .clone();
            assert_fits(&arguments, &schema);
        }
    }

    /// The same request translated for an Anthropic deployment (tools as
    /// `{name, input_schema}`), as `agent-native` would get it.
    #[tokio::test]
    async fn codex_tools_on_the_anthropic_mock_get_exec_command() {
        let captured: Value = serde_json::from_str(CODEX_REQUESTS[0]).unwrap();
        let chat = first_turn(&as_chat(&captured));
        let tools: Vec<Value> = chat["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| json!({"name": t["function"]["name"], "input_schema": t["function"]["parameters"]}))
            .collect();
        let request = json!({"model": "agent-bash", "max_tokens": 1000, "stream": true,
            "tools": tools, "messages": [{"role": "user", "content": "run it"}]});
        let events = body(anthropic(&request)).await;
        let data: Vec<Value> = events
            .split("\n\n")
            .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let start = data
            .iter()
            .find(|d| d["type"] == "content_block_start")
            .unwrap();
        assert_eq!(start["content_block"]["name"], "exec_command");
        let input: String = data
            .iter()
            .filter_map(|d| d["delta"]["partial_json"].as_str())
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&input).unwrap(),
            json!({"cmd": AGENT_COMMAND})
        );
    }

    /// Codex's second turn (its `function_call_output` wraps the
    /// command's output in lines of its own): the answer quotes it.
    #[tokio::test]
    async fn codex_tool_output_is_quoted() {
        let captured: Value = serde_json::from_str(CODEX_REQUESTS[0]).unwrap();
        let mut chat = as_chat(&captured);
        chat["stream"] = json!(true);
        let stream = body(openai(&chat)).await;
        let text: String = stream
            .split("\n\n")
            .filter_map(|frame| frame.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .filter_map(|d| {
                serde_json::from_str::<Value>(d).unwrap()["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert!(text.starts_with("Tool said: "), "{text}");
        assert!(text.contains(AGENT_MARKER), "{text}");
    }

    #[test]
    fn each_agents_shell_tool_gets_its_argument_shape() {
        // Claude Code offers Agent before Bash: the shell tool is chosen.
        let (name, arguments) = shell_call(["Agent", "Bash", "Read"]).unwrap();
        assert_eq!(name, "Bash");
        assert_eq!(arguments["command"], AGENT_COMMAND);
        let (name, arguments) = shell_call(["view_image", "shell"]).unwrap();
        assert_eq!(name, "shell");
        assert_eq!(
            arguments,
            json!({"command": ["bash", "-lc", AGENT_COMMAND]})
        );
        assert!(shell_call(["Read", "write_stdin"]).is_none());
    }
}
