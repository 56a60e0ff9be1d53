//! AWS Bedrock Converse API (`/model/{id}/converse`, `/converse-stream`):
//! OpenAI chat requests translated to Converse and back, requests signed
//! with SigV4, the binary event stream decoded and re-encoded as OpenAI SSE.
//!
//! References: <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>,
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html>,
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/CommonErrors.html>.
//!
//! Field rule as for Anthropic: mapped when Converse has it (`max_tokens` →
//! `inferenceConfig.maxTokens`, `temperature`, `top_p`, `stop`, `tools`,
//! `tool_choice`), delivery-only fields dropped (`stream_options`, `seed`,
//! `user`, `parallel_tool_calls`, `store`, `service_tier`, `n: 1`), and
//! `n > 1`, `logprobs`, non-zero penalties and JSON `response_format`
//! refused with 400. Images must be data URLs (Converse takes bytes, not
//! URLs). `tool_choice: "none"` sends no tools (or, when the conversation
//! already holds tool calls, the tools without a `toolChoice`, as Converse
//! requires). Embeddings: `dimensions` maps to Titan's `dimensions`; Cohere
//! models take none (400).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use serde_json::{json, Map, Value};

use super::super::embeddings::EmbeddingsRequest;
use super::super::sse::{EventRewriter, EventSource};
use super::super::usage::{content_text, Usage};
use super::super::ChatRequest;
use super::{
    chat_completion, completion_reply, embeddings_reply, error_reply, push_turn, read_json,
    refuse_unsupported, stop_sequences, stream_error_event, stream_reply, tool_call_input,
    tool_calls_of, unsupported, CallStop, ChunkWriter, ProviderReply, MAX_ERROR_BYTES,
    MAX_RESPONSE_BYTES,
};
use crate::aws::event_stream::EventStreamDecoder;
use crate::aws::sigv4::{self, AwsCredentials, SigningScope};
use crate::body::Body;
use crate::error::GatewayError;
use crate::http::proxy::upstream_error;
use crate::http::UpstreamBase;
use crate::platform::with_timeout;
use crate::platform::{Clock, HttpClient};

/// The SigV4 service name of the Bedrock runtime.
pub const SIGNING_SERVICE: &str = "bedrock";

pub struct BedrockDeployment<'a> {
    pub base: &'a UpstreamBase,
    pub region: &'a str,
    pub credentials: &'a AwsCredentials,
    pub upstream_model: &'a str,
    pub timeout: Duration,
}

fn refuse(message: &str, param: &'static str) -> GatewayError {
    unsupported("Bedrock", message, param)
}

/// OpenAI content → Converse content blocks (empty text is left out:
/// Converse refuses blank text blocks).
fn content_blocks(content: &Value) -> Result<Vec<Value>, GatewayError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(text) if text.is_empty() => Ok(Vec::new()),
        Value::String(text) => Ok(vec![json!({"text": text})]),
        Value::Array(parts) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = part["text"].as_str().unwrap_or_default();
                        if !text.is_empty() {
                            blocks.push(json!({"text": text}));
                        }
                    }
                    Some("image_url") => {
                        blocks.push(image_block(
                            part["image_url"]["url"].as_str().unwrap_or_default(),
                        )?);
                    }
                    other => {
                        return Err(refuse(&format!("content part type {other:?}"), "messages"))
                    }
                }
            }
            Ok(blocks)
        }
        _ => Err(GatewayError::invalid_request(
            "`content` must be a string or an array of parts.",
            Some("messages"),
        )),
    }
}

/// A `data:image/<format>;base64,` URL → a Converse image block.
fn image_block(url: &str) -> Result<Value, GatewayError> {
    let Some((media_type, data)) = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
    else {
        return Err(refuse("image URLs other than base64 data URLs", "messages"));
    };
    let format = match media_type {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => return Err(refuse(&format!("image type `{media_type}`"), "messages")),
    };
    Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
}

/// The pure request mapping: OpenAI chat request → Converse body.
pub fn bedrock_request(chat: &ChatRequest) -> Result<Value, GatewayError> {
    let body = &chat.body;
    refuse_unsupported(body, "Bedrock")?;
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
    for message in &chat.messages {
        match message["role"].as_str().unwrap_or_default() {
            "system" | "developer" => {
                let text = content_text(&message["content"]);
                if !text.is_empty() {
                    system.push(json!({"text": text}));
                }
            }
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
                    blocks.push(json!({"toolUse": {
                        "toolUseId": call["id"],
                        "name": call["function"]["name"],
                        "input": input,
                    }}));
                }
                push_turn(&mut messages, "content", "assistant", blocks);
            }
            "tool" => {
                let block = json!({"toolResult": {
                    "toolUseId": message["tool_call_id"],
                    "content": [{"text": content_text(&message["content"])}],
                }});
                push_turn(&mut messages, "content", "user", vec![block]);
            }
            other => {
                return Err(GatewayError::invalid_request(
                    format!("Unknown message role `{other}`."),
                    Some("messages"),
                ))
            }
        }
    }

    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let mut inference = Map::new();
    if let Some(max) = chat.max_tokens {
        inference.insert("maxTokens".into(), json!(max));
    }
    for (from, to) in [("temperature", "temperature"), ("top_p", "topP")] {
        if let Some(value) = body.get(from).filter(|v| !v.is_null()) {
            inference.insert(to.into(), value.clone());
        }
    }
    if let Some(stops) = stop_sequences(body) {
        inference.insert("stopSequences".into(), stops);
    }
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inference));
    }
    let choice = match body.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "auto" => Some(json!({"auto": {}})),
        Some(Value::String(s)) if s == "none" => Some(Value::Null),
        Some(Value::String(s)) if s == "required" => Some(json!({"any": {}})),
        Some(Value::Object(o)) => {
            Some(json!({"tool": {"name": o.get("function").and_then(|f| f.get("name"))}}))
        }
        Some(_) => {
            return Err(GatewayError::invalid_request(
                "Unknown `tool_choice`.",
                Some("tool_choice"),
            ))
        }
    };
    let tools = body.get("tools").and_then(Value::as_array);
    // Converse has no "none": tools are left out, unless the conversation
    // already holds tool calls or results, which Converse only accepts
    // with a `toolConfig` (sent then without a `toolChoice`).
    let history_has_tools = chat
        .messages
        .iter()
        .any(|m| m["role"] == "tool" || m.get("tool_calls").is_some_and(|c| !c.is_null()));
    let send_tools = choice != Some(Value::Null) || history_has_tools;
    if let (Some(tools), true) = (tools, send_tools) {
        let specs: Vec<Value> = tools
            .iter()
            .map(|tool| {
                let function = &tool["function"];
                let mut spec = json!({
                    "name": function["name"],
                    "inputSchema": {"json": function.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"}))},
                });
                if let Some(description) = function.get("description") {
                    spec["description"] = description.clone();
                }
                json!({"toolSpec": spec})
            })
            .collect();
        let mut config = json!({"tools": specs});
        if let Some(choice) = choice.filter(|c| !c.is_null()) {
            config["toolChoice"] = choice;
        }
        out.insert("toolConfig".into(), config);
    }
    Ok(Value::Object(out))
}

pub fn bedrock_stop_reason_to_finish_reason(reason: &str) -> &'static str {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

/// Converse usage → OpenAI usage (prompt tokens include cache reads and
/// writes; cache reads are also `prompt_tokens_details.cached_tokens`).
pub fn bedrock_usage(usage: &Value) -> Usage {
    let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
    Usage::with_cache(
        n("inputTokens"),
        n("cacheReadInputTokens"),
        n("cacheWriteInputTokens"),
        n("outputTokens"),
    )
}

/// The pure response mapping: Converse response → OpenAI chat.completion.
pub fn bedrock_response_to_openai(
    response: &Value,
    public_model: &str,
    id: &str,
    created: u64,
) -> (Value, Usage) {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in response["output"]["message"]["content"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(tool) = block.get("toolUse") {
            tool_calls.push(json!({
                "id": tool["toolUseId"],
                "type": "function",
                "function": {"name": tool["name"], "arguments": tool.get("input").cloned().unwrap_or_else(|| json!({})).to_string()},
            }));
        }
    }
    let usage = bedrock_usage(&response["usage"]);
    let finish =
        bedrock_stop_reason_to_finish_reason(response["stopReason"].as_str().unwrap_or("end_turn"));
    let completion = chat_completion(id, created, public_model, text, tool_calls, finish, &usage);
    (completion, usage)
}

/// ConverseStream's binary event stream as JSON events in the union form
/// of the API reference: `{"<eventType>": payload}` for events and
/// `{"exception": {"type": ..., "message": ...}}` for exceptions.
#[derive(Debug, Default)]
pub struct ConverseEvents {
    decoder: EventStreamDecoder,
}

impl EventSource for ConverseEvents {
    fn push(&mut self, chunk: &[u8], on_event: &mut dyn FnMut(&str)) -> Result<(), String> {
        self.decoder
            .push(chunk, |message| {
                let payload = String::from_utf8_lossy(&message.payload);
                let payload = if payload.trim().is_empty() {
                    "{}".into()
                } else {
                    payload
                };
                match message.header(":message-type") {
                    Some("event") | None => {
                        let kind = message.header(":event-type").unwrap_or("unknown");
                        on_event(&format!("{{{}:{payload}}}", Value::from(kind)));
                    }
                    Some(_) => {
                        let kind = message
                            .header(":exception-type")
                            .or_else(|| message.header(":error-code"))
                            .unwrap_or("error");
                        let text = serde_json::from_str::<Value>(&payload)
                            .ok()
                            .and_then(|p| p["message"].as_str().map(str::to_owned))
                            .or_else(|| message.header(":error-message").map(str::to_owned))
                            .unwrap_or_default();
                        on_event(
                            &json!({"exception": {"type": kind, "message": text}}).to_string(),
                        );
                    }
                }
            })
            .map_err(|e| e.to_string())
    }
}

/// Translates ConverseStream events into OpenAI chunk payloads.
pub struct BedrockStreamTranslator {
    writer: ChunkWriter,
    usage: Option<Usage>,
    finish: Option<&'static str>,
    /// Converse content block index → OpenAI tool call index.
    tools: HashMap<u64, usize>,
    failed: bool,
}

impl BedrockStreamTranslator {
    pub fn new(id: &str, public_model: &str, created: u64, include_usage: bool) -> Self {
        Self {
            writer: ChunkWriter::new(id.to_owned(), public_model, created, include_usage),
            usage: None,
            finish: None,
            tools: HashMap::new(),
            failed: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        self.writer.chunk(delta, finish)
    }

    /// The OpenAI payloads for one event (in the union form).
    pub fn on_event(&mut self, event: &Value) -> Vec<String> {
        let Some((kind, payload)) = event.as_object().and_then(|o| o.iter().next()) else {
            return Vec::new();
        };
        match kind.as_str() {
            "messageStart" => vec![self.chunk(json!({"role": "assistant", "content": ""}), None)],
            "contentBlockStart" => {
                let Some(tool) = payload["start"].get("toolUse") else {
                    return Vec::new();
                };
                let index = self.tools.len();
                self.tools
                    .insert(payload["contentBlockIndex"].as_u64().unwrap_or(0), index);
                let call = json!({"index": index, "id": tool["toolUseId"], "type": "function", "function": {"name": tool["name"], "arguments": ""}});
                vec![self.chunk(json!({"tool_calls": [call]}), None)]
            }
            "contentBlockDelta" => {
                let delta = &payload["delta"];
                if let Some(text) = delta.get("text").and_then(Value::as_str) {
                    return vec![self.chunk(json!({"content": text}), None)];
                }
                let Some(partial) = delta["toolUse"]["input"].as_str() else {
                    return Vec::new();
                };
                let block = payload["contentBlockIndex"].as_u64().unwrap_or(0);
                match self.tools.get(&block) {
                    Some(&index) if !partial.is_empty() => vec![self.chunk(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": partial}}]}),
                        None,
                    )],
                    _ => Vec::new(),
                }
            }
            "messageStop" => {
                self.finish = Some(bedrock_stop_reason_to_finish_reason(
                    payload["stopReason"].as_str().unwrap_or("end_turn"),
                ));
                Vec::new()
            }
            "metadata" => {
                if let Some(usage) = payload.get("usage") {
                    self.usage = Some(bedrock_usage(usage));
                }
                Vec::new()
            }
            "exception" => {
                self.failed = true;
                let kind = payload["type"].as_str().unwrap_or("error");
                let message = payload["message"].as_str().unwrap_or("upstream error");
                vec![stream_error_event(kind, message)]
            }
            _ => Vec::new(),
        }
    }

    /// Final chunks once the stream ended: finish reason, usage (none
    /// without a `metadata` event: the gateway then estimates), `[DONE]`.
    fn finish_events(&self) -> Vec<String> {
        self.writer
            .finish(self.finish.unwrap_or("stop"), self.usage.as_ref())
    }
}

impl EventRewriter for BedrockStreamTranslator {
    fn on_event(&mut self, data: &str, out: &mut Vec<String>) {
        if let Ok(event) = serde_json::from_str::<Value>(data) {
            out.extend(BedrockStreamTranslator::on_event(self, &event));
        }
    }

    /// Without `messageStop` the stream was cut: no `[DONE]`, so the client
    /// gets the gateway's error event instead.
    fn on_end(&mut self, out: &mut Vec<String>) {
        if self.finish.is_some() && !self.failed {
            out.extend(self.finish_events());
        }
    }

    fn is_done(&self) -> bool {
        self.failed
    }
}

/// Bedrock errors (`{"message"}`, type in `x-amzn-ErrorType`) →
/// OpenAI-shaped: 400/404/413 keep status and message, 429 (throttling,
/// model not ready) keeps `Retry-After`, 503 stays 503; access problems,
/// model errors and other 5xx → 502.
async fn handle_bedrock_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: Body,
) -> Result<ProviderReply, GatewayError> {
    let bytes = body.collect(MAX_ERROR_BYTES).await.unwrap_or_default();
    let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let message = parsed["message"]
        .as_str()
        .or_else(|| parsed["Message"].as_str())
        .unwrap_or("The upstream provider returned an error.");
    let kind = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(':').next())
        .unwrap_or("UnknownError");
    let (status, openai_type) = match status.as_u16() {
        400 | 404 | 413 => (status, "invalid_request_error"),
        429 => (status, "rate_limit_exceeded"),
        503 => (status, "upstream_overloaded"),
        _ => {
            return Err(GatewayError::UpstreamStatus {
                status,
                detail: format!("{kind}: {message}"),
            })
        }
    };
    Ok(error_reply(status, message, openai_type, kind, headers))
}

/// RFC 3986 encoding of a model id or ARN as one path segment.
fn path_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len() + 8);
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A signed POST of `body` to `{base}/model/{id}/{action}`.
pub(crate) fn signed_request(
    deployment: &BedrockDeployment<'_>,
    action: &str,
    body: Bytes,
    accept: &'static str,
    unix_time: u64,
    request_id: &str,
) -> Result<Request<Bytes>, GatewayError> {
    let uri = deployment
        .base
        .uri(
            &format!(
                "/model/{}/{action}",
                path_segment(deployment.upstream_model)
            ),
            None,
        )
        .map_err(|e| GatewayError::internal(format!("upstream uri: {e}")))?;
    let mut request = Request::new(body);
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let scope = SigningScope {
        region: deployment.region,
        service: SIGNING_SERVICE,
        unix_time,
    };
    sigv4::sign(&mut request, deployment.credentials, scope)
        .map_err(|_| GatewayError::internal("AWS credentials are not valid header values"))?;
    // Sent unsigned (AWS accepts extra headers), so nothing between here
    // and the server can break the signature by adjusting them.
    request
        .headers_mut()
        .insert(header::ACCEPT, HeaderValue::from_static(accept));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        request.headers_mut().insert(crate::http::X_REQUEST_ID, id);
    }
    Ok(request)
}

pub async fn bedrock_chat(
    http: &impl HttpClient,
    clock: &impl Clock,
    deployment: BedrockDeployment<'_>,
    chat: &ChatRequest,
    request_id: &str,
) -> Result<ProviderReply, GatewayError> {
    let body = bedrock_request(chat)?;
    let (action, accept) = if chat.stream {
        ("converse-stream", "application/vnd.amazon.eventstream")
    } else {
        ("converse", "application/json")
    };
    let now_ms = clock.now_unix_ms();
    let request = signed_request(
        &deployment,
        action,
        Bytes::from(body.to_string()),
        accept,
        now_ms / 1000,
        request_id,
    )?;
    let result = with_timeout(clock, deployment.timeout, http.send(request)).await;
    let (parts, body) = upstream_error(result, deployment.timeout)?.into_parts();
    if !parts.status.is_success() {
        return handle_bedrock_error(parts.status, &parts.headers, body).await;
    }
    let created = now_ms / 1000;
    let id = format!("chatcmpl-bedrock-{request_id}");
    if chat.stream {
        let translator =
            BedrockStreamTranslator::new(&id, &chat.model, created, chat.include_usage);
        return Ok(stream_reply::<_, ConverseEvents>(body, translator));
    }
    let response = read_json(body, MAX_RESPONSE_BYTES, "response").await?;
    let (completion, usage) = bedrock_response_to_openai(&response, &chat.model, &id, created);
    Ok(completion_reply(&completion, usage))
}

/// Which InvokeModel body an embedding model takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingFamily {
    /// Amazon Titan Text Embeddings (one text per call; `inputTextTokenCount`).
    Titan,
    /// Cohere Embed (up to 96 texts per call).
    Cohere,
}

impl EmbeddingFamily {
    pub fn of(upstream_model: &str) -> Self {
        // Cross-region profile ids prefix the vendor (`us.cohere.embed-…`).
        if upstream_model.contains("cohere.embed") {
            Self::Cohere
        } else {
            Self::Titan
        }
    }
}

/// Texts per Cohere call, as Bedrock documents.
const COHERE_BATCH: usize = 96;
/// Concurrent InvokeModel calls of one embeddings request.
const EMBEDDING_CALLS_IN_FLIGHT: usize = 16;

/// The pure embeddings mapping: the InvokeModel bodies for `texts`.
/// References: <https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html>,
/// <https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed.html>.
pub fn bedrock_embedding_bodies(
    family: EmbeddingFamily,
    texts: &[String],
    dimensions: Option<u64>,
) -> Vec<Value> {
    match family {
        EmbeddingFamily::Titan => texts
            .iter()
            .map(|text| {
                let mut body = json!({"inputText": text});
                if let Some(dimensions) = dimensions {
                    body["dimensions"] = json!(dimensions);
                }
                body
            })
            .collect(),
        EmbeddingFamily::Cohere => texts
            .chunks(COHERE_BATCH)
            .map(|batch| json!({"texts": batch, "input_type": "search_document", "truncate": "NONE"}))
            .collect(),
    }
}

/// Vectors and input tokens of one InvokeModel answer.
fn embedding_answer(
    family: EmbeddingFamily,
    headers: &HeaderMap,
    response: &Value,
) -> Option<(Vec<Vec<f32>>, u64)> {
    let header_tokens = headers
        .get("x-amzn-bedrock-input-token-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    match family {
        EmbeddingFamily::Titan => {
            let vector = super::super::embeddings::vector_of(&response["embedding"])?;
            let tokens = response["inputTextTokenCount"].as_u64().or(header_tokens)?;
            Some((vec![vector], tokens))
        }
        EmbeddingFamily::Cohere => {
            let vectors: Option<Vec<Vec<f32>>> = response["embeddings"]
                .as_array()?
                .iter()
                .map(super::super::embeddings::vector_of)
                .collect();
            Some((vectors?, header_tokens?))
        }
    }
}

/// Embeddings through InvokeModel, one call per Titan text (up to 16 at a
/// time) or per 96 Cohere texts; tokens as Bedrock reports them.
pub async fn bedrock_embeddings(
    http: &impl HttpClient,
    clock: &impl Clock,
    deployment: BedrockDeployment<'_>,
    request: &EmbeddingsRequest,
    request_id: &str,
) -> Result<ProviderReply, GatewayError> {
    let texts = request.texts("Bedrock")?;
    let family = EmbeddingFamily::of(deployment.upstream_model);
    if family == EmbeddingFamily::Cohere && request.dimensions.is_some() {
        return Err(refuse(
            "`dimensions` for Cohere embedding models",
            "dimensions",
        ));
    }
    let deployment = &deployment;
    let calls = bedrock_embedding_bodies(family, texts, request.dimensions)
        .into_iter()
        .map(|body| async move {
            // Signed when sent: a long batch must not outlive its signature.
            let signed = signed_request(
                deployment,
                "invoke",
                Bytes::from(body.to_string()),
                "application/json",
                clock.now_unix_ms() / 1000,
                request_id,
            )?;
            let result = with_timeout(clock, deployment.timeout, http.send(signed)).await;
            let (parts, body) = upstream_error(result, deployment.timeout)?.into_parts();
            if !parts.status.is_success() {
                let reply = handle_bedrock_error(parts.status, &parts.headers, body).await;
                return Err(CallStop::from_error_reply(reply));
            }
            let response = read_json(body, MAX_RESPONSE_BYTES, "embeddings response").await?;
            embedding_answer(family, &parts.headers, &response).ok_or_else(|| {
                CallStop::Failed(GatewayError::UpstreamInvalid {
                    detail: "embeddings response without vectors or token count".into(),
                })
            })
        });
    // Collected first: a lazy iterator's closure held across the await
    // below would make the future not `Send` (the Lambda runtime needs it).
    let calls: Vec<_> = calls.collect();
    // In order, at most EMBEDDING_CALLS_IN_FLIGHT at a time (a 2048-text
    // request must not open 2048 connections against the account's
    // limits), stopping at the first failure so no further calls are made.
    let answers: Vec<(Vec<Vec<f32>>, u64)> = match futures_util::stream::iter(calls)
        .buffered(EMBEDDING_CALLS_IN_FLIGHT)
        .try_collect()
        .await
    {
        Ok(answers) => answers,
        Err(stop) => return stop.into_reply(),
    };
    let mut vectors = Vec::with_capacity(texts.len());
    let mut tokens = 0;
    for (batch, batch_tokens) in answers {
        vectors.extend(batch);
        tokens += batch_tokens;
    }
    if vectors.len() != texts.len() {
        return Err(GatewayError::UpstreamInvalid {
            detail: "embeddings response without one vector per input".into(),
        });
    }
    Ok(embeddings_reply(
        &vectors,
        request,
        Usage::new(tokens, 0),
        true,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::sse::SseRewrite;
    use crate::aws::event_stream::encode_message;
    use crate::body::BodyError;
    use futures_executor::block_on;
    use futures_util::StreamExt;

    const RESPONSE_TEXT: &str =
        include_str!("../../../../tests/fixtures/bedrock/response_text.json");
    const RESPONSE_TOOL_USE: &str =
        include_str!("../../../../tests/fixtures/bedrock/response_tool_use.json");
    const STREAM_TOOL_USE: &str =
        include_str!("../../../../tests/fixtures/bedrock/stream_tool_use.events.json");
    const STREAM_TEXT: &[u8] =
        include_bytes!("../../../../tests/fixtures/bedrock/stream_text.eventstream");
    const STREAM_EXCEPTION: &[u8] =
        include_bytes!("../../../../tests/fixtures/bedrock/stream_exception.eventstream");
    const ERROR_VALIDATION: &str =
        include_str!("../../../../tests/fixtures/bedrock/error_validation.json");

    fn chat(body: Value) -> ChatRequest {
        ChatRequest::parse(body.to_string().as_bytes()).unwrap()
    }

    /// Runs `bytes`, split into `chunk`-byte pieces, through the stream
    /// translation; returns the SSE payloads and the stream's failure.
    fn translate(bytes: &[u8], chunk: usize, include_usage: bool) -> (Vec<String>, Option<String>) {
        let pieces: Vec<Result<Bytes, BodyError>> = bytes
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let upstream = Body::from_stream(futures_util::stream::iter(pieces));
        let mut stream = SseRewrite::<_, ConverseEvents>::with_source(
            upstream,
            BedrockStreamTranslator::new("chatcmpl-b", "claude", 1, include_usage),
        );
        let mut payloads = Vec::new();
        let mut failure = None;
        block_on(async {
            while let Some(item) = stream.next().await {
                match item {
                    Ok(bytes) => {
                        let text = String::from_utf8(bytes.to_vec()).unwrap();
                        payloads.push(text.strip_prefix("data: ").unwrap().trim_end().to_owned());
                    }
                    Err(e) => failure = Some(e.0),
                }
            }
        });
        (payloads, failure)
    }

    fn parse(payloads: &[String]) -> Vec<Value> {
        payloads
            .iter()
            .filter(|p| *p != "[DONE]")
            .map(|p| serde_json::from_str(p).unwrap())
            .collect()
    }

    fn text_of(chunks: &[Value]) -> String {
        chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect()
    }

    #[test]
    fn embedding_bodies_and_answers_per_family() {
        let texts = vec!["a".to_owned(), "bb".to_owned()];
        assert_eq!(
            EmbeddingFamily::of("amazon.titan-embed-text-v2:0"),
            EmbeddingFamily::Titan
        );
        assert_eq!(
            EmbeddingFamily::of("us.cohere.embed-english-v3"),
            EmbeddingFamily::Cohere
        );
        assert_eq!(
            bedrock_embedding_bodies(EmbeddingFamily::Titan, &texts, Some(256)),
            vec![
                json!({"inputText": "a", "dimensions": 256}),
                json!({"inputText": "bb", "dimensions": 256})
            ]
        );
        let many: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let cohere = bedrock_embedding_bodies(EmbeddingFamily::Cohere, &many, None);
        assert_eq!(cohere.len(), 2, "96 texts per Cohere call");
        assert_eq!(cohere[0]["texts"].as_array().unwrap().len(), 96);
        assert_eq!(cohere[0]["input_type"], "search_document");

        let titan = json!({"embedding": [0.25, -0.5], "inputTextTokenCount": 7});
        assert_eq!(
            embedding_answer(EmbeddingFamily::Titan, &HeaderMap::new(), &titan),
            Some((vec![vec![0.25, -0.5]], 7))
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amzn-bedrock-input-token-count",
            HeaderValue::from_static("9"),
        );
        let cohere =
            json!({"embeddings": [[0.5], [1.0]], "id": "x", "response_type": "embeddings_floats"});
        assert_eq!(
            embedding_answer(EmbeddingFamily::Cohere, &headers, &cohere),
            Some((vec![vec![0.5], vec![1.0]], 9))
        );
        assert_eq!(
            embedding_answer(EmbeddingFamily::Cohere, &HeaderMap::new(), &cohere),
            None,
            "no token count: refused, not guessed"
        );
    }

    #[test]
    fn request_maps_system_turns_images_tools_and_results() {
        let request = chat(json!({
            "model": "claude", "max_tokens": 200, "temperature": 0.2, "top_p": 0.9, "stop": "END",
            "user": "u-1", "seed": 7, "stream_options": {"include_usage": true},
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "tooluse_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "tooluse_1", "content": "18C"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required"
        }));
        let out = bedrock_request(&request).unwrap();
        assert_eq!(out["system"], json!([{"text": "Be brief."}]));
        assert_eq!(
            out["inferenceConfig"],
            json!({"maxTokens": 200, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]})
        );
        let messages = out["messages"].as_array().unwrap();
        assert_eq!(
            messages.len(),
            5,
            "consecutive user turns merge: {messages:?}"
        );
        assert_eq!(
            messages[0]["content"],
            json!([{"text": "Hi"}, {"text": "Look"}, {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}])
        );
        assert_eq!(
            messages[1],
            json!({"role": "assistant", "content": [{"text": "Hello."}]})
        );
        assert_eq!(
            messages[3],
            json!({"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}}]})
        );
        assert_eq!(
            messages[4],
            json!({"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18C"}]}}]})
        );
        assert_eq!(
            out["toolConfig"],
            json!({"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather by city", "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}], "toolChoice": {"any": {}}})
        );
        for dropped in ["user", "seed", "stream_options", "model"] {
            assert!(out.get(dropped).is_none(), "{dropped} is delivery-only");
        }
    }

    #[test]
    fn tool_choice_none_sends_no_tools_and_a_named_tool_is_forced() {
        let base = json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}]});
        let mut none = base.clone();
        none["tool_choice"] = json!("none");
        assert!(bedrock_request(&chat(none))
            .unwrap()
            .get("toolConfig")
            .is_none());
        // With tool calls in the history Converse requires the tools.
        let mut after_results = base.clone();
        after_results["tool_choice"] = json!("none");
        after_results["messages"] = json!([
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "done"}
        ]);
        let config = bedrock_request(&chat(after_results)).unwrap()["toolConfig"].clone();
        assert_eq!(config["tools"][0]["toolSpec"]["name"], "f");
        assert!(config.get("toolChoice").is_none());
        let mut named = base;
        named["tool_choice"] = json!({"type": "function", "function": {"name": "f"}});
        assert_eq!(
            bedrock_request(&chat(named)).unwrap()["toolConfig"]["toolChoice"],
            json!({"tool": {"name": "f"}})
        );
    }

    #[test]
    fn unsupported_meanings_are_refused() {
        for (extra, param) in [
            (json!({"n": 2}), "n"),
            (json!({"logprobs": true}), "logprobs"),
            (json!({"presence_penalty": 0.5}), "presence_penalty"),
            (
                json!({"response_format": {"type": "json_object"}}),
                "response_format",
            ),
        ] {
            let mut body = json!({"model": "c", "messages": [{"role": "user", "content": "x"}]});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let err = bedrock_request(&chat(body)).unwrap_err();
            assert!(
                matches!(err, GatewayError::InvalidRequest { param: Some(p), .. } if p == param),
                "{param}: {err:?}"
            );
        }
        let remote_image = chat(
            json!({"model": "c", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
        );
        assert!(bedrock_request(&remote_image).is_err());
    }

    #[test]
    fn response_maps_text_and_cached_usage() {
        let response: Value = serde_json::from_str(RESPONSE_TEXT).unwrap();
        let (completion, usage) = bedrock_response_to_openai(&response, "claude", "chatcmpl-x", 5);
        assert_eq!(
            completion["choices"][0]["message"]["content"],
            "Hello! How can I help you today?"
        );
        assert_eq!(completion["choices"][0]["finish_reason"], "stop");
        assert_eq!(completion["model"], "claude");
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 1042,
                completion_tokens: 12,
                total_tokens: 1054,
                cached_tokens: 1024
            }
        );
        assert_eq!(
            completion["usage"]["prompt_tokens_details"]["cached_tokens"],
            1024
        );
    }

    #[test]
    fn response_maps_tool_use() {
        let response: Value = serde_json::from_str(RESPONSE_TOOL_USE).unwrap();
        let (completion, usage) = bedrock_response_to_openai(&response, "claude", "chatcmpl-x", 5);
        let choice = &completion["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["id"], "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
        assert_eq!(call["function"]["name"], "get_weather");
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(arguments, json!({"city": "Paris", "unit": "celsius"}));
        assert_eq!(usage, Usage::new(412, 48));
    }

    #[test]
    fn stream_of_text_is_translated_whatever_the_chunking() {
        for chunk in [1, 7, 64, STREAM_TEXT.len()] {
            let (payloads, failure) = translate(STREAM_TEXT, chunk, false);
            assert_eq!(failure, None);
            assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
            let chunks = parse(&payloads);
            assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
            assert_eq!(text_of(&chunks), "Hello world", "chunk size {chunk}");
            let last = chunks.last().unwrap();
            assert_eq!(last["choices"][0]["finish_reason"], "stop");
            assert_eq!(last["usage"]["prompt_tokens"], 12);
            assert_eq!(last["usage"]["completion_tokens"], 2);
        }
    }

    #[test]
    fn stream_of_tool_use_reassembles_arguments_and_reports_usage_last() {
        let events: Vec<Value> = serde_json::from_str(STREAM_TOOL_USE).unwrap();
        let mut bytes = Vec::new();
        for event in &events {
            bytes.extend(encode_message(
                &[
                    (":event-type", event["event"].as_str().unwrap()),
                    (":content-type", "application/json"),
                    (":message-type", "event"),
                ],
                event["payload"].to_string().as_bytes(),
            ));
        }
        let (payloads, failure) = translate(&bytes, 50, true);
        assert_eq!(failure, None);
        let chunks = parse(&payloads);
        assert_eq!(text_of(&chunks), "Let me check the weather.");
        let calls: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
            .collect();
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        assert_eq!(calls[0]["index"], 0);
        assert!(calls[0]["id"].as_str().unwrap().starts_with("tooluse_"));
        let arguments: String = calls
            .iter()
            .filter_map(|c| c["function"]["arguments"].as_str())
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&arguments).unwrap(),
            json!({"city": "Paris"})
        );
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        let usage = &chunks[chunks.len() - 1];
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["prompt_tokens"], 512);
        assert_eq!(
            usage["usage"]["prompt_tokens_details"]["cached_tokens"],
            100
        );
    }

    #[test]
    fn a_stream_without_metadata_reports_no_usage_so_the_gateway_estimates() {
        let mut bytes = Vec::new();
        for (kind, payload) in [
            ("messageStart", json!({"role": "assistant"})),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
            ),
            ("messageStop", json!({"stopReason": "end_turn"})),
        ] {
            bytes.extend(encode_message(
                &[(":event-type", kind), (":message-type", "event")],
                payload.to_string().as_bytes(),
            ));
        }
        for include_usage in [false, true] {
            let (payloads, failure) = translate(&bytes, 64, include_usage);
            assert_eq!(failure, None);
            assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
            assert!(
                parse(&payloads).iter().all(|c| c.get("usage").is_none()),
                "no made-up zero usage: {payloads:?}"
            );
        }
    }

    #[test]
    fn exception_mid_stream_ends_with_an_openai_error_event() {
        let (payloads, failure) = translate(STREAM_EXCEPTION, 13, false);
        assert_eq!(failure, None);
        let chunks = parse(&payloads);
        assert_eq!(text_of(&chunks), "Partial");
        let error = chunks.last().unwrap();
        assert_eq!(error["error"]["code"], "throttlingException");
        assert!(error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Too many tokens"));
        assert!(!payloads.iter().any(|p| p == "[DONE]"));
    }

    #[test]
    fn corrupted_or_cut_streams_fail_explicitly() {
        let mut corrupted = STREAM_TEXT.to_vec();
        let at = corrupted.len() / 2;
        corrupted[at] ^= 0x40;
        let (_, failure) = translate(&corrupted, 64, false);
        assert!(failure.unwrap().contains("checksum"));
        // Cut before messageStop: no [DONE], the observing layer reports it.
        let (payloads, failure) = translate(&STREAM_TEXT[..STREAM_TEXT.len() / 2], 64, false);
        assert_eq!(failure, None);
        assert!(!payloads.iter().any(|p| p == "[DONE]"));
    }

    fn error_reply_of(
        status: u16,
        error_type: &str,
        body: &str,
        retry_after: Option<&str>,
    ) -> Result<ProviderReply, GatewayError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amzn-errortype",
            HeaderValue::from_str(&format!(
                "{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"
            ))
            .unwrap(),
        );
        if let Some(retry) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_str(retry).unwrap());
        }
        block_on(handle_bedrock_error(
            StatusCode::from_u16(status).unwrap(),
            &headers,
            Body::from(body.to_owned()),
        ))
    }

    fn complete(reply: ProviderReply) -> (StatusCode, HeaderMap, Value) {
        let ProviderReply::Complete { response, .. } = reply else {
            panic!("expected a complete reply")
        };
        let (parts, body) = response.into_parts();
        let bytes = block_on(body.collect(1 << 20)).unwrap();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    #[test]
    fn errors_map_to_openai_statuses() {
        let (status, _, body) =
            complete(error_reply_of(400, "ValidationException", ERROR_VALIDATION, None).unwrap());
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("A conversation must start"));
        assert_eq!(body["error"]["code"], "ValidationException");

        let throttled = r#"{"message":"Too many requests, please wait before trying again."}"#;
        let (status, headers, body) =
            complete(error_reply_of(429, "ThrottlingException", throttled, Some("3")).unwrap());
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "3");
        assert_eq!(body["error"]["type"], "rate_limit_exceeded");

        let unavailable = r#"{"message":"Bedrock is unable to process your request."}"#;
        let (status, _, _) = complete(
            error_reply_of(503, "ServiceUnavailableException", unavailable, None).unwrap(),
        );
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

        for (status, kind) in [
            (403, "AccessDeniedException"),
            (424, "ModelErrorException"),
            (500, "InternalServerException"),
        ] {
            let err = error_reply_of(status, kind, r#"{"message":"no"}"#, None)
                .err()
                .unwrap();
            assert!(
                matches!(err, GatewayError::UpstreamStatus { .. }),
                "{status}"
            );
        }
    }

    #[test]
    fn requests_are_signed_for_the_encoded_model_path() {
        let base = crate::http::UpstreamBase::parse("http://127.0.0.1:8123").unwrap();
        let credentials = AwsCredentials {
            access_key_id: crate::config::Secret::new("AKIDEXAMPLE"),
            secret_access_key: crate::config::Secret::new(
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            ),
            session_token: Some(crate::config::Secret::new("session")),
        };
        let deployment = BedrockDeployment {
            base: &base,
            region: "eu-west-1",
            credentials: &credentials,
            upstream_model: "anthropic.claude-3-haiku-20240307-v1:0",
            timeout: Duration::from_secs(1),
        };
        let request = signed_request(
            &deployment,
            "converse-stream",
            Bytes::from_static(b"{}"),
            "application/vnd.amazon.eventstream",
            1_440_938_160,
            "req-1",
        )
        .unwrap();
        assert_eq!(
            request.uri().path(),
            "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
        );
        let authorization = request.headers()["authorization"].to_str().unwrap();
        assert!(authorization.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
        ), "{authorization}");
        assert_eq!(request.headers()["x-amz-security-token"], "session");
        assert_eq!(request.headers()["x-request-id"], "req-1");
        // The server's check passes; any change to a signed part fails it.
        sigv4::verify(&request, &credentials, "eu-west-1", SIGNING_SERVICE).unwrap();
        let mut tampered = request.clone();
        *tampered.body_mut() = Bytes::from_static(b"{\"x\":1}");
        assert!(sigv4::verify(&tampered, &credentials, "eu-west-1", SIGNING_SERVICE).is_err());
    }
}
