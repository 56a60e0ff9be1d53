//! Responses request → the canonical Chat Completions request (the field
//! rule is in the module docs of `dialects::responses`).

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::ai::json::parse_object_with_model;
use crate::ai::request::{ChatRequest, NativeRequest, ResponsesRequest, MAX_TOKENS_CAP};
use crate::error::GatewayError;

/// The path below an `ai` route's prefix.
pub const RESPONSES_PATH: &str = "/responses";

fn invalid(message: impl Into<String>, param: &'static str) -> GatewayError {
    GatewayError::invalid_request(message, Some(param))
}

/// Item types of built-in tools' calls and their outputs: an earlier turn
/// served natively may hold them; translated providers cannot take them.
const BUILT_IN_ITEMS: [&str; 14] = [
    "reasoning",
    "web_search_call",
    "file_search_call",
    "computer_call",
    "computer_call_output",
    "code_interpreter_call",
    "image_generation_call",
    "local_shell_call",
    "local_shell_call_output",
    "mcp_call",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "tool_search_call",
];

/// Parses a Responses create request into the canonical chat, the
/// original kept in `ChatRequest::native` (its id, owner and history are
/// filled by `state::prepare`).
pub fn parse_responses(bytes: &[u8]) -> Result<ChatRequest, GatewayError> {
    let (body, model) = parse_object_with_model(bytes)?;
    for (field, why) in [
        ("conversation", "the Conversations API is not served by this gateway: continue with `previous_response_id`"),
        ("prompt", "prompt templates are not served by this gateway"),
    ] {
        if body.get(field).is_some_and(|v| !v.is_null()) {
            return Err(GatewayError::invalid_request(
                format!("`{field}` is not supported: {why}."),
                Some(if field == "prompt" { "prompt" } else { "conversation" }),
            ));
        }
    }
    if body.get("background").and_then(Value::as_bool) == Some(true) {
        return Err(invalid(
            "`background: true` is not supported by this gateway.",
            "background",
        ));
    }
    if let Some(previous) = body.get("previous_response_id").filter(|v| !v.is_null()) {
        if !previous.as_str().is_some_and(valid_response_id) {
            return Err(invalid(
                "`previous_response_id` must be a response id (`resp_…`).",
                "previous_response_id",
            ));
        }
    }
    let input = input_items(&body)?;
    let (tools, custom_tools) = tools(&body)?;
    let max_tokens = match body.get("max_output_tokens") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_u64() {
            Some(n) if n > 0 && n <= MAX_TOKENS_CAP => Some(n),
            _ => {
                return Err(invalid(
                    format!(
                        "`max_output_tokens` must be an integer between 1 and {MAX_TOKENS_CAP}."
                    ),
                    "max_output_tokens",
                ))
            }
        },
    };

    let mut messages = Vec::new();
    match body.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            if !text.is_empty() {
                messages.push(json!({"role": "system", "content": text}));
            }
        }
        Some(_) => return Err(invalid("`instructions` must be a string.", "instructions")),
    }
    messages_from_items(&input, &mut messages)?;
    if messages.is_empty() {
        return Err(invalid("`input` must not be empty.", "input"));
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(messages));
    match body.get("stream") {
        None | Some(Value::Null | Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            out.insert("stream".into(), json!(true));
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Some(_) => return Err(invalid("`stream` must be a boolean.", "stream")),
    }
    for field in ["temperature", "top_p"] {
        match body.get(field) {
            None | Some(Value::Null) => {}
            Some(value) if value.is_number() => {
                out.insert(field.into(), value.clone());
            }
            Some(_) => {
                return Err(invalid(
                    format!("`{field}` must be a number."),
                    if field == "top_p" {
                        "top_p"
                    } else {
                        "temperature"
                    },
                ))
            }
        }
    }
    match body.get("parallel_tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(parallel)) if !tools.is_empty() => {
            out.insert("parallel_tool_calls".into(), json!(parallel));
        }
        Some(Value::Bool(_)) => {}
        Some(_) => {
            return Err(invalid(
                "`parallel_tool_calls` must be a boolean.",
                "parallel_tool_calls",
            ))
        }
    }
    let tool_choice = tool_choice(body.get("tool_choice"), &tools)?;
    let tools = match &tool_choice {
        Some(ToolChoice::Allowed { names, .. }) => tools
            .into_iter()
            .filter(|t| {
                t["function"]["name"]
                    .as_str()
                    .is_some_and(|n| names.iter().any(|a| a == n))
            })
            .collect(),
        _ => tools,
    };
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = tool_choice {
            out.insert("tool_choice".into(), choice.into_canonical());
        }
    } else if matches!(
        &tool_choice,
        Some(ToolChoice::Canonical(Value::String(mode))) if mode == "required"
    ) {
        return Err(invalid(
            "`tool_choice` is `required`, but no tool the deployment can run was offered.",
            "tool_choice",
        ));
    }
    if let Some(format) = response_format(&body)? {
        out.insert("response_format".into(), format);
    }
    if let Some(effort) = body.get("reasoning").and_then(|r| r.get("effort")) {
        match effort {
            Value::Null => {}
            Value::String(_) => {
                out.insert("reasoning_effort".into(), effort.clone());
            }
            _ => return Err(invalid("`reasoning.effort` must be a string.", "reasoning")),
        }
    }
    for field in ["user", "safety_identifier"] {
        match body.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(user)) => {
                out.entry("user").or_insert_with(|| json!(user));
            }
            Some(_) => {
                return Err(invalid(
                    format!("`{field}` must be a string."),
                    if field == "user" {
                        "user"
                    } else {
                        "safety_identifier"
                    },
                ))
            }
        }
    }
    if body
        .get("store")
        .is_some_and(|v| !v.is_null() && !v.is_boolean())
    {
        return Err(invalid("`store` must be a boolean.", "store"));
    }
    if body
        .get("metadata")
        .is_some_and(|v| !v.is_null() && !v.is_object())
    {
        return Err(invalid("`metadata` must be an object.", "metadata"));
    }

    let mut chat = ChatRequest::from_object(out, model)?;
    // The client's limit stays out of the canonical body: each provider
    // writes the cap in the field its API takes (see `gateway_capped`).
    if let Some(max_tokens) = max_tokens {
        chat.max_tokens = Some(max_tokens);
        chat.gateway_capped = true;
    }
    chat.native = Some(Arc::new(NativeRequest::OpenAiResponses(ResponsesRequest {
        body,
        input,
        custom_tools,
        ..ResponsesRequest::default()
    })));
    Ok(chat)
}

/// A response id as the gateway (and OpenAI) writes them: `resp_` and a
/// bounded run of ASCII letters and digits (it becomes part of a store key).
pub(super) fn valid_response_id(id: &str) -> bool {
    id.strip_prefix("resp_").is_some_and(|rest| {
        !rest.is_empty() && rest.len() <= 128 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// `input` as items: a string is one user message.
fn input_items(body: &Map<String, Value>) -> Result<Vec<Value>, GatewayError> {
    match body.get("input") {
        Some(Value::String(text)) => Ok(vec![
            json!({"type": "message", "role": "user", "content": text}),
        ]),
        Some(Value::Array(items)) => {
            if items.iter().all(Value::is_object) {
                Ok(items.clone())
            } else {
                Err(invalid("Every `input` item must be an object.", "input"))
            }
        }
        None | Some(Value::Null) => Err(invalid("Missing required parameter: 'input'.", "input")),
        Some(_) => Err(invalid(
            "`input` must be a string or an array of items.",
            "input",
        )),
    }
}

/// Appends the canonical messages of Responses items (this turn's input,
/// or a stored conversation) to `out`.
pub(super) fn messages_from_items(
    items: &[Value],
    out: &mut Vec<Value>,
) -> Result<(), GatewayError> {
    for item in items {
        let kind = item.get("type").and_then(Value::as_str);
        match kind {
            // Messages may come without a type (`EasyInputMessage`).
            None | Some("message") => out.push(message(item)?),
            Some("function_call") => {
                let call = json!({
                    "id": string_field(item, "call_id")?,
                    "type": "function",
                    "function": {
                        "name": string_field(item, "name")?,
                        "arguments": item.get("arguments").and_then(Value::as_str).unwrap_or("{}"),
                    },
                });
                push_tool_call(out, call);
            }
            Some("custom_tool_call") => {
                let input = item.get("input").and_then(Value::as_str).unwrap_or_default();
                let call = json!({
                    "id": string_field(item, "call_id")?,
                    "type": "function",
                    "function": {
                        "name": string_field(item, "name")?,
                        "arguments": json!({"input": input}).to_string(),
                    },
                });
                push_tool_call(out, call);
            }
            Some("function_call_output" | "custom_tool_call_output") => {
                out.push(json!({
                    "role": "tool",
                    "tool_call_id": string_field(item, "call_id")?,
                    "content": output_text(item.get("output").unwrap_or(&Value::Null)),
                }));
            }
            Some("item_reference") => {
                return Err(invalid(
                    "`item_reference` items are not supported: send the items, or continue with `previous_response_id`.",
                    "input",
                ))
            }
            Some(kind) if BUILT_IN_ITEMS.contains(&kind) => {}
            Some(kind) => {
                return Err(invalid(
                    format!("Unsupported input item type `{kind}`."),
                    "input",
                ))
            }
        }
    }
    Ok(())
}

fn string_field<'a>(item: &'a Value, name: &str) -> Result<&'a str, GatewayError> {
    item.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            invalid(
                format!(
                    "A `{}` item needs a string `{name}`.",
                    item["type"].as_str().unwrap_or("message")
                ),
                "input",
            )
        })
}

/// Adds a tool call to the assistant message just before it (one
/// assistant turn: its text and calls), or starts one.
fn push_tool_call(out: &mut Vec<Value>, call: Value) {
    if let Some(last) = out.last_mut().filter(|m| m["role"] == "assistant") {
        match last.get_mut("tool_calls").and_then(Value::as_array_mut) {
            Some(calls) => calls.push(call),
            None => {
                last["tool_calls"] = json!([call]);
            }
        }
        return;
    }
    out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
}

/// The text of a tool's output: a string, or the text parts of a list
/// (images and files in tool output are dropped).
fn output_text(output: &Value) -> String {
    match output {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// One message item as a canonical message.
fn message(item: &Value) -> Result<Value, GatewayError> {
    let role = match item.get("role").and_then(Value::as_str) {
        Some(role @ ("user" | "assistant")) => role,
        Some("system" | "developer") => "system",
        _ => return Err(invalid(
            "Every message item needs a `role` of `user`, `assistant`, `system` or `developer`.",
            "input",
        )),
    };
    let content = match item.get("content") {
        Some(Value::String(text)) => return Ok(json!({"role": role, "content": text})),
        Some(Value::Array(parts)) => parts,
        _ => {
            return Err(invalid(
                "A message's `content` must be a string or an array of parts.",
                "input",
            ))
        }
    };
    let mut canonical = Vec::new();
    for part in content {
        canonical.push(content_part(part)?);
    }
    // Assistant and system turns carry text only: joined, as every
    // provider translator takes them.
    if role != "user" {
        let text: Vec<&str> = canonical
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        if text.len() != canonical.len() {
            return Err(invalid(
                format!("A `{role}` message may only hold text parts."),
                "input",
            ));
        }
        return Ok(json!({"role": role, "content": text.join("")}));
    }
    Ok(json!({"role": role, "content": canonical}))
}

fn content_part(part: &Value) -> Result<Value, GatewayError> {
    let text = |key: &str| {
        part.get(key)
            .and_then(Value::as_str)
            .map(|t| json!({"type": "text", "text": t}))
            .ok_or_else(|| invalid(format!("A content part lacks its `{key}`."), "input"))
    };
    match part.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text") => text("text"),
        Some("refusal") => text("refusal"),
        Some("input_image") => {
            if part.get("file_id").is_some_and(|v| !v.is_null()) {
                return Err(invalid(
                    "`input_image` by `file_id` is not supported: send an `image_url` (URL or data URL).",
                    "input",
                ));
            }
            let url = part
                .get("image_url")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("An `input_image` needs an `image_url`.", "input"))?;
            let mut image = json!({"url": url});
            if let Some(detail) = part.get("detail").and_then(Value::as_str) {
                image["detail"] = json!(detail);
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        Some("input_file") => {
            let data = part
                .get("file_data")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    invalid(
                        "An `input_file` needs `file_data` (file ids and URLs are not supported).",
                        "input",
                    )
                })?;
            let mut file = json!({"file_data": data});
            if let Some(name) = part.get("filename").and_then(Value::as_str) {
                file["filename"] = json!(name);
            }
            Ok(json!({"type": "file", "file": file}))
        }
        Some(kind) => Err(invalid(
            format!("Unsupported content part type `{kind}`."),
            "input",
        )),
        None => Err(invalid("Every content part needs a `type`.", "input")),
    }
}

/// The canonical function tools of `tools`, and the names of the custom
/// ones among them. Built-in tools are left out (see the module docs).
fn tools(body: &Map<String, Value>) -> Result<(Vec<Value>, Vec<String>), GatewayError> {
    let list = match body.get("tools") {
        None | Some(Value::Null) => return Ok((Vec::new(), Vec::new())),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid("`tools` must be an array.", "tools")),
    };
    let (mut canonical, mut custom) = (Vec::new(), Vec::new());
    for tool in list {
        let name = || {
            tool.get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    invalid(
                        "Every `function` and `custom` tool needs a `name`.",
                        "tools",
                    )
                })
        };
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {
                let mut function = json!({
                    "name": name()?,
                    "parameters": tool.get("parameters").filter(|p| p.is_object()).cloned()
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                });
                if let Some(description) = tool.get("description").filter(|d| d.is_string()) {
                    function["description"] = description.clone();
                }
                if let Some(strict) = tool.get("strict").filter(|s| s.is_boolean()) {
                    function["strict"] = strict.clone();
                }
                canonical.push(json!({"type": "function", "function": function}));
            }
            Some("custom") => {
                let name = name()?;
                let mut description = tool
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let format = &tool["format"];
                if let Some(definition) = format["definition"].as_str() {
                    let syntax = format["syntax"].as_str().unwrap_or("grammar");
                    description.push_str(&format!(
                        "\n\nThe `input` argument must follow this {syntax} grammar:\n{definition}"
                    ));
                }
                canonical.push(json!({"type": "function", "function": {
                    "name": name,
                    "description": description.trim(),
                    "parameters": {
                        "type": "object",
                        "properties": {"input": {"type": "string", "description": "The tool's freeform input."}},
                        "required": ["input"],
                        "additionalProperties": false,
                    },
                }}));
                custom.push(name.to_owned());
            }
            Some(kind) => {
                tracing::debug!(
                    tool_type = kind,
                    "built-in tool dropped from a translated Responses request"
                );
            }
            None => return Err(invalid("Every tool needs a `type`.", "tools")),
        }
    }
    Ok((canonical, custom))
}

/// A `tool_choice` in canonical terms.
enum ToolChoice {
    /// Written as is (`auto`, `none`, `required`, a named function).
    Canonical(Value),
    /// `allowed_tools`: the tool list is filtered to `names`, `mode` applies.
    Allowed { mode: String, names: Vec<String> },
}

impl ToolChoice {
    fn into_canonical(self) -> Value {
        match self {
            Self::Canonical(value) => value,
            Self::Allowed { mode, .. } => json!(mode),
        }
    }
}

fn tool_choice(
    choice: Option<&Value>,
    tools: &[Value],
) -> Result<Option<ToolChoice>, GatewayError> {
    let Some(choice) = choice.filter(|c| !c.is_null()) else {
        return Ok(None);
    };
    if let Some(mode) = choice.as_str() {
        return match mode {
            "auto" | "none" | "required" => Ok(Some(ToolChoice::Canonical(json!(mode)))),
            _ => Err(invalid(
                "`tool_choice` must be `auto`, `none`, `required` or an object.",
                "tool_choice",
            )),
        };
    }
    match choice.get("type").and_then(Value::as_str) {
        Some("function" | "custom") => {
            let name = choice.get("name").and_then(Value::as_str).unwrap_or_default();
            let offered = tools
                .iter()
                .any(|t| t["function"]["name"].as_str() == Some(name));
            if !offered {
                return Err(invalid(
                    format!("`tool_choice` names the tool `{name}`, which is not in `tools`."),
                    "tool_choice",
                ));
            }
            Ok(Some(ToolChoice::Canonical(
                json!({"type": "function", "function": {"name": name}}),
            )))
        }
        Some("allowed_tools") => {
            let mode = choice
                .get("mode")
                .and_then(Value::as_str)
                .filter(|m| matches!(*m, "auto" | "required"))
                .unwrap_or("auto");
            let names = choice
                .get("tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.get("name").and_then(Value::as_str))
                .map(str::to_owned)
                .collect();
            Ok(Some(ToolChoice::Allowed {
                mode: mode.to_owned(),
                names,
            }))
        }
        Some(kind) => Err(invalid(
            format!(
                "`tool_choice` forces the built-in tool `{kind}`, which the deployment serving this model cannot run."
            ),
            "tool_choice",
        )),
        None => Err(invalid("`tool_choice` needs a `type`.", "tool_choice")),
    }
}

/// `text.format` as a canonical `response_format`.
fn response_format(body: &Map<String, Value>) -> Result<Option<Value>, GatewayError> {
    let Some(format) = body
        .get("text")
        .and_then(|t| t.get("format"))
        .filter(|f| !f.is_null())
    else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let name = format
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("response");
            let Some(schema) = format.get("schema").filter(|s| s.is_object()) else {
                return Err(invalid(
                    "`text.format` of type `json_schema` needs a `schema` object.",
                    "text",
                ));
            };
            let mut json_schema = json!({"name": name, "schema": schema});
            for key in ["strict", "description"] {
                if let Some(value) = format.get(key).filter(|v| !v.is_null()) {
                    json_schema[key] = value.clone();
                }
            }
            Ok(Some(
                json!({"type": "json_schema", "json_schema": json_schema}),
            ))
        }
        _ => Err(invalid(
            "`text.format.type` must be `text`, `json_object` or `json_schema`.",
            "text",
        )),
    }
}
