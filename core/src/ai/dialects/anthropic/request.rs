//! Messages request → the canonical Chat Completions request (the field
//! rule is in the module docs of `dialects::anthropic`).

use std::sync::Arc;

use http::HeaderMap;
use serde_json::{json, Map, Value};

use crate::ai::json::parse_object_with_model;
use crate::ai::request::{ChatRequest, MessagesRequest, NativeRequest, MAX_TOKENS_CAP};
use crate::error::GatewayError;

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
    chat.native = Some(Arc::new(NativeRequest::AnthropicMessages(
        MessagesRequest {
            body,
            version: header(ANTHROPIC_VERSION),
            beta: header(ANTHROPIC_BETA),
        },
    )));
    Ok(chat)
}

/// The canonical Chat Completions body of a Messages body (see the module
/// docs for what is mapped, dropped and refused).
fn canonical_body(
    body: &Map<String, Value>,
    model: &str,
) -> Result<Map<String, Value>, GatewayError> {
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
            return Err(invalid(
                "messages: at least one message is required",
                "messages",
            ))
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
                    Some(if field == "top_p" {
                        "top_p"
                    } else {
                        "temperature"
                    }),
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
        if body
            .get(field)
            .is_some_and(|v| !v.is_null() && !v.is_object())
        {
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
                match (
                    block_type(block)?,
                    block.get("text").and_then(Value::as_str),
                ) {
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
        _ => Err(invalid(
            "system: must be a string or an array of text blocks",
            "system",
        )),
    }
}

fn block_type(block: &Value) -> Result<&str, GatewayError> {
    block.get("type").and_then(Value::as_str).ok_or_else(|| {
        invalid(
            "messages: every content block needs a string `type`",
            "messages",
        )
    })
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
                let mut text = match block.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(text)) => text.clone(),
                    Some(Value::Array(inner)) => {
                        // A tool message carries text only: the result's
                        // images (Claude Code's Read of a screenshot) follow
                        // in the user message after the tool messages.
                        let images: Vec<Value> = inner
                            .iter()
                            .filter(|b| b.get("type").and_then(Value::as_str) == Some("image"))
                            .map(image_part)
                            .collect::<Result<_, _>>()?;
                        if !images.is_empty() {
                            parts.push(json!({"type": "text", "text": format!("The result of tool call {id} includes these images:")}));
                            parts.extend(images);
                        }
                        inner
                            .iter()
                            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                            .filter_map(|b| b.get("text").and_then(Value::as_str))
                            .collect::<Vec<_>>()
                            .join("\n")
                    }
                    Some(_) => {
                        return Err(invalid(
                            "messages: `tool_result.content` must be a string or blocks",
                            "messages",
                        ))
                    }
                };
                // Chat Completions has no error flag on a tool result: say it
                // in the text, where the model reads it.
                if block.get("is_error").and_then(Value::as_bool) == Some(true) {
                    text = format!("Error: {text}");
                }
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
            Ok(
                json!({"type": "image_url", "image_url": {"url": format!("data:{media_type};base64,{data}")}}),
            )
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
fn tools(
    body: &Map<String, Value>,
    out: &mut Map<String, Value>,
) -> Result<Vec<String>, GatewayError> {
    let tools = match body.get("tools") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(invalid("tools: must be an array", "tools")),
    };
    let mut functions = Vec::new();
    let mut dropped = Vec::new();
    for tool in tools {
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
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
                tracing::debug!(
                    tool = name,
                    kind,
                    "Anthropic-defined tool dropped in translation"
                );
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
                return Err(invalid(
                    "tool_choice: type `tool` needs a `name`",
                    "tool_choice",
                ));
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
    if choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        == Some(true)
    {
        out.insert("parallel_tool_calls".into(), json!(false));
    }
    Ok(())
}
