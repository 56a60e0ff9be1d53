//! Anthropic Messages inbound: `POST {prefix}/messages` (stream and not)
//! and `POST {prefix}/messages/count_tokens`, parsed into the canonical
//! Chat Completions request and rendered back as Anthropic messages and
//! stream events.
//!
//! References: <https://docs.anthropic.com/en/api/messages> (request and
//! response), <https://docs.anthropic.com/en/api/messages-streaming>
//! (events and their order), <https://docs.anthropic.com/en/api/errors>,
//! <https://docs.anthropic.com/en/api/messages-count-tokens>.
//!
//! Field rule (anthropic → canonical, for providers that are not
//! Anthropic; `kind: anthropic` deployments get the body as sent):
//! - mapped: `system` (string or text blocks) and `role: "system"` entries
//!   of `messages` → system messages in place; text, image (base64, url)
//!   and document blocks (PDF base64 → a `file` part, plain text → text);
//!   `tool_use` → `tool_calls`; `tool_result` → `tool` messages (their
//!   text; images inside tool results are dropped); `tools` (custom tools)
//!   → function tools; `tool_choice` (`auto`, `any` → `required`, `tool`,
//!   `none`; `disable_parallel_tool_use` → `parallel_tool_calls: false`);
//!   `stop_sequences` → `stop`; `temperature`, `top_p`; `metadata.user_id`
//!   → `user`; `max_tokens` → the completion cap (written by each provider
//!   in its own field); `output_config.format` (JSON schema) →
//!   `response_format`.
//! - dropped (Anthropic-only, no equivalent in the canonical form):
//!   `thinking` (a deployment that reasons takes `reasoning_effort` from
//!   its model's `params`), `top_k`, `context_management`,
//!   `output_config.effort`, `cache_control` on any block, `container`,
//!   `mcp_servers`, `service_tier`, `thinking` / `redacted_thinking`
//!   blocks of earlier assistant turns, and Anthropic-defined tools (any
//!   tool with a `type` other than `custom`: web search, code execution,
//!   bash, text editor, …) — unless `tool_choice` names one, which is 400.
//! - refused (400): a block type the canonical form cannot carry
//!   (`search_result`, `container_upload`, a file-id or URL document, …).
//!
//! Replies: `reasoning_content` of OpenAI-compatible servers becomes a
//! `thinking` block; `finish_reason` maps to `stop_reason` (`stop` →
//! `end_turn`, `length` → `max_tokens`, `tool_calls` → `tool_use`,
//! `content_filter` → `refusal`). A translated stream's `message_start`
//! carries the gateway's prompt estimate as `input_tokens` (the provider
//! reports its count only at the end); the closing `message_delta`
//! carries the provider's exact `input_tokens`, cache reads and
//! `output_tokens` (the Anthropic SDKs take both from it).

use std::collections::HashMap;
use std::sync::Arc;

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::super::json::parse_object_with_model;
use super::super::providers::MAX_RESPONSE_BYTES;
use super::super::request::{ChatRequest, NativeRequest, MAX_TOKENS_CAP};
use super::super::sse::{EventRewriter, SseRewrite};
use super::super::usage::Usage;
use crate::body::Body;
use crate::error::{anthropic_error_json, anthropic_error_type, GatewayError};

pub const ANTHROPIC_VERSION: &str = "anthropic-version";
pub const ANTHROPIC_BETA: &str = "anthropic-beta";

fn invalid(message: impl Into<String>, param: &'static str) -> GatewayError {
    GatewayError::invalid_request(message, Some(param))
}

/// Parses a Messages request (`require_max_tokens`: `/messages`, where
/// Anthropic requires it; `count_tokens` takes none) into the canonical
/// request, the original kept for native pass-through.
pub fn parse_messages(
    bytes: &[u8],
    headers: &HeaderMap,
    require_max_tokens: bool,
) -> Result<ChatRequest, GatewayError> {
    let (body, model) = parse_object_with_model(bytes)?;
    let max_tokens = match body.get("max_tokens") {
        None | Some(Value::Null) if require_max_tokens => {
            return Err(invalid("max_tokens: Field required", "max_tokens"))
        }
        None | Some(Value::Null) => None,
        Some(value) => match value.as_u64() {
            Some(n) if n > 0 && n <= MAX_TOKENS_CAP => Some(n),
            _ => {
                return Err(invalid(
                    format!("max_tokens: must be an integer between 1 and {MAX_TOKENS_CAP}"),
                    "max_tokens",
                ))
            }
        },
    };
    let canonical = canonical_body(&body, &model)?;
    let mut chat = ChatRequest::from_object(canonical, model)?;
    // The client's limit stays out of the canonical body: each provider
    // writes the cap in the field its API takes (see `gateway_capped`).
    if let Some(max_tokens) = max_tokens {
        chat.max_tokens = Some(max_tokens);
        chat.gateway_capped = true;
    }
    let header = |name: &str| {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    };
    chat.native = Some(Arc::new(NativeRequest::AnthropicMessages {
        body,
        version: header(ANTHROPIC_VERSION),
        beta: header(ANTHROPIC_BETA),
    }));
    Ok(chat)
}

/// The canonical Chat Completions body of a Messages body (see the module
/// docs for what is mapped, dropped and refused).
fn canonical_body(body: &Map<String, Value>, model: &str) -> Result<Map<String, Value>, GatewayError> {
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) => *stream,
        Some(_) => return Err(invalid("stream: must be a boolean", "stream")),
    };
    let mut messages = Vec::new();
    match body.get("system") {
        None | Some(Value::Null) => {}
        Some(system) => messages.push(json!({"role": "system", "content": system_text(system)?})),
    }
    let turns = match body.get("messages") {
        Some(Value::Array(turns)) if !turns.is_empty() => turns,
        Some(Value::Array(_)) => {
            return Err(invalid("messages: at least one message is required", "messages"))
        }
        Some(_) => return Err(invalid("messages: must be an array", "messages")),
        None => return Err(invalid("messages: Field required", "messages")),
    };
    for turn in turns {
        let content = turn.get("content").unwrap_or(&Value::Null);
        match turn.get("role").and_then(Value::as_str) {
            Some("user") => user_turn(content, &mut messages)?,
            Some("assistant") => messages.push(assistant_turn(content)?),
            // Claude Code's mid-conversation system entries.
            Some("system") => {
                messages.push(json!({"role": "system", "content": system_text(content)?}))
            }
            _ => {
                return Err(invalid(
                    "messages: every message needs a `role` of `user`, `assistant` or `system`",
                    "messages",
                ))
            }
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(messages));
    if stream {
        out.insert("stream".into(), json!(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    for field in ["temperature", "top_p"] {
        match body.get(field) {
            None | Some(Value::Null) => {}
            Some(value) if value.is_number() => {
                out.insert(field.into(), value.clone());
            }
            Some(_) => {
                return Err(GatewayError::invalid_request(
                    format!("{field}: must be a number"),
                    Some(if field == "top_p" { "top_p" } else { "temperature" }),
                ))
            }
        }
    }
    if let Some(top_k) = body.get("top_k").filter(|v| !v.is_null()) {
        if !top_k.is_u64() {
            return Err(invalid("top_k: must be a non-negative integer", "top_k"));
        }
    }
    match body.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(stops)) if stops.iter().all(Value::is_string) => {
            if !stops.is_empty() {
                out.insert("stop".into(), Value::Array(stops.clone()));
            }
        }
        Some(_) => {
            return Err(invalid(
                "stop_sequences: must be an array of strings",
                "stop_sequences",
            ))
        }
    }
    match body.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(metadata)) => match metadata.get("user_id") {
            None | Some(Value::Null) => {}
            Some(Value::String(user)) => {
                out.insert("user".into(), json!(user));
            }
            Some(_) => return Err(invalid("metadata.user_id: must be a string", "metadata")),
        },
        Some(_) => return Err(invalid("metadata: must be an object", "metadata")),
    }
    for field in ["thinking", "context_management", "output_config"] {
        if body.get(field).is_some_and(|v| !v.is_null() && !v.is_object()) {
            return Err(GatewayError::invalid_request(
                format!("{field}: must be an object"),
                Some(match field {
                    "thinking" => "thinking",
                    "context_management" => "context_management",
                    _ => "output_config",
                }),
            ));
        }
    }
    if let Some(format) = body
        .get("output_config")
        .and_then(|c| c.get("format"))
        .filter(|f| f.get("type").and_then(Value::as_str) == Some("json_schema"))
    {
        let schema = format.get("schema").cloned().unwrap_or_else(|| json!({}));
        out.insert(
            "response_format".into(),
            json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}),
        );
    }
    let dropped = tools(body, &mut out)?;
    tool_choice(body, &dropped, &mut out)?;
    Ok(out)
}

/// `system` (a string or text blocks) as one string.
fn system_text(system: &Value) -> Result<String, GatewayError> {
    match system {
        Value::String(text) => Ok(text.clone()),
        Value::Array(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for block in blocks {
                match (block_type(block)?, block.get("text").and_then(Value::as_str)) {
                    ("text", Some(text)) => texts.push(text),
                    _ => {
                        return Err(invalid(
                            "system: must be a string or an array of text blocks",
                            "system",
                        ))
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        _ => Err(invalid("system: must be a string or an array of text blocks", "system")),
    }
}

fn block_type(block: &Value) -> Result<&str, GatewayError> {
    block
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("messages: every content block needs a string `type`", "messages"))
}

/// The content blocks of a turn (a string is one text block).
fn blocks(content: &Value) -> Result<Vec<Value>, GatewayError> {
    match content {
        Value::String(text) => Ok(vec![json!({"type": "text", "text": text})]),
        Value::Array(blocks) => Ok(blocks.clone()),
        _ => Err(invalid(
            "messages: `content` must be a string or an array of content blocks",
            "messages",
        )),
    }
}

fn unsupported_block(kind: &str) -> GatewayError {
    invalid(
        format!(
            "messages: a `{kind}` content block cannot be served by this model's provider \
             (only Anthropic deployments take it)"
        ),
        "messages",
    )
}

/// A user turn: its `tool_result` blocks become `tool` messages (first:
/// they answer the previous assistant turn), the rest one user message.
fn user_turn(content: &Value, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    if let Value::String(text) = content {
        out.push(json!({"role": "user", "content": text}));
        return Ok(());
    }
    let mut parts = Vec::new();
    for block in blocks(content)? {
        match block_type(&block)? {
            "text" => parts.push(json!({"type": "text", "text": block.get("text").cloned().unwrap_or_else(|| json!(""))})),
            "image" => parts.push(image_part(&block)?),
            "document" => parts.push(document_part(&block)?),
            "tool_result" => {
                let id = block.get("tool_use_id").and_then(Value::as_str).ok_or_else(|| {
                    invalid("messages: a `tool_result` block needs a `tool_use_id`", "messages")
                })?;
                let text = match block.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(text)) => text.clone(),
                    Some(Value::Array(inner)) => inner
                        .iter()
                        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                        .filter_map(|b| b.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    Some(_) => {
                        return Err(invalid(
                            "messages: `tool_result.content` must be a string or blocks",
                            "messages",
                        ))
                    }
                };
                out.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
            other => return Err(unsupported_block(other)),
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

/// An `image` block as an `image_url` part (base64 → a data URL).
fn image_part(block: &Value) -> Result<Value, GatewayError> {
    let source = &block["source"];
    match source["type"].as_str() {
        Some("base64") => {
            let media_type = source["media_type"].as_str().unwrap_or("image/png");
            let data = source["data"].as_str().unwrap_or_default();
            Ok(json!({"type": "image_url", "image_url": {"url": format!("data:{media_type};base64,{data}")}}))
        }
        Some("url") => Ok(json!({"type": "image_url", "image_url": {"url": source["url"]}})),
        _ => Err(unsupported_block("image (file source)")),
    }
}

/// A `document` block: a base64 PDF as a `file` part, plain text as text.
fn document_part(block: &Value) -> Result<Value, GatewayError> {
    let source = &block["source"];
    match source["type"].as_str() {
        Some("base64") => {
            let media_type = source["media_type"].as_str().unwrap_or("application/pdf");
            let data = source["data"].as_str().unwrap_or_default();
            let filename = block["title"].as_str().unwrap_or("document.pdf");
            Ok(json!({"type": "file", "file": {
                "filename": filename,
                "file_data": format!("data:{media_type};base64,{data}"),
            }}))
        }
        Some("text") => Ok(json!({"type": "text", "text": source["data"]})),
        _ => Err(unsupported_block("document (url, file or content source)")),
    }
}

/// An assistant turn: text, and `tool_use` blocks as `tool_calls`.
/// Thinking blocks and Anthropic's server-tool blocks are dropped.
fn assistant_turn(content: &Value) -> Result<Value, GatewayError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in blocks(content)? {
        match block_type(&block)? {
            "text" => text.push_str(block["text"].as_str().unwrap_or_default()),
            "tool_use" => {
                let (Some(id), Some(name)) = (block["id"].as_str(), block["name"].as_str()) else {
                    return Err(invalid(
                        "messages: a `tool_use` block needs an `id` and a `name`",
                        "messages",
                    ));
                };
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": input.to_string()},
                }));
            }
            "thinking" | "redacted_thinking" => {}
            kind if kind == "server_tool_use" || kind.ends_with("_tool_result") => {}
            other => return Err(unsupported_block(other)),
        }
    }
    let mut message = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        if text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = Value::Array(calls);
    }
    Ok(message)
}

/// Custom tools → function tools; Anthropic-defined tools are dropped
/// (their names are returned, for `tool_choice`).
fn tools(body: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<Vec<String>, GatewayError> {
    let tools = match body.get("tools") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(invalid("tools: must be an array", "tools")),
    };
    let mut functions = Vec::new();
    let mut dropped = Vec::new();
    for tool in tools {
        let name = tool.get("name").and_then(Value::as_str).filter(|n| !n.is_empty());
        let Some(name) = name else {
            return Err(invalid("tools: every tool needs a `name`", "tools"));
        };
        match tool.get("type").and_then(Value::as_str) {
            None | Some("custom") => {
                let schema = match tool.get("input_schema") {
                    Some(Value::Object(schema)) => Value::Object(schema.clone()),
                    _ => {
                        return Err(invalid(
                            format!("tools: `{name}` needs an `input_schema` object"),
                            "tools",
                        ))
                    }
                };
                let mut function = json!({"name": name, "parameters": schema});
                if let Some(description) = tool.get("description").filter(|d| d.is_string()) {
                    function["description"] = description.clone();
                }
                functions.push(json!({"type": "function", "function": function}));
            }
            Some(kind) => {
                tracing::debug!(tool = name, kind, "Anthropic-defined tool dropped in translation");
                dropped.push(name.to_owned());
            }
        }
    }
    if !functions.is_empty() {
        out.insert("tools".into(), Value::Array(functions));
    }
    Ok(dropped)
}

fn tool_choice(
    body: &Map<String, Value>,
    dropped: &[String],
    out: &mut Map<String, Value>,
) -> Result<(), GatewayError> {
    let choice = match body.get("tool_choice") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(choice)) => choice,
        Some(_) => return Err(invalid("tool_choice: must be an object", "tool_choice")),
    };
    let has_tools = out.contains_key("tools");
    let mapped = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let Some(name) = choice.get("name").and_then(Value::as_str) else {
                return Err(invalid("tool_choice: type `tool` needs a `name`", "tool_choice"));
            };
            if dropped.iter().any(|d| d == name) {
                return Err(invalid(
                    format!(
                        "tool_choice: `{name}` is an Anthropic-defined tool, which this model's \
                         provider cannot run"
                    ),
                    "tool_choice",
                ));
            }
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(invalid(
                "tool_choice: `type` must be `auto`, `any`, `tool` or `none`",
                "tool_choice",
            ))
        }
    };
    if !has_tools {
        // Nothing left to choose from (only Anthropic-defined tools).
        return Ok(());
    }
    out.insert("tool_choice".into(), mapped);
    if choice.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true) {
        out.insert("parallel_tool_calls".into(), json!(false));
    }
    Ok(())
}

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`.
pub fn finish_reason_to_stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// A tool call's arguments (a JSON string) as the `input` object; what is
/// not a JSON object is kept as `{}` (Anthropic's `input` is an object).
fn tool_input(arguments: &Value) -> Value {
    arguments
        .as_str()
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}))
}

/// The id of a message from a canonical id.
fn message_id(id: Option<&str>) -> String {
    let id = id.unwrap_or("gateway");
    let id = id.strip_prefix("chatcmpl-").unwrap_or(id);
    if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{id}")
    }
}

/// The pure response mapping: an OpenAI `chat.completion` → an Anthropic
/// `message`.
pub fn message_from_completion(completion: &Value, public_model: &str) -> Value {
    let choice = &completion["choices"][0];
    let message = &choice["message"];
    let mut content = Vec::new();
    for key in ["reasoning_content", "reasoning"] {
        if let Some(thinking) = message[key].as_str().filter(|t| !t.is_empty()) {
            content.push(json!({"type": "thinking", "thinking": thinking, "signature": ""}));
            break;
        }
    }
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        content.push(json!({
            "type": "tool_use",
            "id": call["id"],
            "name": call["function"]["name"],
            "input": tool_input(&call["function"]["arguments"]),
        }));
    }
    let usage = Usage::from_openai(&completion["usage"]).unwrap_or_default();
    json!({
        "id": message_id(completion["id"].as_str()),
        "type": "message",
        "role": "assistant",
        "model": public_model,
        "content": content,
        "stop_reason": finish_reason_to_stop_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
        "stop_sequence": null,
        "usage": usage.to_anthropic_json(),
    })
}

/// An error body in OpenAI's shape (a translated provider's) as
/// Anthropic's, with the type its status has there.
fn error_from_openai(status: StatusCode, body: &[u8]) -> Value {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = parsed["error"]["message"]
        .as_str()
        .unwrap_or("The upstream provider returned an error.");
    anthropic_error_json(anthropic_error_type(status), message, "")
}

/// A complete canonical reply rendered as an Anthropic message (or error).
pub async fn render_complete(
    response: Response<Body>,
    public_model: &str,
) -> Result<Response<Body>, GatewayError> {
    let (mut parts, body) = response.into_parts();
    let bytes = body
        .collect(MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| GatewayError::UpstreamInvalid {
            detail: format!("reading the reply: {e}"),
        })?;
    let rendered = if parts.status.is_success() {
        let completion: Value =
            serde_json::from_slice(&bytes).map_err(|e| GatewayError::UpstreamInvalid {
                detail: format!("the reply is not JSON: {e}"),
            })?;
        message_from_completion(&completion, public_model)
    } else {
        error_from_openai(parts.status, &bytes)
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(Response::from_parts(parts, Body::from(rendered.to_string())))
}

/// A canonical SSE stream re-encoded as Anthropic stream events.
pub fn render_stream(
    response: Response<Body>,
    public_model: &str,
    prompt_estimate: u64,
) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let events = MessagesStream::new(public_model, prompt_estimate);
    Response::from_parts(parts, Body::from_stream(SseRewrite::new(body, events)))
}

/// The kind of the content block being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Thinking,
    Text,
    Tool,
}

/// Writes Anthropic stream events for OpenAI `chat.completion.chunk`s:
/// `message_start` (with input usage) and a `ping` first, a content block
/// per run of text, reasoning or tool call (`text_delta`,
/// `thinking_delta`, `input_json_delta`), then `message_delta` (stop
/// reason, usage) and `message_stop` at `[DONE]`; an error chunk becomes
/// an `error` event.
pub struct MessagesStream {
    model: String,
    prompt_estimate: u64,
    started: bool,
    /// The open content block: its kind and index.
    open: Option<(Block, u64)>,
    next_index: u64,
    /// OpenAI tool call index → content block index.
    tools: HashMap<u64, u64>,
    stop_reason: Option<&'static str>,
    usage: Option<Usage>,
    streamed_bytes: u64,
    finished: bool,
}

/// One SSE frame, named as Anthropic names its events (the SDKs dispatch on
/// the `event:` line).
fn frame(data: &Value) -> String {
    let name = data["type"].as_str().unwrap_or("error");
    format!("event: {name}\ndata: {data}\n\n")
}

impl MessagesStream {
    pub fn new(public_model: &str, prompt_estimate: u64) -> Self {
        Self {
            model: public_model.to_owned(),
            prompt_estimate,
            started: false,
            open: None,
            next_index: 0,
            tools: HashMap::new(),
            stop_reason: None,
            usage: None,
            streamed_bytes: 0,
            finished: false,
        }
    }

    fn start(&mut self, id: Option<&str>, out: &mut Vec<String>) {
        if self.started {
            return;
        }
        self.started = true;
        let usage = Usage::new(self.prompt_estimate, 0).to_anthropic_json();
        out.push(frame(&json!({"type": "message_start", "message": {
            "id": message_id(id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": usage,
        }})));
        out.push(frame(&json!({"type": "ping"})));
    }

    fn close(&mut self, out: &mut Vec<String>) {
        if let Some((_, index)) = self.open.take() {
            out.push(frame(&json!({"type": "content_block_stop", "index": index})));
        }
    }

    /// Opens a block of `kind` unless one is open (tool calls always open
    /// a new one); returns its index.
    fn open(&mut self, kind: Block, start: Value, out: &mut Vec<String>) -> u64 {
        if let Some((open, index)) = self.open {
            if open == kind && kind != Block::Tool {
                return index;
            }
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        out.push(frame(&json!({"type": "content_block_start", "index": index, "content_block": start})));
        self.open = Some((kind, index));
        index
    }

    fn delta(index: u64, delta: Value) -> String {
        frame(&json!({"type": "content_block_delta", "index": index, "delta": delta}))
    }

    fn on_chunk(&mut self, chunk: &Value, out: &mut Vec<String>) {
        if let Some(error) = chunk.get("error").filter(|e| e.is_object()) {
            self.fail(error, out);
            return;
        }
        self.start(chunk["id"].as_str(), out);
        if let Some(usage) = Usage::from_openai(&chunk["usage"]) {
            self.usage = Some(usage);
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return;
        };
        let delta = &choice["delta"];
        for key in ["reasoning_content", "reasoning"] {
            if let Some(thinking) = delta[key].as_str().filter(|t| !t.is_empty()) {
                let start = json!({"type": "thinking", "thinking": "", "signature": ""});
                let index = self.open(Block::Thinking, start, out);
                self.streamed_bytes += thinking.len() as u64;
                out.push(Self::delta(index, json!({"type": "thinking_delta", "thinking": thinking})));
                break;
            }
        }
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            let index = self.open(Block::Text, json!({"type": "text", "text": ""}), out);
            self.streamed_bytes += text.len() as u64;
            out.push(Self::delta(index, json!({"type": "text_delta", "text": text})));
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let call_index = call["index"].as_u64().unwrap_or(0);
            if let Some(id) = call["id"].as_str() {
                let start = json!({"type": "tool_use", "id": id, "name": call["function"]["name"].as_str().unwrap_or_default(), "input": {}});
                let index = self.open(Block::Tool, start, out);
                self.tools.insert(call_index, index);
            }
            let arguments = call["function"]["arguments"].as_str().unwrap_or_default();
            if let (false, Some(&index)) = (arguments.is_empty(), self.tools.get(&call_index)) {
                self.streamed_bytes += arguments.len() as u64;
                out.push(Self::delta(index, json!({"type": "input_json_delta", "partial_json": arguments})));
            }
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            self.stop_reason = Some(finish_reason_to_stop_reason(finish));
        }
    }

    fn finish(&mut self, out: &mut Vec<String>) {
        self.start(None, out);
        self.close(out);
        let usage = self.usage.unwrap_or_else(|| {
            Usage::new(self.prompt_estimate, self.streamed_bytes.div_ceil(4))
        });
        out.push(frame(&json!({
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason.unwrap_or("end_turn"), "stop_sequence": null},
            "usage": usage.to_anthropic_json(),
        })));
        out.push(frame(&json!({"type": "message_stop"})));
        self.finished = true;
    }

    /// An OpenAI error chunk (a provider's mid-stream error, or the
    /// gateway's for a cut stream) as Anthropic's `error` event.
    fn fail(&mut self, error: &Value, out: &mut Vec<String>) {
        let code = error["code"].as_str().unwrap_or_default();
        let kind = if code.contains("overloaded") {
            "overloaded_error"
        } else if code.contains("rate_limit") {
            "rate_limit_error"
        } else {
            "api_error"
        };
        let message = error["message"].as_str().unwrap_or("The upstream stream failed.");
        out.push(frame(&anthropic_error_json(kind, message, "")));
        self.finished = true;
    }
}

impl EventRewriter for MessagesStream {
    fn framed(&self) -> bool {
        true
    }

    fn on_event(&mut self, data: &str, out: &mut Vec<String>) {
        if self.finished {
            return;
        }
        if data == "[DONE]" {
            self.finish(out);
            return;
        }
        if let Ok(chunk) = serde_json::from_str::<Value>(data) {
            self.on_chunk(&chunk, out);
        }
    }

    // Never done early: the canonical stream is read to its end, so the
    // accounting observer inside sees it end (and settles before the
    // client sees the end).
    fn on_end(&mut self, out: &mut Vec<String>) {
        if !self.finished {
            let error = json!({"message": "The upstream stream ended early.", "code": "upstream_invalid_response"});
            self.fail(&error, out);
        }
    }
}

/// An estimate of `count_tokens` for a model no Anthropic deployment
/// serves: the gateway's prompt estimate of the canonical request (text
/// at 4 bytes a token, per-message framing, images, tools), the number
/// it reserves with.
pub fn count_tokens_estimate(prompt_estimate: u64) -> Response<Body> {
    let mut response = Response::new(Body::from(
        json!({"input_tokens": prompt_estimate}).to_string(),
    ));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
