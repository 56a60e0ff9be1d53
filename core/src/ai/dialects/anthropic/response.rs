//! Canonical replies → Anthropic messages, errors and stream events.

use std::collections::HashMap;

use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use crate::ai::providers::MAX_RESPONSE_BYTES;
use crate::ai::sse::{EventRewriter, SseRewrite};
use crate::ai::usage::Usage;
use crate::body::Body;
use crate::error::{anthropic_error_json, anthropic_error_type, GatewayError};

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
    let bytes =
        body.collect(MAX_RESPONSE_BYTES)
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
    Ok(Response::from_parts(
        parts,
        Body::from(rendered.to_string()),
    ))
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
            out.push(frame(
                &json!({"type": "content_block_stop", "index": index}),
            ));
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
        out.push(frame(
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
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
                out.push(Self::delta(
                    index,
                    json!({"type": "thinking_delta", "thinking": thinking}),
                ));
                break;
            }
        }
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            let index = self.open(Block::Text, json!({"type": "text", "text": ""}), out);
            self.streamed_bytes += text.len() as u64;
            out.push(Self::delta(
                index,
                json!({"type": "text_delta", "text": text}),
            ));
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
                out.push(Self::delta(
                    index,
                    json!({"type": "input_json_delta", "partial_json": arguments}),
                ));
            }
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            self.stop_reason = Some(finish_reason_to_stop_reason(finish));
        }
    }

    fn finish(&mut self, out: &mut Vec<String>) {
        self.start(None, out);
        self.close(out);
        let usage = self
            .usage
            .unwrap_or_else(|| Usage::new(self.prompt_estimate, self.streamed_bytes.div_ceil(4)));
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
        let message = error["message"]
            .as_str()
            .unwrap_or("The upstream stream failed.");
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
