//! Anthropic Messages API: OpenAI chat requests translated to `/v1/messages`
//! and back, streaming included; Messages requests passed through natively
//! (`native.rs`).
//!
//! References: <https://docs.anthropic.com/en/api/messages>,
//! <https://docs.anthropic.com/en/api/messages-streaming>,
//! <https://docs.anthropic.com/en/api/errors>.
//!
//! Field rule: OpenAI parameters Anthropic has are mapped (`max_tokens`,
//! `stop`, `temperature`, `top_p`, `tools`, `tool_choice`, `user` →
//! `metadata.user_id`); parameters that only tune delivery are dropped
//! (`stream_options`, `seed`, `parallel_tool_calls`, `store`,
//! `service_tier`, `n: 1`); parameters whose meaning Anthropic cannot honour
//! are refused with 400 (`n > 1`, `logprobs`, a non-zero `presence_penalty`
//! or `frequency_penalty`, `response_format` other than text).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use serde_json::{json, Map, Value};

use super::super::sse::{EventRewriter, SseDecoder};
use super::super::usage::Usage;
use super::super::ChatRequest;
use super::{
    chat_completion, completion_reply, error_reply, push_turn, read_json, refuse_unsupported,
    stop_sequences, stream_error_event, stream_reply, tool_call_input, tool_calls_of, unsupported,
    ChunkWriter, ProviderReply, MAX_ERROR_BYTES, MAX_RESPONSE_BYTES,
};
use crate::body::Body;
use crate::error::GatewayError;
use crate::http::proxy::upstream_error;
use crate::http::UpstreamBase;
use crate::platform::with_timeout;
use crate::platform::{Clock, HttpClient};
use crate::util::Secret;

mod native;

pub use self::native::{anthropic_count_tokens, anthropic_messages_native};

pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// `max_tokens` is required by Anthropic; used when the request sets none.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

pub struct AnthropicDeployment<'a> {
    pub base: &'a UpstreamBase,
    pub api_key: &'a Secret,
    pub version: &'a str,
    pub upstream_model: &'a str,
    pub timeout: Duration,
}

fn refuse(message: &str, param: &'static str) -> GatewayError {
    unsupported("Anthropic", message, param)
}

/// OpenAI content (string or parts) → Anthropic content blocks.
/// Empty text is dropped: Anthropic refuses empty text blocks, and agent
/// frameworks send `content: ""` beside an assistant's `tool_calls`.
fn content_blocks(content: &Value) -> Result<Vec<Value>, GatewayError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(text) if text.is_empty() => Ok(Vec::new()),
        Value::String(text) => Ok(vec![json!({"type": "text", "text": text})]),
        Value::Array(parts) => parts
            .iter()
            .filter(|part| !super::is_empty_text_part(part))
            .map(|part| match part.get("type").and_then(Value::as_str) {
                Some("text") => Ok(
                    json!({"type": "text", "text": part.get("text").cloned().unwrap_or_default()}),
                ),
                Some("image_url") => {
                    let url = part["image_url"]["url"].as_str().unwrap_or_default();
                    Ok(image_block(url))
                }
                other => Err(refuse(&format!("content part type {other:?}"), "messages")),
            })
            .collect(),
        _ => Err(GatewayError::invalid_request(
            "`content` must be a string or an array of parts.",
            Some("messages"),
        )),
    }
}

/// A data URL becomes a base64 image, anything else a URL image.
fn image_block(url: &str) -> Value {
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((media_type, data)) = rest.split_once(";base64,") {
            return json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}});
        }
    }
    json!({"type": "image", "source": {"type": "url", "url": url}})
}

fn text_of(content: &Value) -> String {
    super::super::usage::content_text(content)
}

/// The pure request mapping: OpenAI chat request → Anthropic Messages body.
pub fn anthropic_request(chat: &ChatRequest, upstream_model: &str) -> Result<Value, GatewayError> {
    let body = &chat.body;
    refuse_unsupported(body, "Anthropic")?;
    if let Some(format) = body
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
    {
        if format != "text" {
            return Err(refuse(
                &format!("`response_format` `{format}`"),
                "response_format",
            ));
        }
    }

    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for message in chat.messages() {
        let role = message["role"].as_str().unwrap_or_default();
        match role {
            "system" | "developer" => system.push(text_of(&message["content"])),
            "user" => push_turn(
                &mut messages,
                "content",
                "user",
                content_blocks(&message["content"])?,
            ),
            "assistant" => {
                let mut blocks = content_blocks(&message["content"])?;
                for call in tool_calls_of(message) {
                    let input = tool_call_input(call)?;
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": call["id"],
                        "name": call["function"]["name"],
                        "input": input,
                    }));
                }
                push_turn(&mut messages, "content", "assistant", blocks);
            }
            "tool" => {
                let block = json!({
                    "type": "tool_result",
                    "tool_use_id": message["tool_call_id"],
                    "content": text_of(&message["content"]),
                });
                push_turn(&mut messages, "content", "user", vec![block]);
            }
            other => {
                return Err(GatewayError::invalid_request(
                    format!("Unknown message role `{other}`."),
                    Some("messages"),
                ));
            }
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(upstream_model));
    out.insert(
        "max_tokens".into(),
        json!(chat.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), json!(system.join("\n\n")));
    }
    if let Some(stops) = stop_sequences(body) {
        out.insert("stop_sequences".into(), stops);
    }
    for field in ["temperature", "top_p"] {
        if let Some(value) = body.get(field).filter(|v| !v.is_null()) {
            out.insert(field.into(), value.clone());
        }
    }
    if let Some(user) = body.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools
            .iter()
            .map(|tool| {
                let function = &tool["function"];
                let mut mapped = json!({
                    "name": function["name"],
                    "input_schema": function.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"})),
                });
                if let Some(description) = function.get("description") {
                    mapped["description"] = description.clone();
                }
                mapped
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = body.get("tool_choice") {
        let mapped = match choice {
            Value::String(s) if s == "auto" => json!({"type": "auto"}),
            Value::String(s) if s == "none" => json!({"type": "none"}),
            Value::String(s) if s == "required" => json!({"type": "any"}),
            Value::Object(o) => {
                json!({"type": "tool", "name": o.get("function").and_then(|f| f.get("name"))})
            }
            _ => {
                return Err(GatewayError::invalid_request(
                    "Unknown `tool_choice`.",
                    Some("tool_choice"),
                ))
            }
        };
        out.insert("tool_choice".into(), mapped);
    }
    if chat.stream {
        out.insert("stream".into(), json!(true));
    }
    Ok(Value::Object(out))
}

pub fn anthropic_stop_reason_to_finish_reason(reason: &str) -> &'static str {
    match reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic usage → OpenAI usage (prompt tokens include cache reads and
/// writes; cache reads are also `prompt_tokens_details.cached_tokens`).
pub fn anthropic_usage(usage: &Value) -> Usage {
    Usage::from_anthropic(usage)
}

/// The pure response mapping: Anthropic message → OpenAI chat.completion.
pub fn anthropic_response_to_openai(
    message: &Value,
    public_model: &str,
    created: u64,
) -> (Value, Usage) {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in message["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => tool_calls.push(json!({
                "id": block["id"],
                "type": "function",
                "function": {"name": block["name"], "arguments": block["input"].to_string()},
            })),
            _ => {}
        }
    }
    let usage = anthropic_usage(&message["usage"]);
    let finish = anthropic_stop_reason_to_finish_reason(
        message["stop_reason"].as_str().unwrap_or("end_turn"),
    );
    let id = format!("chatcmpl-{}", message["id"].as_str().unwrap_or("anthropic"));
    let completion = chat_completion(&id, created, public_model, text, tool_calls, finish, &usage);
    (completion, usage)
}

/// Translates Anthropic stream events into OpenAI chunk payloads.
pub struct AnthropicStreamTranslator {
    writer: ChunkWriter,
    usage: Usage,
    finish: Option<&'static str>,
    /// Anthropic content block index → OpenAI tool call index.
    tools: HashMap<u64, usize>,
    finished: bool,
}

impl AnthropicStreamTranslator {
    pub fn new(public_model: &str, created: u64, include_usage: bool) -> Self {
        Self {
            writer: ChunkWriter::new(
                "chatcmpl-anthropic".into(),
                public_model,
                created,
                include_usage,
            ),
            usage: Usage::default(),
            finish: None,
            tools: HashMap::new(),
            finished: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        self.writer.chunk(delta, finish)
    }

    /// The OpenAI `data:` payloads for one Anthropic event (`[DONE]` last).
    pub fn on_event(&mut self, event: &Value) -> Vec<String> {
        match event["type"].as_str().unwrap_or_default() {
            "message_start" => {
                let message = &event["message"];
                if let Some(id) = message["id"].as_str() {
                    self.writer.id = format!("chatcmpl-{id}");
                }
                self.usage = anthropic_usage(&message["usage"]);
                vec![self.chunk(json!({"role": "assistant", "content": ""}), None)]
            }
            "content_block_start" => {
                let block = &event["content_block"];
                if block["type"] != "tool_use" {
                    return Vec::new();
                }
                let index = self.tools.len();
                self.tools
                    .insert(event["index"].as_u64().unwrap_or(0), index);
                let call = json!({"index": index, "id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": ""}});
                vec![self.chunk(json!({"tool_calls": [call]}), None)]
            }
            "content_block_delta" => {
                let delta = &event["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => vec![self.chunk(json!({"content": delta["text"]}), None)],
                    Some("input_json_delta") => {
                        let partial = delta["partial_json"].as_str().unwrap_or_default();
                        let Some(&index) = self.tools.get(&event["index"].as_u64().unwrap_or(0))
                        else {
                            return Vec::new();
                        };
                        if partial.is_empty() {
                            return Vec::new();
                        }
                        vec![self.chunk(json!({"tool_calls": [{"index": index, "function": {"arguments": partial}}]}), None)]
                    }
                    _ => Vec::new(),
                }
            }
            "message_delta" => {
                if let Some(reason) = event["delta"]["stop_reason"].as_str() {
                    self.finish = Some(anthropic_stop_reason_to_finish_reason(reason));
                }
                if let Some(output) = event["usage"]["output_tokens"].as_u64() {
                    self.usage.completion_tokens = output;
                    self.usage.total_tokens = self.usage.prompt_tokens.saturating_add(output);
                }
                Vec::new()
            }
            "message_stop" => self.finish_events(),
            "error" => {
                self.finished = true;
                let message = event["error"]["message"]
                    .as_str()
                    .unwrap_or("upstream error");
                let kind = event["error"]["type"].as_str().unwrap_or("api_error");
                vec![stream_error_event(kind, message)]
            }
            _ => Vec::new(),
        }
    }

    fn finish_events(&mut self) -> Vec<String> {
        self.finished = true;
        self.writer
            .finish(self.finish.unwrap_or("stop"), Some(&self.usage))
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

impl EventRewriter for AnthropicStreamTranslator {
    fn on_event(&mut self, data: &str, out: &mut Vec<String>) {
        if let Ok(event) = serde_json::from_str::<Value>(data) {
            out.extend(AnthropicStreamTranslator::on_event(self, &event));
        }
    }

    fn is_done(&self) -> bool {
        self.is_finished()
    }
}

/// Provider errors → OpenAI-shaped errors: 400/404/413 keep their status and
/// the provider's message; 429 keeps `Retry-After`; 529 (overloaded) → 503;
/// authentication problems and 5xx → 502 (details logged only).
async fn handle_anthropic_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: Body,
) -> Result<ProviderReply, GatewayError> {
    let bytes = body.collect(MAX_ERROR_BYTES).await.unwrap_or_default();
    let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let message = parsed["error"]["message"]
        .as_str()
        .unwrap_or("The upstream provider returned an error.")
        .to_owned();
    let kind = parsed["error"]["type"]
        .as_str()
        .unwrap_or("api_error")
        .to_owned();
    let (status, openai_type, code) = match status.as_u16() {
        400 | 404 | 413 => (status, "invalid_request_error", kind.clone()),
        429 => (
            status,
            "rate_limit_exceeded",
            "rate_limit_exceeded".to_owned(),
        ),
        529 => (
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_overloaded",
            "overloaded".to_owned(),
        ),
        _ => {
            return Err(GatewayError::UpstreamStatus {
                status,
                detail: String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
            })
        }
    };
    Ok(error_reply(status, &message, openai_type, &code, headers))
}

/// A POST of `body` to `{base}{path}` with the deployment's key and
/// Anthropic headers: the client's `anthropic-version` (else the
/// deployment's) and `anthropic-beta` on native calls. A client header that
/// is not a valid header value is the client's 400; a bad configured
/// version is ours.
fn messages_request(
    deployment: &AnthropicDeployment<'_>,
    path: &str,
    body: Bytes,
    version: Option<&str>,
    beta: Option<&str>,
    request_id: &str,
) -> Result<Request<Bytes>, GatewayError> {
    let uri = deployment
        .base
        .uri(path, None)
        .map_err(|e| GatewayError::internal(format!("upstream uri: {e}")))?;
    let mut request = Request::new(body);
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        "x-api-key",
        HeaderValue::try_from(deployment.api_key.expose())
            .map_err(|_| GatewayError::internal("anthropic key is not a header value"))?,
    );
    let version = match version {
        Some(version) => HeaderValue::try_from(version).map_err(|_| {
            GatewayError::invalid_request("Invalid `anthropic-version` header.", None)
        })?,
        None => HeaderValue::try_from(deployment.version)
            .map_err(|_| GatewayError::internal("bad anthropic version"))?,
    };
    headers.insert("anthropic-version", version);
    if let Some(beta) = beta {
        headers.insert(
            "anthropic-beta",
            HeaderValue::try_from(beta).map_err(|_| {
                GatewayError::invalid_request("Invalid `anthropic-beta` header.", None)
            })?,
        );
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(crate::http::X_REQUEST_ID, id);
    }
    Ok(request)
}

pub async fn anthropic_chat(
    http: &impl HttpClient,
    clock: &impl Clock,
    deployment: AnthropicDeployment<'_>,
    chat: &ChatRequest,
    request_id: &str,
) -> Result<ProviderReply, GatewayError> {
    let body = anthropic_request(chat, deployment.upstream_model)?;
    let request = messages_request(
        &deployment,
        "/messages",
        Bytes::from(body.to_string()),
        None,
        None,
        request_id,
    )?;
    let result = with_timeout(clock, deployment.timeout, http.send(request)).await;
    let (parts, body) = upstream_error(result, deployment.timeout)?.into_parts();
    if !parts.status.is_success() {
        return handle_anthropic_error(parts.status, &parts.headers, body).await;
    }
    let created = clock.now_unix_ms() / 1000;
    if chat.stream {
        let translator = AnthropicStreamTranslator::new(&chat.model, created, chat.include_usage);
        return Ok(stream_reply::<_, SseDecoder>(body, translator));
    }
    let message = read_json(body, MAX_RESPONSE_BYTES, "message").await?;
    let (completion, usage) = anthropic_response_to_openai(&message, &chat.model, created);
    Ok(completion_reply(&completion, usage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::sse::SseDecoder;

    const RESPONSE_TOOL_USE: &str =
        include_str!("../../../../../tests/fixtures/anthropic/response_tool_use.json");
    const STREAM_TOOL_USE: &str =
        include_str!("../../../../../tests/fixtures/anthropic/stream_tool_use.sse");

    fn chat(body: Value) -> ChatRequest {
        ChatRequest::parse(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn empty_assistant_text_beside_tool_calls_is_dropped() {
        let request = chat(json!({
            "model": "claude",
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "thanks"}]}
            ]
        }));
        let out = anthropic_request(&request, "claude-x").unwrap();
        let assistant = &out["messages"][1]["content"];
        assert_eq!(assistant.as_array().unwrap().len(), 1, "{assistant}");
        assert_eq!(assistant[0]["type"], "tool_use");
        let last = out["messages"].as_array().unwrap().last().unwrap().clone();
        let texts: Vec<&Value> = last["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "text")
            .collect();
        assert_eq!(texts.len(), 1, "{last}");
        assert_eq!(texts[0]["text"], "thanks");
    }

    #[test]
    fn request_maps_system_turns_images_tools_and_results() {
        let request = chat(json!({
            "model": "claude", "max_tokens": 256, "stop": "END", "temperature": 0.3, "user": "u-1",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this image, and the weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "user", "content": "Thanks"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}],
            "tool_choice": "required"
        }));
        let out = anthropic_request(&request, "claude-sonnet-4-5").unwrap();
        assert_eq!(out["model"], "claude-sonnet-4-5");
        assert_eq!(out["max_tokens"], 256);
        assert_eq!(out["system"], "Be brief.");
        assert_eq!(out["stop_sequences"], json!(["END"]));
        assert_eq!(out["metadata"]["user_id"], "u-1");
        assert_eq!(out["tool_choice"], json!({"type": "any"}));
        assert_eq!(
            out["tools"][0]["input_schema"]["properties"]["location"]["type"],
            "string"
        );
        let messages = out["messages"].as_array().unwrap();
        assert_eq!(
            messages.len(),
            3,
            "tool result and the next user text merge into one user turn: {messages:?}"
        );
        assert_eq!(
            messages[0]["content"][1],
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})
        );
        assert_eq!(
            messages[1]["content"][0],
            json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "Paris"}})
        );
        assert_eq!(messages[2]["content"][0]["type"], "tool_result");
        assert_eq!(messages[2]["content"][0]["tool_use_id"], "call_1");
        assert_eq!(
            messages[2]["content"][1],
            json!({"type": "text", "text": "Thanks"})
        );
    }

    #[test]
    fn unsupported_meanings_are_refused_and_delivery_hints_dropped() {
        let base = |extra: Value| {
            let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            chat(body)
        };
        for (extra, param) in [
            (json!({"n": 2}), "n"),
            (json!({"logprobs": true}), "logprobs"),
            (json!({"presence_penalty": 0.5}), "presence_penalty"),
            (
                json!({"response_format": {"type": "json_object"}}),
                "response_format",
            ),
        ] {
            let err = anthropic_request(&base(extra), "x").unwrap_err();
            assert!(
                matches!(err, GatewayError::InvalidRequest { param: Some(p), .. } if p == param)
            );
        }
        let out = anthropic_request(
            &base(json!({"seed": 1, "parallel_tool_calls": true, "n": 1})),
            "x",
        )
        .unwrap();
        assert!(out.get("seed").is_none() && out.get("parallel_tool_calls").is_none());
        assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
    }

    #[test]
    fn response_maps_text_tool_calls_finish_reason_and_cached_usage() {
        let message: Value = serde_json::from_str(RESPONSE_TOOL_USE).unwrap();
        let (completion, usage) = anthropic_response_to_openai(&message, "claude", 1);
        let choice = &completion["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Let me check the weather.");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(arguments, json!({"location": "Paris", "unit": "celsius"}));
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 812,
                completion_tokens: 48,
                total_tokens: 860,
                cached_tokens: 300
            }
        );
        assert_eq!(
            completion["usage"]["prompt_tokens_details"]["cached_tokens"],
            300
        );
    }

    fn translate(include_usage: bool) -> Vec<Value> {
        let mut translator = AnthropicStreamTranslator::new("claude", 1, include_usage);
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        decoder.push(STREAM_TOOL_USE.as_bytes(), |data| {
            let event: Value = serde_json::from_str(data).unwrap();
            out.extend(translator.on_event(&event));
        });
        assert_eq!(out.last().map(String::as_str), Some("[DONE]"));
        out[..out.len() - 1]
            .iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect()
    }

    #[test]
    fn stream_translates_text_tool_arguments_finish_and_usage() {
        let chunks = translate(true);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Okay, let's check the weather.");
        let start = chunks
            .iter()
            .find(|c| c["choices"][0]["delta"]["tool_calls"][0]["id"].is_string())
            .unwrap();
        assert_eq!(
            start["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
            "get_weather"
        );
        let arguments: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&arguments).unwrap(),
            json!({"location": "Paris"})
        );
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        let usage = &chunks[chunks.len() - 1]["usage"];
        assert_eq!(usage["prompt_tokens"], 472 + 64);
        assert_eq!(usage["completion_tokens"], 89);
        assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 64);
    }

    #[test]
    fn without_include_usage_the_last_chunk_carries_usage() {
        let chunks = translate(false);
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(last["usage"]["completion_tokens"], 89);
    }

    #[test]
    fn error_event_ends_the_stream_with_an_openai_error() {
        let mut translator = AnthropicStreamTranslator::new("claude", 1, false);
        let out = translator.on_event(&json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}));
        let error: Value = serde_json::from_str(&out[0]).unwrap();
        assert_eq!(error["error"]["code"], "overloaded_error");
        assert!(translator.is_finished());
    }

    #[test]
    fn errors_map_to_openai_statuses() {
        use futures_executor::block_on;
        let overloaded =
            include_str!("../../../../../tests/fixtures/anthropic/error_overloaded.json");
        let reply = block_on(handle_anthropic_error(
            StatusCode::from_u16(529).unwrap(),
            &HeaderMap::new(),
            Body::from(overloaded),
        ))
        .unwrap();
        let ProviderReply::Complete { response, .. } = reply else {
            panic!()
        };
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        let limited = r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your rate limit"}}"#;
        let reply = block_on(handle_anthropic_error(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            Body::from(limited),
        ))
        .unwrap();
        let ProviderReply::Complete { response, .. } = reply else {
            panic!()
        };
        assert_eq!(
            (response.status(), &response.headers()["retry-after"]),
            (
                StatusCode::TOO_MANY_REQUESTS,
                &HeaderValue::from_static("7")
            )
        );

        let invalid = r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"}}"#;
        let reply = block_on(handle_anthropic_error(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            Body::from(invalid),
        ))
        .unwrap();
        let ProviderReply::Complete { response, .. } = reply else {
            panic!()
        };
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = block_on(response.into_body().collect(usize::MAX)).unwrap();
        assert!(String::from_utf8_lossy(&body).contains("roles must alternate"));

        let auth = r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
        let err = block_on(handle_anthropic_error(
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            Body::from(auth),
        ))
        .err()
        .unwrap();
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
    }
}
