//! Canonical replies → Responses `response` objects and stream events.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http::{header, HeaderValue, Response};
use serde_json::{json, Map, Value};

use crate::ai::providers::MAX_RESPONSE_BYTES;
use crate::ai::request::ResponsesRequest;
use crate::ai::sse::{EventRewriter, SseRewrite};
use crate::ai::usage::Usage;
use crate::body::{Body, BodyError};
use crate::error::GatewayError;
use crate::util::BackgroundTask;

/// Responses' `usage` object.
pub(super) fn usage_json(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    })
}

/// How a response ended.
#[derive(Debug, Clone, PartialEq)]
enum Status {
    Completed,
    /// `incomplete_details.reason`: `max_output_tokens` or `content_filter`.
    Incomplete(&'static str),
    /// `error` of the response.
    Failed(Value),
}

impl Status {
    fn of_finish_reason(finish: Option<&str>) -> Self {
        match finish {
            Some("length") => Self::Incomplete("max_output_tokens"),
            Some("content_filter") => Self::Incomplete("content_filter"),
            _ => Self::Completed,
        }
    }
}

/// The `response` object: the request's settings echoed (with OpenAI's
/// defaults), and what was produced.
fn response_object(
    request: &ResponsesRequest,
    public_model: &str,
    status: Option<&Status>,
    output: Vec<Value>,
    usage: Option<&Usage>,
) -> Value {
    let body = &request.body;
    let echo = |key: &str, default: Value| {
        body.get(key)
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(default)
    };
    let (status_name, error, incomplete) = match status {
        None => ("in_progress", Value::Null, Value::Null),
        Some(Status::Completed) => ("completed", Value::Null, Value::Null),
        Some(Status::Incomplete(reason)) => ("incomplete", Value::Null, json!({"reason": reason})),
        Some(Status::Failed(error)) => ("failed", error.clone(), Value::Null),
    };
    let mut response = Map::new();
    let mut put = |key: &str, value: Value| {
        response.insert(key.to_owned(), value);
    };
    put("id", json!(request.id));
    put("object", json!("response"));
    put("created_at", json!(request.created_at));
    put("status", json!(status_name));
    put("background", json!(false));
    put("error", error);
    put("incomplete_details", incomplete);
    put("instructions", echo("instructions", Value::Null));
    put("max_output_tokens", echo("max_output_tokens", Value::Null));
    put("metadata", echo("metadata", json!({})));
    put("model", json!(public_model));
    put("output", Value::Array(output));
    put(
        "parallel_tool_calls",
        echo("parallel_tool_calls", json!(true)),
    );
    put(
        "previous_response_id",
        echo("previous_response_id", Value::Null),
    );
    put(
        "reasoning",
        echo("reasoning", json!({"effort": null, "summary": null})),
    );
    put("store", json!(request.store.is_some()));
    put("temperature", echo("temperature", json!(1.0)));
    put("text", echo("text", json!({"format": {"type": "text"}})));
    put("tool_choice", echo("tool_choice", json!("auto")));
    put("tools", echo("tools", json!([])));
    put("top_p", echo("top_p", json!(1.0)));
    put("truncation", echo("truncation", json!("disabled")));
    put("usage", usage.map_or(Value::Null, usage_json));
    put("user", echo("user", Value::Null));
    Value::Object(response)
}

/// An item id: `prefix_` and the response id's random part, numbered.
fn item_id(request: &ResponsesRequest, prefix: &str, n: usize) -> String {
    let id = request.id.strip_prefix("resp_").unwrap_or(&request.id);
    format!("{prefix}_{id}{n:03}")
}

fn message_item(id: String, text: &str, status: &str) -> Value {
    json!({
        "id": id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    })
}

fn reasoning_item(id: String, text: &str) -> Value {
    json!({
        "id": id,
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
    })
}

/// A tool call as a `function_call` item, or a `custom_tool_call` item
/// (its `input` argument) for a custom tool of the request.
fn call_item(
    request: &ResponsesRequest,
    id: String,
    call_id: &str,
    name: &str,
    arguments: &str,
    status: &str,
) -> Value {
    if request.custom_tools.iter().any(|c| c == name) {
        json!({
            "id": id,
            "type": "custom_tool_call",
            "status": status,
            "call_id": call_id,
            "name": name,
            "input": custom_input(arguments),
        })
    } else {
        json!({
            "id": id,
            "type": "function_call",
            "status": status,
            "arguments": arguments,
            "call_id": call_id,
            "name": name,
        })
    }
}

/// The freeform input of a custom tool's call: the `input` argument of
/// the function the provider saw (the arguments as sent, if the model
/// wrote something else).
fn custom_input(arguments: &str) -> String {
    serde_json::from_str::<Value>(arguments)
        .ok()
        .and_then(|a| a.get("input").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| arguments.to_owned())
}

/// The pure response mapping: an OpenAI `chat.completion` → a Responses
/// `response` object.
pub fn response_from_completion(
    completion: &Value,
    request: &ResponsesRequest,
    public_model: &str,
) -> Value {
    let choice = &completion["choices"][0];
    let message = &choice["message"];
    let mut output = Vec::new();
    for key in ["reasoning_content", "reasoning"] {
        if let Some(text) = message[key].as_str().filter(|t| !t.is_empty()) {
            output.push(reasoning_item(item_id(request, "rs", output.len()), text));
            break;
        }
    }
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        output.push(message_item(
            item_id(request, "msg", output.len()),
            text,
            "completed",
        ));
    }
    if let Some(refusal) = message["refusal"].as_str().filter(|t| !t.is_empty()) {
        output.push(json!({
            "id": item_id(request, "msg", output.len()),
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "refusal", "refusal": refusal}],
        }));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let id = item_id(request, "fc", output.len());
        output.push(call_item(
            request,
            id,
            call["id"].as_str().unwrap_or_default(),
            call["function"]["name"].as_str().unwrap_or_default(),
            call["function"]["arguments"].as_str().unwrap_or("{}"),
            "completed",
        ));
    }
    let usage = Usage::from_openai(&completion["usage"]).unwrap_or_default();
    let status = Status::of_finish_reason(choice["finish_reason"].as_str());
    response_object(request, public_model, Some(&status), output, Some(&usage))
}

/// A successful complete reply rewritten by `render` (its JSON body in, the
/// `response` object out), returned with that object: the record to keep.
/// Errors are passed on untouched: they are in OpenAI's shape, which
/// Responses shares.
async fn rewrite_complete(
    response: Response<Body>,
    render: impl FnOnce(Value) -> Value,
) -> Result<(Response<Body>, Option<Value>), GatewayError> {
    if !response.status().is_success() {
        return Ok((response, None));
    }
    let (mut parts, body) = response.into_parts();
    let bytes =
        body.collect(MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| GatewayError::UpstreamInvalid {
                detail: format!("reading the reply: {e}"),
            })?;
    let reply: Value =
        serde_json::from_slice(&bytes).map_err(|e| GatewayError::UpstreamInvalid {
            detail: format!("the reply is not JSON: {e}"),
        })?;
    let rendered = render(reply);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = Body::from(rendered.to_string());
    Ok((Response::from_parts(parts, body), Some(rendered)))
}

/// A complete canonical reply rendered as a `response` object, with the
/// record to keep.
pub async fn render_complete(
    response: Response<Body>,
    request: &ResponsesRequest,
    public_model: &str,
) -> Result<(Response<Body>, Option<Value>), GatewayError> {
    rewrite_complete(response, |completion| {
        response_from_completion(&completion, request, public_model)
    })
    .await
}

/// A native reply's `response` object as the gateway's: its id (the one the
/// conversation is kept under), the public model, and the state fields the
/// gateway — not the provider, which was sent `store: false` — answers for.
fn finish_native(response: &mut Value, request: &ResponsesRequest, public_model: &str) {
    let Some(object) = response.as_object_mut() else {
        return;
    };
    object.insert("id".into(), json!(request.id));
    object.insert("model".into(), json!(public_model));
    object.insert("store".into(), json!(request.store.is_some()));
    object.insert(
        "previous_response_id".into(),
        request
            .body
            .get("previous_response_id")
            .cloned()
            .unwrap_or(Value::Null),
    );
}

/// A native complete reply (a `response` object from the provider)
/// finished as the gateway's, with the record to keep.
pub async fn finish_native_complete(
    response: Response<Body>,
    request: &ResponsesRequest,
    public_model: &str,
) -> Result<(Response<Body>, Option<Value>), GatewayError> {
    rewrite_complete(response, |mut reply| {
        finish_native(&mut reply, request, public_model);
        reply
    })
    .await
}

/// A native Responses stream with every `response` object finished as the
/// gateway's; the terminal event waits for `save`.
pub fn finish_native_stream(
    response: Response<Body>,
    request: Arc<ResponsesRequest>,
    public_model: &str,
    save: Option<SaveResponse>,
) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let terminal = Arc::new(Mutex::new(None));
    let events = NativeStream {
        request,
        model: public_model.to_owned(),
        last: None,
        sequence: 0,
        finished: false,
        terminal: Arc::clone(&terminal),
    };
    let stream = Terminal {
        events: SseRewrite::new(body, events),
        terminal,
        save,
        state: TerminalState::Relaying,
    };
    Response::from_parts(parts, Body::from_stream(stream))
}

/// Relays a provider's own Responses events, finishing each `response`
/// object ([`finish_native`]) and holding the terminal event back; an
/// OpenAI error event (the accounting observer's, for a cut stream)
/// becomes `response.failed`.
struct NativeStream {
    request: Arc<ResponsesRequest>,
    model: String,
    /// The latest `response` snapshot, for a failure's.
    last: Option<Value>,
    sequence: u64,
    finished: bool,
    terminal: Arc<Mutex<Option<Finished>>>,
}

impl NativeStream {
    fn hold(&mut self, response: Value, event: &'static str) {
        self.finished = true;
        if let Ok(mut terminal) = self.terminal.lock() {
            *terminal = Some(Finished {
                response,
                event,
                sequence_number: self.sequence,
            });
        }
    }

    fn fail(&mut self, error: &Value) {
        let mut response = self
            .last
            .take()
            .unwrap_or_else(|| response_object(&self.request, &self.model, None, Vec::new(), None));
        response["status"] = json!("failed");
        response["error"] = json!({
            "code": error["code"].as_str().unwrap_or("server_error"),
            "message": error["message"].as_str().unwrap_or("The upstream stream failed."),
        });
        self.hold(response, "response.failed");
    }
}

impl EventRewriter for NativeStream {
    fn framed(&self) -> bool {
        true
    }

    fn on_event(&mut self, data: &str, out: &mut Vec<String>) {
        if self.finished {
            return;
        }
        let Ok(mut event) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(number) = event["sequence_number"].as_u64() {
            self.sequence = number + 1;
        }
        if event.get("type").is_none() && event["error"].is_object() {
            let error = event["error"].clone();
            self.fail(&error);
            return;
        }
        if event["response"].is_object() {
            finish_native(&mut event["response"], &self.request, &self.model);
            self.last = Some(event["response"].clone());
        }
        let terminal = match event["type"].as_str() {
            Some("response.completed") => Some("response.completed"),
            Some("response.incomplete") => Some("response.incomplete"),
            Some("response.failed") => Some("response.failed"),
            _ => None,
        };
        match terminal {
            Some(kind) => {
                self.sequence = event["sequence_number"].as_u64().unwrap_or(self.sequence);
                self.hold(event["response"].take(), kind);
            }
            None => out.push(frame(&event)),
        }
    }

    fn on_end(&mut self, _out: &mut Vec<String>) {
        if !self.finished {
            let error = json!({"message": "The upstream stream ended early.", "code": "upstream_invalid_response"});
            self.fail(&error);
        }
    }
}

/// Stores a finished response (see `state::save`); given to the stream,
/// which runs it before the last event.
#[cfg(not(target_arch = "wasm32"))]
pub type SaveResponse = Box<dyn FnOnce(Value) -> BackgroundTask + Send>;
#[cfg(target_arch = "wasm32")]
pub type SaveResponse = Box<dyn FnOnce(Value) -> BackgroundTask>;

/// A canonical SSE stream re-encoded as Responses events; the terminal
/// event waits for `save` (if the response is kept).
pub fn render_stream(
    response: Response<Body>,
    request: Arc<ResponsesRequest>,
    public_model: &str,
    prompt_estimate: u64,
    save: Option<SaveResponse>,
) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let terminal = Arc::new(Mutex::new(None));
    let events = ResponsesStream::new(
        request,
        public_model,
        prompt_estimate,
        Arc::clone(&terminal),
    );
    let stream = Terminal {
        events: SseRewrite::new(body, events),
        terminal,
        save,
        state: TerminalState::Relaying,
    };
    Response::from_parts(parts, Body::from_stream(stream))
}

/// The stream's last event, held back until the response is stored.
pub(super) struct Finished {
    /// The whole `response` object (with status, output and usage).
    pub(super) response: Value,
    /// `response.completed`, `response.incomplete` or `response.failed`.
    pub(super) event: &'static str,
    pub(super) sequence_number: u64,
}

/// One SSE frame, named as OpenAI names its events (the SDKs dispatch on
/// the `type` in the data; the `event:` line mirrors it).
fn frame(data: &Value) -> String {
    let name = data["type"].as_str().unwrap_or("error");
    format!("event: {name}\ndata: {data}\n\n")
}

/// An output item being streamed.
enum Open {
    Reasoning {
        text: String,
    },
    Text {
        text: String,
    },
    Call {
        call_id: String,
        name: String,
        arguments: String,
    },
}

/// Writes Responses events for OpenAI `chat.completion.chunk`s (see the
/// module docs for their order); the terminal event is left in `terminal`
/// for [`Terminal`] to send.
pub struct ResponsesStream {
    request: Arc<ResponsesRequest>,
    model: String,
    prompt_estimate: u64,
    sequence: u64,
    started: bool,
    /// Output items: done ones, and the open ones by output index.
    output: Vec<Option<Value>>,
    open: Vec<(usize, Open)>,
    /// OpenAI tool call index → output index.
    tools: HashMap<u64, usize>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    streamed_bytes: u64,
    finished: bool,
    terminal: Arc<Mutex<Option<Finished>>>,
}

impl ResponsesStream {
    pub(super) fn new(
        request: Arc<ResponsesRequest>,
        public_model: &str,
        prompt_estimate: u64,
        terminal: Arc<Mutex<Option<Finished>>>,
    ) -> Self {
        Self {
            request,
            model: public_model.to_owned(),
            prompt_estimate,
            sequence: 0,
            started: false,
            output: Vec::new(),
            open: Vec::new(),
            tools: HashMap::new(),
            finish_reason: None,
            usage: None,
            streamed_bytes: 0,
            finished: false,
            terminal,
        }
    }

    fn event(&mut self, mut data: Value, out: &mut Vec<String>) {
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.push(frame(&data));
    }

    fn snapshot(&self, status: Option<&Status>, usage: Option<&Usage>) -> Value {
        let output = self.output.iter().flatten().cloned().collect();
        response_object(&self.request, &self.model, status, output, usage)
    }

    fn start(&mut self, out: &mut Vec<String>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.snapshot(None, None);
        self.event(
            json!({"type": "response.created", "response": response}),
            out,
        );
        let response = self.snapshot(None, None);
        self.event(
            json!({"type": "response.in_progress", "response": response}),
            out,
        );
    }

    fn id_of(&self, index: usize, prefix: &str) -> String {
        item_id(&self.request, prefix, index)
    }

    /// Opens a new output item; returns its output index.
    fn open_item(&mut self, open: Open, out: &mut Vec<String>) -> usize {
        let index = self.output.len();
        self.output.push(None);
        let item = match &open {
            Open::Reasoning { .. } => json!({
                "id": self.id_of(index, "rs"), "type": "reasoning", "summary": [], "content": [],
            }),
            Open::Text { .. } => json!({
                "id": self.id_of(index, "msg"), "type": "message", "status": "in_progress",
                "role": "assistant", "content": [],
            }),
            Open::Call { call_id, name, .. } => {
                let mut item = call_item(
                    &self.request,
                    self.id_of(index, "fc"),
                    call_id,
                    name,
                    "",
                    "in_progress",
                );
                if item["type"] == "custom_tool_call" {
                    item["input"] = json!("");
                }
                item
            }
        };
        self.event(
            json!({"type": "response.output_item.added", "output_index": index, "item": item}),
            out,
        );
        let part = match &open {
            Open::Reasoning { .. } => Some(json!({"type": "reasoning_text", "text": ""})),
            Open::Text { .. } => {
                Some(json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []}))
            }
            Open::Call { .. } => None,
        };
        if let Some(part) = part {
            let item_id = item["id"].clone();
            self.event(
                json!({"type": "response.content_part.added", "item_id": item_id, "output_index": index, "content_index": 0, "part": part}),
                out,
            );
        }
        self.open.push((index, open));
        index
    }

    /// Closes the open text or reasoning item (a new item of another kind
    /// starts).
    fn close_content(&mut self, out: &mut Vec<String>) {
        let positions: Vec<usize> = self
            .open
            .iter()
            .enumerate()
            .filter(|(_, (_, o))| !matches!(o, Open::Call { .. }))
            .map(|(i, _)| i)
            .collect();
        for position in positions.into_iter().rev() {
            let (index, open) = self.open.remove(position);
            self.close(index, open, out);
        }
    }

    fn close(&mut self, index: usize, open: Open, out: &mut Vec<String>) {
        let item = match open {
            Open::Reasoning { text } => {
                let item = reasoning_item(self.id_of(index, "rs"), &text);
                let id = item["id"].clone();
                self.event(json!({"type": "response.reasoning_text.done", "item_id": id, "output_index": index, "content_index": 0, "text": text}), out);
                self.event(json!({"type": "response.content_part.done", "item_id": id, "output_index": index, "content_index": 0, "part": {"type": "reasoning_text", "text": text}}), out);
                item
            }
            Open::Text { text } => {
                let item = message_item(self.id_of(index, "msg"), &text, "completed");
                let id = item["id"].clone();
                self.event(json!({"type": "response.output_text.done", "item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}), out);
                self.event(json!({"type": "response.content_part.done", "item_id": id, "output_index": index, "content_index": 0, "part": item["content"][0]}), out);
                item
            }
            Open::Call {
                call_id,
                name,
                arguments,
            } => {
                let item = call_item(
                    &self.request,
                    self.id_of(index, "fc"),
                    &call_id,
                    &name,
                    &arguments,
                    "completed",
                );
                let id = item["id"].clone();
                if item["type"] == "custom_tool_call" {
                    // The input is known whole only now: the provider
                    // streamed it as JSON (`{"input": …}`).
                    let input = item["input"].clone();
                    self.event(json!({"type": "response.custom_tool_call_input.delta", "item_id": id, "output_index": index, "delta": input}), out);
                    self.event(json!({"type": "response.custom_tool_call_input.done", "item_id": id, "output_index": index, "input": input}), out);
                } else {
                    self.event(json!({"type": "response.function_call_arguments.done", "item_id": id, "output_index": index, "name": name, "arguments": arguments}), out);
                }
                item
            }
        };
        self.event(
            json!({"type": "response.output_item.done", "output_index": index, "item": item}),
            out,
        );
        self.output[index] = Some(item);
    }

    /// The open text (or reasoning) item, opened if need be: its index.
    fn content_item(&mut self, reasoning: bool, out: &mut Vec<String>) -> usize {
        let found = self.open.iter().position(|(_, o)| {
            matches!(
                (o, reasoning),
                (Open::Reasoning { .. }, true) | (Open::Text { .. }, false)
            )
        });
        if let Some(position) = found {
            return position;
        }
        self.close_content(out);
        let open = if reasoning {
            Open::Reasoning {
                text: String::new(),
            }
        } else {
            Open::Text {
                text: String::new(),
            }
        };
        self.open_item(open, out);
        self.open.len() - 1
    }

    fn on_chunk(&mut self, chunk: &Value, out: &mut Vec<String>) {
        if let Some(error) = chunk.get("error").filter(|e| e.is_object()) {
            self.fail(error, out);
            return;
        }
        self.start(out);
        if let Some(usage) = Usage::from_openai(&chunk["usage"]) {
            self.usage = Some(usage);
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return;
        };
        let delta = &choice["delta"];
        for key in ["reasoning_content", "reasoning"] {
            if let Some(text) = delta[key].as_str().filter(|t| !t.is_empty()) {
                self.content_delta(true, text, out);
                break;
            }
        }
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.content_delta(false, text, out);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let call_index = call["index"].as_u64().unwrap_or(0);
            if let (Some(call_id), false) =
                (call["id"].as_str(), self.tools.contains_key(&call_index))
            {
                self.close_content(out);
                let name = call["function"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let index = self.open_item(
                    Open::Call {
                        call_id: call_id.to_owned(),
                        name,
                        arguments: String::new(),
                    },
                    out,
                );
                self.tools.insert(call_index, index);
            }
            let fragment = call["function"]["arguments"].as_str().unwrap_or_default();
            let Some(&index) = self.tools.get(&call_index) else {
                continue;
            };
            if fragment.is_empty() {
                continue;
            }
            self.streamed_bytes += fragment.len() as u64;
            let Some((
                _,
                Open::Call {
                    arguments, name, ..
                },
            )) = self.open.iter_mut().find(|(i, _)| *i == index)
            else {
                continue;
            };
            arguments.push_str(fragment);
            // A custom tool's input is sent whole when the call closes.
            if self.request.custom_tools.iter().any(|c| c == name) {
                continue;
            }
            let id = self.id_of(index, "fc");
            self.event(
                json!({"type": "response.function_call_arguments.delta", "item_id": id, "output_index": index, "delta": fragment}),
                out,
            );
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(finish.to_owned());
        }
    }

    fn content_delta(&mut self, reasoning: bool, text: &str, out: &mut Vec<String>) {
        let position = self.content_item(reasoning, out);
        self.streamed_bytes += text.len() as u64;
        let (index, open) = &mut self.open[position];
        let index = *index;
        match open {
            Open::Reasoning { text: all } | Open::Text { text: all } => all.push_str(text),
            Open::Call { .. } => return,
        }
        let (event, prefix) = if reasoning {
            ("response.reasoning_text.delta", "rs")
        } else {
            ("response.output_text.delta", "msg")
        };
        let id = self.id_of(index, prefix);
        let mut data = json!({"type": event, "item_id": id, "output_index": index, "content_index": 0, "delta": text});
        if !reasoning {
            data["logprobs"] = json!([]);
        }
        self.event(data, out);
    }

    fn finish(&mut self, out: &mut Vec<String>) {
        self.start(out);
        let open = std::mem::take(&mut self.open);
        for (index, item) in open {
            self.close(index, item, out);
        }
        let usage = self
            .usage
            .unwrap_or_else(|| Usage::new(self.prompt_estimate, self.streamed_bytes.div_ceil(4)));
        let status = Status::of_finish_reason(self.finish_reason.as_deref());
        let event = match status {
            Status::Incomplete(_) => "response.incomplete",
            _ => "response.completed",
        };
        let response = self.snapshot(Some(&status), Some(&usage));
        self.hold(response, event);
    }

    /// An OpenAI error chunk (a provider's mid-stream error, or the
    /// gateway's for a cut stream) ends the response as `failed`.
    fn fail(&mut self, error: &Value, out: &mut Vec<String>) {
        self.start(out);
        let error = json!({
            "code": error["code"].as_str().unwrap_or("server_error"),
            "message": error["message"].as_str().unwrap_or("The upstream stream failed."),
        });
        let response = self.snapshot(Some(&Status::Failed(error)), self.usage.as_ref());
        self.hold(response, "response.failed");
    }

    fn hold(&mut self, response: Value, event: &'static str) {
        self.finished = true;
        let sequence_number = self.sequence;
        self.sequence += 1;
        if let Ok(mut terminal) = self.terminal.lock() {
            *terminal = Some(Finished {
                response,
                event,
                sequence_number,
            });
        }
    }
}

impl EventRewriter for ResponsesStream {
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

enum TerminalState {
    Relaying,
    Saving(BackgroundTask, Finished),
    Done,
}

/// The rendered events, then the terminal one — after the response is
/// stored, so a client that continues the conversation at once finds it.
struct Terminal<R> {
    events: SseRewrite<R>,
    terminal: Arc<Mutex<Option<Finished>>>,
    save: Option<SaveResponse>,
    state: TerminalState,
}

fn terminal_frame(finished: &Finished) -> Bytes {
    Bytes::from(frame(&json!({
        "type": finished.event,
        "sequence_number": finished.sequence_number,
        "response": finished.response,
    })))
}

impl<R: EventRewriter> Stream for Terminal<R> {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                TerminalState::Relaying => match Pin::new(&mut this.events).poll_next(cx) {
                    Poll::Ready(None) => {
                        let finished = this.terminal.lock().ok().and_then(|mut t| t.take());
                        let Some(finished) = finished else {
                            this.state = TerminalState::Done;
                            return Poll::Ready(None);
                        };
                        let keep = finished.event != "response.failed";
                        match this.save.take().filter(|_| keep) {
                            Some(save) => {
                                let task = save(finished.response.clone());
                                this.state = TerminalState::Saving(task, finished);
                            }
                            None => {
                                this.state = TerminalState::Done;
                                return Poll::Ready(Some(Ok(terminal_frame(&finished))));
                            }
                        }
                    }
                    other => return other,
                },
                TerminalState::Saving(task, finished) => {
                    if task.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let frame = terminal_frame(finished);
                    this.state = TerminalState::Done;
                    return Poll::Ready(Some(Ok(frame)));
                }
                TerminalState::Done => return Poll::Ready(None),
            }
        }
    }
}
