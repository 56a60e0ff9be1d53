//! The built-in `mock` provider: deterministic OpenAI-shaped replies with no
//! network and no key, so the gateway runs locally out of the box.
//!
//! The reply echoes the last user message. Usage counts tokens with
//! [`estimate_tokens`] (4 bytes per token), so it is reproducible; `max_tokens`
//! (or `max_completion_tokens`) truncates the reply and sets
//! `finish_reason: "length"`. With `stream: true` the reply is sent word by
//! word as `chat.completion.chunk` events, `stream_delay` apart, with a usage
//! chunk when `stream_options.include_usage` is set — the shapes of
//! <https://platform.openai.com/docs/api-reference/chat/object> and
//! <https://platform.openai.com/docs/api-reference/chat-streaming>.
//!
//! **Scripted tool calls** (so coding agents such as Claude Code and the
//! Codex CLI can run against a local gateway with no key): when the
//! deployment's upstream model is `mock-tools` or starts with `mock-tools-`,
//! the mock plays an agent's model, one turn at a time:
//! 1. the latest turn carries a tool result (a `tool` message after the
//!    last assistant message) → the text `Tool said: <that result>`,
//!    `finish_reason: "stop"`;
//! 2. else, function tools offered and `tool_choice` is not `"none"` → one
//!    call, `finish_reason: "tool_calls"`, to the function `tool_choice`
//!    names, else the first offered function tool that takes a command (a
//!    `command` or `cmd` property: a shell tool such as Claude Code's `Bash`
//!    or Codex's `exec_command`), else the first offered function tool.
//!    Its arguments are generated from the tool's JSON schema
//!    ([`example_arguments`]): a `command`/`cmd` property is
//!    `"echo gateway-mock-tool"` (or `["echo", "gateway-mock-tool"]` when
//!    it is an array), every other required property a harmless value of
//!    its type (`const`, the first `enum` value, the `default`, else
//!    `"gateway-mock"`, `1` or its `minimum`, `false`, `[]`, an object of
//!    its own required properties);
//! 3. else (no tools) the echo reply above.
//!
//! A streamed call arrives as OpenAI streams one: a first delta with the
//! call's `index`, `id`, `type` and `name` and empty `arguments`, then the
//! arguments in fragments of [`ARGUMENT_FRAGMENT_BYTES`], one chunk each.
//! Its completion tokens are the estimate of the arguments' text, which
//! `max_tokens` truncates like a reply (`finish_reason: "length"`).

use std::time::Duration;

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::super::embeddings::EmbeddingsRequest;
use super::super::usage::{content_text, estimate_prompt_tokens, estimate_tokens, Usage};
use super::super::ChatRequest;
use super::{embeddings_reply, json_response, sse_response, ProviderReply};
use crate::body::{Body, BodyError};
use crate::error::GatewayError;
use crate::platform::{Clock, MaybeSend};

const MOCK_PREFIX: &str = "Hello from the gateway's mock provider! You said: ";
const MAX_ECHO_CHARS: usize = 200;

/// The upstream model id that scripts tool calls (also any id starting
/// with `mock-tools-`); see the module docs.
pub const MOCK_TOOLS_MODEL: &str = "mock-tools";
/// What a scripted call puts in a `command` / `cmd` string property.
pub const MOCK_TOOL_COMMAND: &str = "echo gateway-mock-tool";
/// What a scripted call puts in another required string property.
const MOCK_STRING: &str = "gateway-mock";
/// What a scripted final answer starts with, before the tool's result.
pub const TOOL_RESULT_PREFIX: &str = "Tool said: ";
/// Longest tool result quoted back (chars): agents' shell tools wrap a
/// command's output in a few lines of their own.
const MAX_QUOTE_CHARS: usize = 2000;
/// Size of the argument fragments of a streamed tool call (bytes, cut on
/// a char boundary), so clients reassemble them as they must with real
/// providers.
pub const ARGUMENT_FRAGMENT_BYTES: usize = 10;
/// How deep [`example_arguments`] follows nested object schemas.
const MAX_SCHEMA_DEPTH: usize = 8;

/// The full reply text for a request, before `max_tokens` truncation.
fn mock_reply_text(messages: &[Value]) -> String {
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .map(content_text)
        .unwrap_or_default();
    let echo: String = last_user.chars().take(MAX_ECHO_CHARS).collect();
    format!("{MOCK_PREFIX}{echo}")
}

/// Truncates `text` to at most `max_tokens` estimated tokens (on a char
/// boundary); returns the text and the finish reason.
fn apply_max_tokens(text: String, max_tokens: Option<u64>) -> (String, &'static str) {
    let Some(max) = max_tokens else {
        return (text, "stop");
    };
    let max_bytes = usize::try_from(max.saturating_mul(4)).unwrap_or(usize::MAX);
    if text.len() <= max_bytes {
        return (text, "stop");
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_owned(), "length")
}

/// What the mock answers, before it is rendered complete or streamed.
#[derive(Debug, PartialEq)]
enum MockReply {
    Text {
        text: String,
        finish_reason: &'static str,
    },
    ToolCall {
        id: String,
        name: String,
        arguments: String,
        finish_reason: &'static str,
    },
}

impl MockReply {
    /// The completion's text whose estimate is the completion tokens.
    fn completion_text(&self) -> &str {
        match self {
            MockReply::Text { text, .. } => text,
            MockReply::ToolCall { arguments, .. } => arguments,
        }
    }
}

/// True for the upstream model ids that script tool calls.
fn scripts_tool_calls(upstream_model: &str) -> bool {
    upstream_model == MOCK_TOOLS_MODEL
        || upstream_model
            .strip_prefix(MOCK_TOOLS_MODEL)
            .is_some_and(|rest| rest.starts_with('-'))
}

fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

/// The text of the latest tool result of the current turn: the last `tool`
/// message after the last assistant message. (A translated Anthropic user
/// turn puts its text after its tool results, so the tool message need
/// not be the very last one.)
fn latest_tool_result(messages: &[Value]) -> Option<String> {
    messages
        .iter()
        .rev()
        .take_while(|m| role(m) != Some("assistant"))
        .find(|m| role(m) == Some("tool"))
        .map(|m| m.get("content").map(content_text).unwrap_or_default())
}

/// The JSON type a schema names (the first non-null one of a list).
fn schema_type(schema: &Value) -> Option<&str> {
    match schema.get("type") {
        Some(Value::String(kind)) => Some(kind),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|kind| *kind != "null"),
        _ => None,
    }
}

/// The scripted command for a property named `command` or `cmd` whose
/// schema is a string or an array (of argv strings); `None` for any other.
fn command_value(name: &str, schema: &Value) -> Option<Value> {
    if name != "command" && name != "cmd" {
        return None;
    }
    match schema_type(schema) {
        Some("string") => Some(json!(MOCK_TOOL_COMMAND)),
        Some("array") => Some(json!(MOCK_TOOL_COMMAND.split(' ').collect::<Vec<_>>())),
        _ => None,
    }
}

/// Arguments for a function with parameters `schema`: an object with a
/// scripted command in a `command` / `cmd` property and a harmless value
/// in every other required property (see the module docs).
pub fn example_arguments(schema: &Value) -> Value {
    example_object(schema, 0)
}

fn example_object(schema: &Value, depth: usize) -> Value {
    let mut out = Map::new();
    if depth > MAX_SCHEMA_DEPTH {
        return Value::Object(out);
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            if let Some(command) = command_value(name, property) {
                out.insert(name.clone(), command);
            } else if required.contains(&name.as_str()) {
                out.insert(name.clone(), example_value(property, depth + 1));
            }
        }
    }
    // Required names the schema gives no property for: any value is valid.
    for name in required {
        if !out.contains_key(name) {
            out.insert(name.to_owned(), json!(MOCK_STRING));
        }
    }
    Value::Object(out)
}

fn example_value(schema: &Value, depth: usize) -> Value {
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|values| values.first())
    {
        return first.clone();
    }
    if let Some(value) = schema.get("default") {
        return value.clone();
    }
    let alternative = ["anyOf", "oneOf"].iter().find_map(|key| {
        schema
            .get(*key)
            .and_then(Value::as_array)
            .and_then(|alternatives| alternatives.first())
    });
    if let Some(first) = alternative {
        return if depth > MAX_SCHEMA_DEPTH {
            Value::Null
        } else {
            example_value(first, depth + 1)
        };
    }
    match schema_type(schema) {
        Some("integer" | "number") => schema
            .get("minimum")
            .filter(|minimum| minimum.is_number())
            .cloned()
            .unwrap_or_else(|| json!(1)),
        Some("boolean") => json!(false),
        Some("null") => Value::Null,
        Some("array") => {
            let count = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let item = schema.get("items").unwrap_or(&Value::Null);
            (0..count.min(4))
                .map(|_| example_value(item, depth + 1))
                .collect()
        }
        Some("object") => example_object(schema, depth),
        None if schema.get("properties").is_some() => example_object(schema, depth),
        _ => json!(MOCK_STRING),
    }
}

/// The function the script calls: the one `tool_choice` names, else the
/// first that takes a command, else the first; `None` when no function
/// tool is offered or `tool_choice` is `"none"`. Returns its name and
/// parameters' schema.
fn chosen_function(body: &Map<String, Value>) -> Option<(&str, &Value)> {
    let tool_choice = body.get("tool_choice");
    if tool_choice.and_then(Value::as_str) == Some("none") {
        return None;
    }
    let functions: Vec<&Value> = body
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter(|tool| tool.get("type").and_then(Value::as_str) == Some("function"))
                .filter_map(|tool| tool.get("function"))
                .filter(|function| function.get("name").is_some_and(Value::is_string))
                .collect()
        })
        .unwrap_or_default();
    let named = tool_choice
        .and_then(|choice| choice.get("function"))
        .and_then(|function| function.get("name"))
        .and_then(Value::as_str);
    let takes_command = |function: &&&Value| {
        function
            .get("parameters")
            .and_then(|p| p.get("properties"))
            .and_then(Value::as_object)
            .is_some_and(|properties| {
                properties
                    .iter()
                    .any(|(name, schema)| command_value(name, schema).is_some())
            })
    };
    let function = match named {
        Some(name) => functions.iter().find(|f| f["name"] == name),
        None => functions
            .iter()
            .find(takes_command)
            .or_else(|| functions.first()),
    }?;
    let name = function["name"].as_str()?;
    Some((name, function.get("parameters").unwrap_or(&Value::Null)))
}

/// The reply to `request` for a deployment of `upstream_model`.
fn mock_reply(request: &ChatRequest, upstream_model: &str, completion_id: &str) -> MockReply {
    let text = |text: String| {
        let (text, finish_reason) = apply_max_tokens(text, request.max_tokens);
        MockReply::Text {
            text,
            finish_reason,
        }
    };
    let messages = request.messages();
    if !scripts_tool_calls(upstream_model) {
        return text(mock_reply_text(messages));
    }
    if let Some(result) = latest_tool_result(messages) {
        let quote: String = result.trim().chars().take(MAX_QUOTE_CHARS).collect();
        return text(format!("{TOOL_RESULT_PREFIX}{quote}"));
    }
    let Some((name, parameters)) = chosen_function(&request.body) else {
        return text(mock_reply_text(messages));
    };
    let (arguments, finish_reason) = match apply_max_tokens(
        example_arguments(parameters).to_string(),
        request.max_tokens,
    ) {
        (arguments, "stop") => (arguments, "tool_calls"),
        cut => cut,
    };
    MockReply::ToolCall {
        id: format!(
            "call_{}",
            completion_id
                .strip_prefix("chatcmpl-")
                .unwrap_or(completion_id)
        ),
        name: name.to_owned(),
        arguments,
        finish_reason,
    }
}

/// `text` in pieces of about `size` bytes, cut on char boundaries.
fn fragments(text: &str, size: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = size.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (piece, tail) = rest.split_at(end);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

/// Answers a chat request for a deployment of `upstream_model` (which
/// picks the script, see the module docs).
pub fn mock_chat(
    clock: impl Clock + Clone,
    request: &ChatRequest,
    upstream_model: &str,
    stream_delay: Duration,
    completion_id: String,
    created_unix_s: u64,
) -> ProviderReply {
    let reply = mock_reply(request, upstream_model, &completion_id);
    let usage = Usage::new(
        estimate_prompt_tokens(request.messages()),
        estimate_tokens(reply.completion_text()),
    );
    let model = request.model.as_str();

    if !request.stream {
        let (message, finish_reason) = match &reply {
            MockReply::Text {
                text,
                finish_reason,
            } => (
                json!({"role": "assistant", "content": text, "refusal": null}),
                *finish_reason,
            ),
            MockReply::ToolCall {
                id,
                name,
                arguments,
                finish_reason,
            } => (
                json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [{
                    "id": id, "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }]}),
                *finish_reason,
            ),
        };
        let body = json!({
            "id": completion_id,
            "object": "chat.completion",
            "created": created_unix_s,
            "model": model,
            "system_fingerprint": null,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
            "usage": usage,
        });
        return ProviderReply::Complete {
            response: json_response(StatusCode::OK, body.to_string()),
            usage: Some(usage),
        };
    }

    let include_usage = request.include_usage;
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut chunk = json!({
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created_unix_s,
            "model": model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        sse_data(&chunk.to_string())
    };
    let mut events = Vec::new();
    let finish_reason = match &reply {
        MockReply::Text {
            text,
            finish_reason,
        } => {
            events.push(chunk(
                json!({"role": "assistant", "content": "", "refusal": null}),
                None,
            ));
            events.extend(
                text.split_inclusive(' ')
                    .map(|word| chunk(json!({"content": word}), None)),
            );
            *finish_reason
        }
        MockReply::ToolCall {
            id,
            name,
            arguments,
            finish_reason,
        } => {
            // The call's head first, then its arguments piece by piece,
            // as OpenAI streams a tool call.
            events.push(chunk(
                json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [{
                    "index": 0, "id": id, "type": "function",
                    "function": {"name": name, "arguments": ""},
                }]}),
                None,
            ));
            events.extend(
                fragments(arguments, ARGUMENT_FRAGMENT_BYTES)
                    .into_iter()
                    .map(|piece| {
                        chunk(
                            json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                            None,
                        )
                    }),
            );
            *finish_reason
        }
    };
    events.push(chunk(json!({}), Some(finish_reason)));
    if include_usage {
        let usage_chunk = json!({
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created_unix_s,
            "model": model,
            "system_fingerprint": null,
            "choices": [],
            "usage": usage,
        });
        events.push(sse_data(&usage_chunk.to_string()));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));

    ProviderReply::Stream {
        response: sse_response(paced(clock, events, stream_delay)),
    }
}

/// Yields `events`, waiting `delay` before each one after the first.
fn paced(clock: impl Clock + Clone, events: Vec<Bytes>, delay: Duration) -> Body {
    let events = stream::iter(events.into_iter().enumerate()).then(move |(i, event)| {
        let sleep = (i > 0 && !delay.is_zero()).then(|| clock.sleep(delay));
        async move {
            if let Some(sleep) = sleep {
                sleep.await;
            }
            Ok::<_, BodyError>(event)
        }
    });
    body_from_stream(events)
}

fn body_from_stream(
    s: impl futures_util::Stream<Item = Result<Bytes, BodyError>> + MaybeSend + 'static,
) -> Body {
    Body::from_stream(s)
}

fn sse_data(json: &str) -> Bytes {
    Bytes::from(format!("data: {json}\n\n"))
}

/// Vector length when a request sets no `dimensions`.
pub const MOCK_EMBEDDING_DIMENSIONS: u64 = 16;
/// Largest `dimensions` the mock serves.
const MAX_MOCK_DIMENSIONS: u64 = 4096;

/// A deterministic unit vector per text (SHA-256 driven): equal texts get
/// equal vectors, so similarity search can be tried locally. Usage is the
/// 4-bytes-per-token estimate.
pub fn mock_embeddings(request: &EmbeddingsRequest) -> Result<ProviderReply, GatewayError> {
    use sha2::{Digest, Sha256};
    let texts = request.texts("mock")?;
    let dimensions = request.dimensions.unwrap_or(MOCK_EMBEDDING_DIMENSIONS);
    if dimensions > MAX_MOCK_DIMENSIONS {
        return Err(GatewayError::invalid_request(
            format!("`dimensions` may be at most {MAX_MOCK_DIMENSIONS} for the mock provider."),
            Some("dimensions"),
        ));
    }
    let vectors: Vec<Vec<f32>> = texts
        .iter()
        .map(|text| {
            let mut vector = Vec::with_capacity(dimensions as usize);
            let mut block = 0u32;
            while (vector.len() as u64) < dimensions {
                let digest = Sha256::new()
                    .chain_update(block.to_le_bytes())
                    .chain_update(text.as_bytes())
                    .finalize();
                vector.extend(
                    digest
                        .chunks(2)
                        .map(|pair| {
                            f32::from(u16::from_le_bytes([pair[0], pair[1]])) / 32768.0 - 1.0
                        })
                        .take((dimensions as usize).saturating_sub(vector.len())),
                );
                block += 1;
            }
            let norm = vector
                .iter()
                .map(|x| x * x)
                .sum::<f32>()
                .sqrt()
                .max(f32::EPSILON);
            vector.iter().map(|x| x / norm).collect()
        })
        .collect();
    let usage = Usage::new(request.estimated_tokens(), 0);
    Ok(embeddings_reply(&vectors, request, usage, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_echoes_last_user_message() {
        let messages = vec![
            json!({"role": "system", "content": "be brief"}),
            json!({"role": "user", "content": "first"}),
            json!({"role": "assistant", "content": "ok"}),
            json!({"role": "user", "content": [{"type": "text", "text": "second"}]}),
        ];
        assert_eq!(mock_reply_text(&messages), format!("{MOCK_PREFIX}second"));
    }

    use crate::platform::memory::ManualClock;
    use futures_executor::block_on;

    /// Claude Code's first two tools as the Anthropic dialect translates
    /// them (alphabetical: `Agent` comes before `Bash`).
    fn claude_code_tools() -> Value {
        json!([
            {"type": "function", "function": {"name": "Agent", "parameters": {"type": "object",
                "properties": {"description": {"type": "string"}, "prompt": {"type": "string"}},
                "required": ["description", "prompt"]}}},
            {"type": "function", "function": {"name": "Bash", "parameters": {"type": "object",
                "properties": {"command": {"type": "string"}, "description": {"type": "string"},
                    "timeout": {"type": "number"}},
                "required": ["command"]}}},
        ])
    }

    fn request(body: Value) -> ChatRequest {
        ChatRequest::parse(body.to_string().as_bytes()).unwrap()
    }

    /// `mock_chat` for a deployment of `upstream_model`: the complete
    /// reply's JSON, or a stream's `data:` payloads (`[DONE]` checked and
    /// dropped).
    fn run(body: Value, upstream_model: &str) -> Vec<Value> {
        let reply = mock_chat(
            ManualClock::new(0),
            &request(body),
            upstream_model,
            Duration::from_millis(5),
            "chatcmpl-abc123".into(),
            1,
        );
        match reply {
            ProviderReply::Complete { response, usage } => {
                let bytes = block_on(response.into_body().collect(usize::MAX)).unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(body["usage"], serde_json::to_value(usage.unwrap()).unwrap());
                vec![body]
            }
            ProviderReply::Stream { response } => {
                let bytes = block_on(response.into_body().collect(usize::MAX)).unwrap();
                let text = String::from_utf8(bytes.to_vec()).unwrap();
                let mut events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
                assert_eq!(events.pop(), Some("data: [DONE]"));
                events
                    .iter()
                    .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
                    .collect()
            }
            ProviderReply::PartialFailure { .. } => panic!("the mock never fans out chats"),
        }
    }

    #[test]
    fn tools_model_calls_the_shell_tool_with_the_scripted_command() {
        let body = json!({"model": "mock-agent", "tools": claude_code_tools(),
            "messages": [{"role": "user", "content": "run something"}]});
        let [reply] = &run(body, "mock-tools")[..] else {
            panic!("one reply")
        };
        let choice = &reply["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["id"], "call_abc123");
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "Bash");
        let arguments = call["function"]["arguments"].as_str().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(arguments).unwrap(),
            json!({"command": MOCK_TOOL_COMMAND})
        );
        assert_eq!(
            reply["usage"]["completion_tokens"],
            estimate_tokens(arguments)
        );
        assert!(reply["usage"]["prompt_tokens"].as_u64() > Some(0));
    }

    #[test]
    fn any_mock_tools_suffix_scripts_calls_and_other_models_ignore_tools() {
        let body = json!({"model": "m", "tools": claude_code_tools(),
            "messages": [{"role": "user", "content": "hi"}]});
        let scripted = &run(body.clone(), "mock-tools-claude")[0];
        assert_eq!(scripted["choices"][0]["finish_reason"], "tool_calls");
        for upstream in ["mock-gpt", "mock-toolsy", "m"] {
            let plain = &run(body.clone(), upstream)[0];
            assert_eq!(plain["choices"][0]["finish_reason"], "stop", "{upstream}");
            assert_eq!(
                plain["choices"][0]["message"]["content"],
                format!("{MOCK_PREFIX}hi")
            );
        }
    }

    #[test]
    fn tools_model_answers_with_the_latest_tool_result() {
        // Shaped like a translated Anthropic turn: the tool result, then
        // the user's text of the same turn.
        let body = json!({"model": "mock-agent", "tools": claude_code_tools(), "messages": [
            {"role": "user", "content": "run something"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "Bash", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "gateway-mock-tool\n"},
            {"role": "user", "content": [{"type": "text", "text": "<reminder>"}]},
        ]});
        let reply = &run(body, "mock-tools")[0];
        assert_eq!(reply["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            reply["choices"][0]["message"]["content"],
            "Tool said: gateway-mock-tool"
        );
        assert!(reply["choices"][0]["message"].get("tool_calls").is_none());
    }

    #[test]
    fn tools_model_without_function_tools_or_with_tool_choice_none_echoes() {
        let messages = json!([{"role": "user", "content": "hello"}]);
        let custom_only = json!([{"type": "custom", "custom": {"name": "apply_patch"}}]);
        for body in [
            json!({"model": "m", "messages": messages}),
            json!({"model": "m", "messages": messages, "tools": custom_only}),
            json!({"model": "m", "messages": messages, "tools": claude_code_tools(), "tool_choice": "none"}),
        ] {
            let reply = &run(body, "mock-tools")[0];
            assert_eq!(reply["choices"][0]["finish_reason"], "stop");
            assert_eq!(
                reply["choices"][0]["message"]["content"],
                format!("{MOCK_PREFIX}hello")
            );
        }
    }

    #[test]
    fn tool_choice_naming_a_function_is_the_one_called() {
        let body = json!({"model": "m", "tools": claude_code_tools(),
            "tool_choice": {"type": "function", "function": {"name": "Agent"}},
            "messages": [{"role": "user", "content": "delegate"}]});
        let call = run(body, "mock-tools")[0]["choices"][0]["message"]["tool_calls"][0].clone();
        assert_eq!(call["function"]["name"], "Agent");
        assert_eq!(
            serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
            json!({"description": "gateway-mock", "prompt": "gateway-mock"})
        );
    }

    #[test]
    fn arguments_follow_the_schema() {
        let schema = json!({"type": "object", "properties": {
            "cmd": {"type": "array", "items": {"type": "string"}},
            "path": {"type": "string"},
            "count": {"type": "integer", "minimum": 3},
            "ratio": {"type": ["number", "null"]},
            "mode": {"type": "string", "enum": ["fast", "slow"]},
            "kind": {"const": "exact"},
            "verbose": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "empty": {"type": "array"},
            "limit": {"type": "integer", "default": 50},
            "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "nested": {"type": "object", "properties": {
                "inner": {"type": "string"}, "skip": {"type": "string"}}, "required": ["inner"]},
            "optional": {"type": "string"},
        }, "required": ["path", "count", "ratio", "mode", "kind", "verbose", "tags", "empty",
            "limit", "either", "nested", "unlisted"]});
        assert_eq!(
            example_arguments(&schema),
            json!({
                "cmd": ["echo", "gateway-mock-tool"],
                "path": "gateway-mock", "count": 3, "ratio": 1, "mode": "fast", "kind": "exact",
                "verbose": false, "tags": ["gateway-mock", "gateway-mock"], "empty": [],
                "limit": 50, "either": 1, "nested": {"inner": "gateway-mock"},
                "unlisted": "gateway-mock",
            })
        );
        // A schema that nests without end stops at the depth limit.
        let mut deep = json!({"type": "object", "properties": {}, "required": ["next"]});
        for _ in 0..20 {
            deep = json!({"type": "object", "properties": {"next": deep}, "required": ["next"]});
        }
        assert!(example_arguments(&deep).is_object());
    }

    #[test]
    fn streamed_tool_call_arrives_as_openai_streams_it() {
        let body = json!({"model": "mock-agent", "stream": true,
            "stream_options": {"include_usage": true}, "tools": claude_code_tools(),
            "messages": [{"role": "user", "content": "run something"}]});
        let chunks = run(body.clone(), "mock-tools");
        let complete = {
            let mut body = body;
            body["stream"] = json!(false);
            run(body, "mock-tools").remove(0)
        };
        let deltas: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0))
            .map(|choice| &choice["delta"])
            .collect();
        // The head: index, id, type and name, no arguments yet.
        let head = &deltas[0]["tool_calls"][0];
        assert_eq!(deltas[0]["role"], "assistant");
        assert_eq!(head["index"], 0);
        assert_eq!(head["id"], "call_abc123");
        assert_eq!(head["type"], "function");
        assert_eq!(head["function"]["name"], "Bash");
        assert_eq!(head["function"]["arguments"], "");
        // Then the arguments in several pieces, each without id or name.
        let pieces: Vec<&str> = deltas[1..]
            .iter()
            .filter_map(|d| d["tool_calls"].get(0))
            .map(|call| {
                assert!(call.get("id").is_none() && call["function"].get("name").is_none());
                assert_eq!(call["index"], 0);
                call["function"]["arguments"].as_str().unwrap()
            })
            .collect();
        assert!(pieces.len() >= 3, "{pieces:?}");
        let arguments: String = pieces.concat();
        assert_eq!(
            serde_json::from_str::<Value>(&arguments).unwrap(),
            json!({"command": MOCK_TOOL_COMMAND})
        );
        assert_eq!(
            arguments,
            complete["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        );
        let finishes: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0))
            .map(|choice| &choice["finish_reason"])
            .filter(|f| !f.is_null())
            .collect();
        assert_eq!(finishes, [&json!("tool_calls")]);
        // Usage as the complete reply reports it, in a last chunk of no choices.
        let usage_chunk = chunks.last().unwrap();
        assert_eq!(usage_chunk["choices"], json!([]));
        assert_eq!(usage_chunk["usage"], complete["usage"]);
    }

    #[test]
    fn streamed_final_answer_quotes_the_tool_result() {
        let body = json!({"model": "m", "stream": true, "tools": claude_code_tools(), "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "Bash", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "42"}]},
        ]});
        let chunks = run(body, "mock-tools");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Tool said: 42");
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "stop"
        );
    }

    #[test]
    fn max_tokens_cuts_a_scripted_call_with_length() {
        let body = json!({"model": "m", "max_tokens": 2, "tools": claude_code_tools(),
            "messages": [{"role": "user", "content": "go"}]});
        let reply = &run(body, "mock-tools")[0];
        assert_eq!(reply["choices"][0]["finish_reason"], "length");
        let arguments = reply["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap();
        assert_eq!(arguments.len(), 8);
        assert_eq!(reply["usage"]["completion_tokens"], 2);
    }

    /// The Codex CLI's real tools (the captured request, see
    /// tests/fixtures/codex_responses_request.md), made chat tools the way
    /// a gateway translates Responses function tools: the script calls
    /// `exec_command` with a `cmd`.
    #[test]
    fn codex_tools_get_exec_command_with_cmd() {
        let captured: Value = serde_json::from_str(include_str!(
            "../../../../tests/fixtures/codex_responses_request.json"
        ))
        .unwrap();
        let tools: Vec<Value> = captured["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["type"] == "function")
            .map(|t| {
                json!({"type": "function", "function": {
                "name": t["name"], "description": t["description"], "parameters": t["parameters"]}})
            })
            .collect();
        let body = json!({"model": "gpt-5.5", "tools": tools,
            "messages": [{"role": "user", "content": "run it"}]});
        let call = run(body, "mock-tools")[0]["choices"][0]["message"]["tool_calls"][0].clone();
        assert_eq!(call["function"]["name"], "exec_command");
        assert_eq!(
            serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
            json!({"cmd": MOCK_TOOL_COMMAND})
        );
    }

    #[test]
    fn fragments_cut_on_char_boundaries() {
        assert_eq!(fragments("abcdefg", 3), ["abc", "def", "g"]);
        assert_eq!(fragments("aé", 2), ["aé"]);
        assert!(fragments("", 3).is_empty());
    }

    #[test]
    fn max_tokens_truncates_on_char_boundary() {
        let (text, reason) = apply_max_tokens("abcéfg".into(), Some(1));
        assert_eq!((text.as_str(), reason), ("abc", "length"));
        let (text, reason) = apply_max_tokens("hi".into(), Some(10));
        assert_eq!((text.as_str(), reason), ("hi", "stop"));
    }
}
