//! Google Gemini API (`generateContent`, `streamGenerateContent?alt=sse`):
//! OpenAI chat requests translated to Gemini and back, streaming included.
//!
//! References: <https://ai.google.dev/api/generate-content>,
//! <https://ai.google.dev/gemini-api/docs/function-calling>.
//!
//! Field rule as for Anthropic: mapped when Gemini has it (`max_tokens` →
//! `maxOutputTokens`, `stop`, `temperature`, `top_p`, `tools`,
//! `tool_choice`, `response_format` JSON → `responseMimeType`/
//! `responseSchema`), delivery-only fields dropped, and `n > 1`,
//! `logprobs`, non-zero penalties refused with 400. Tool parameter schemas
//! are cleaned to the OpenAPI subset Gemini accepts (unsupported keywords
//! such as `$schema`, `additionalProperties`, `default` removed; a type list
//! with `null` becomes `nullable`).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use serde_json::{json, Map, Value};

use super::super::embeddings::{vector_of, EmbeddingsRequest};
use super::super::sse::{EventRewriter, SseDecoder};
use super::super::usage::{content_text, Usage};
use super::super::ChatRequest;
use super::{
    chat_completion, completion_reply, embeddings_reply, error_reply, push_turn, read_json,
    refuse_unsupported, stop_sequences, stream_reply, tool_call_input, tool_calls_of, unsupported,
    CallStop, ChunkWriter, ProviderReply, MAX_ERROR_BYTES, MAX_RESPONSE_BYTES,
};
use crate::body::Body;
use crate::error::GatewayError;
use crate::http::proxy::upstream_error;
use crate::http::UpstreamBase;
use crate::platform::with_timeout;
use crate::platform::{Clock, HttpClient};
use crate::util::Secret;

/// Requests per `batchEmbedContents` call, as Gemini allows.
const GEMINI_EMBED_BATCH: usize = 100;
/// Concurrent `batchEmbedContents` calls of one embeddings request.
const GEMINI_EMBED_BATCHES_IN_FLIGHT: usize = 4;

/// Schema keywords Gemini's function declarations accept.
const SCHEMA_KEYS: [&str; 16] = [
    "type",
    "format",
    "description",
    "nullable",
    "enum",
    "properties",
    "required",
    "items",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "anyOf",
    "minLength",
    "maxLength",
    "propertyOrdering",
];

pub struct GeminiDeployment<'a> {
    pub base: &'a UpstreamBase,
    pub api_key: &'a Secret,
    pub upstream_model: &'a str,
    pub timeout: Duration,
}

fn refuse(message: &str, param: &'static str) -> GatewayError {
    unsupported("Gemini", message, param)
}

/// A JSON schema reduced to what Gemini accepts.
pub fn clean_schema(schema: &Value) -> Value {
    let Value::Object(object) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in object {
        match key.as_str() {
            "type" => match value {
                Value::Array(types) => {
                    let non_null: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                    if non_null.len() < types.len() {
                        out.insert("nullable".into(), json!(true));
                    }
                    if let Some(first) = non_null.first() {
                        out.insert("type".into(), (*first).clone());
                    }
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            "const" => {
                out.insert("enum".into(), json!([value]));
            }
            "properties" => {
                let properties: Map<String, Value> = value
                    .as_object()
                    .map(|p| {
                        p.iter()
                            .map(|(k, v)| (k.clone(), clean_schema(v)))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert("properties".into(), Value::Object(properties));
            }
            "items" => {
                out.insert("items".into(), clean_schema(value));
            }
            "anyOf" => {
                let options: Vec<Value> = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(clean_schema)
                    .collect();
                out.insert("anyOf".into(), Value::Array(options));
            }
            key if SCHEMA_KEYS.contains(&key) => {
                out.insert(key.to_owned(), value.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

fn parts(content: &Value) -> Result<Vec<Value>, GatewayError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(text) => Ok(vec![json!({"text": text})]),
        Value::Array(items) => items
            .iter()
            .map(|part| match part.get("type").and_then(Value::as_str) {
                Some("text") => Ok(json!({"text": part.get("text").cloned().unwrap_or_default()})),
                Some("image_url") => {
                    let url = part["image_url"]["url"].as_str().unwrap_or_default();
                    Ok(
                        match url
                            .strip_prefix("data:")
                            .and_then(|r| r.split_once(";base64,"))
                        {
                            Some((mime, data)) => {
                                json!({"inlineData": {"mimeType": mime, "data": data}})
                            }
                            None => json!({"fileData": {"fileUri": url}}),
                        },
                    )
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

/// The pure request mapping: OpenAI chat request → Gemini request body.
pub fn gemini_request(chat: &ChatRequest) -> Result<Value, GatewayError> {
    let body = &chat.body;
    refuse_unsupported(body, "Gemini")?;
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // Gemini answers tool results by function name, OpenAI by call id.
    let mut call_names: HashMap<String, String> = HashMap::new();
    for message in &chat.messages {
        match message["role"].as_str().unwrap_or_default() {
            "system" | "developer" => system.push(content_text(&message["content"])),
            "user" => push_turn(&mut contents, "parts", "user", parts(&message["content"])?),
            "assistant" => {
                let mut new_parts = parts(&message["content"])?;
                for call in tool_calls_of(message) {
                    let name = call["function"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    if let Some(id) = call["id"].as_str() {
                        call_names.insert(id.to_owned(), name.clone());
                    }
                    let args = tool_call_input(call)?;
                    new_parts.push(json!({"functionCall": {"name": name, "args": args}}));
                }
                push_turn(&mut contents, "parts", "model", new_parts);
            }
            "tool" => {
                let id = message["tool_call_id"].as_str().unwrap_or_default();
                let name = call_names.get(id).cloned().unwrap_or_else(|| id.to_owned());
                let text = content_text(&message["content"]);
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(object)) => Value::Object(object),
                    _ => json!({"content": text}),
                };
                push_turn(
                    &mut contents,
                    "parts",
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
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
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert(
            "systemInstruction".into(),
            json!({"parts": [{"text": system.join("\n\n")}]}),
        );
    }
    let mut generation = Map::new();
    if let Some(max) = chat.max_tokens {
        generation.insert("maxOutputTokens".into(), json!(max));
    }
    for (from, to) in [("temperature", "temperature"), ("top_p", "topP")] {
        if let Some(value) = body.get(from).filter(|v| !v.is_null()) {
            generation.insert(to.into(), value.clone());
        }
    }
    if let Some(stops) = stop_sequences(body) {
        generation.insert("stopSequences".into(), stops);
    }
    match body
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
    {
        Some("json_object") => {
            generation.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            generation.insert("responseMimeType".into(), json!("application/json"));
            if let Some(schema) = body["response_format"]["json_schema"].get("schema") {
                generation.insert("responseSchema".into(), clean_schema(schema));
            }
        }
        _ => {}
    }
    if !generation.is_empty() {
        out.insert("generationConfig".into(), Value::Object(generation));
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let declarations: Vec<Value> = tools
            .iter()
            .map(|tool| {
                let function = &tool["function"];
                let mut declaration = json!({"name": function["name"]});
                if let Some(description) = function.get("description") {
                    declaration["description"] = description.clone();
                }
                if let Some(parameters) = function.get("parameters") {
                    declaration["parameters"] = clean_schema(parameters);
                }
                declaration
            })
            .collect();
        out.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
    }
    if let Some(choice) = body.get("tool_choice") {
        let config = match choice {
            Value::String(s) if s == "auto" => json!({"mode": "AUTO"}),
            Value::String(s) if s == "none" => json!({"mode": "NONE"}),
            Value::String(s) if s == "required" => json!({"mode": "ANY"}),
            Value::Object(o) => {
                json!({"mode": "ANY", "allowedFunctionNames": [o.get("function").and_then(|f| f.get("name"))]})
            }
            _ => {
                return Err(GatewayError::invalid_request(
                    "Unknown `tool_choice`.",
                    Some("tool_choice"),
                ))
            }
        };
        out.insert(
            "toolConfig".into(),
            json!({"functionCallingConfig": config}),
        );
    }
    Ok(Value::Object(out))
}

pub fn gemini_finish_reason_to_finish_reason(reason: &str) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ => "stop",
    }
}

pub fn gemini_usage(metadata: &Value) -> Usage {
    let n = |k: &str| metadata.get(k).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        cached_tokens: n("cachedContentTokenCount"),
        ..Usage::new(
            n("promptTokenCount"),
            n("candidatesTokenCount") + n("thoughtsTokenCount"),
        )
    }
}

/// Text and function calls of the first candidate; call ids are made up
/// (`call_<n>`) since Gemini has none.
fn candidate_parts(response: &Value, first_call_index: usize) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in response["candidates"][0]["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(t) = part.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(call) = part.get("functionCall") {
            let index = first_call_index + calls.len();
            calls.push(json!({
                "index": index,
                "id": format!("call_{index}"),
                "type": "function",
                "function": {"name": call["name"], "arguments": call.get("args").cloned().unwrap_or_else(|| json!({})).to_string()},
            }));
        }
    }
    (text, calls)
}

fn finish_of(response: &Value, has_calls: bool) -> Option<&'static str> {
    if response["promptFeedback"]["blockReason"].is_string() {
        return Some("content_filter");
    }
    let reason = response["candidates"][0]["finishReason"].as_str()?;
    Some(if has_calls && reason == "STOP" {
        "tool_calls"
    } else {
        gemini_finish_reason_to_finish_reason(reason)
    })
}

/// The pure response mapping: Gemini response → OpenAI chat.completion.
pub fn gemini_response_to_openai(
    response: &Value,
    public_model: &str,
    created: u64,
) -> (Value, Usage) {
    let (text, calls) = candidate_parts(response, 0);
    let usage = gemini_usage(&response["usageMetadata"]);
    let finish = finish_of(response, !calls.is_empty()).unwrap_or("stop");
    // A complete message's tool calls carry no stream `index`.
    let calls: Vec<Value> = calls
        .into_iter()
        .map(|mut c| {
            if let Some(o) = c.as_object_mut() {
                o.remove("index");
            }
            c
        })
        .collect();
    let id = format!(
        "chatcmpl-{}",
        response["responseId"].as_str().unwrap_or("gemini")
    );
    let completion = chat_completion(&id, created, public_model, text, calls, finish, &usage);
    (completion, usage)
}

/// Gemini stream responses → OpenAI chunk payloads.
pub struct GeminiStreamTranslator {
    writer: ChunkWriter,
    started: bool,
    calls: usize,
    /// The last `usageMetadata` seen (Gemini repeats it, growing).
    usage: Option<Usage>,
    finish: Option<&'static str>,
}

impl GeminiStreamTranslator {
    pub fn new(public_model: &str, created: u64, include_usage: bool) -> Self {
        Self {
            writer: ChunkWriter::new(
                "chatcmpl-gemini".into(),
                public_model,
                created,
                include_usage,
            ),
            started: false,
            calls: 0,
            usage: None,
            finish: None,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        self.writer.chunk(delta, finish)
    }

    /// OpenAI payloads for one Gemini stream response.
    pub fn on_response(&mut self, response: &Value) -> Vec<String> {
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
        if let Some(metadata) = response.get("usageMetadata") {
            self.usage = Some(gemini_usage(metadata));
        }
        let (text, calls) = candidate_parts(response, self.calls);
        if !text.is_empty() {
            out.push(self.chunk(json!({"content": text}), None));
        }
        if !calls.is_empty() {
            self.calls += calls.len();
            out.push(self.chunk(json!({"tool_calls": calls}), None));
        }
        if let Some(finish) = finish_of(response, self.calls > 0) {
            self.finish = Some(finish);
        }
        out
    }

    /// Final chunks once the upstream stream ended: finish, usage (none if
    /// Gemini sent no `usageMetadata`: the gateway then estimates), `[DONE]`.
    pub fn finish(&mut self) -> Vec<String> {
        self.writer
            .finish(self.finish.unwrap_or("stop"), self.usage.as_ref())
    }

    /// Whether a finish reason arrived (a stream that ends without one was cut).
    pub fn has_finished(&self) -> bool {
        self.finish.is_some()
    }
}

impl EventRewriter for GeminiStreamTranslator {
    fn on_event(&mut self, data: &str, out: &mut Vec<String>) {
        if let Ok(response) = serde_json::from_str::<Value>(data) {
            out.extend(self.on_response(&response));
        }
    }

    /// A stream without a finish reason was cut: no `[DONE]`, so the client
    /// gets the gateway's error event instead.
    fn on_end(&mut self, out: &mut Vec<String>) {
        if self.has_finished() {
            out.extend(self.finish());
        }
    }
}

/// Gemini errors (`{"error":{"code","message","status"}}`) → OpenAI-shaped:
/// 400/404/413 keep status and message, 429 keeps `Retry-After`, 503 stays
/// 503; authentication problems and other 5xx → 502.
async fn handle_gemini_error(
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
    let code = parsed["error"]["status"]
        .as_str()
        .unwrap_or("UNKNOWN")
        .to_lowercase();
    let (status, kind) = match status.as_u16() {
        400 | 404 | 413 => (status, "invalid_request_error"),
        429 => (status, "rate_limit_exceeded"),
        503 => (status, "upstream_overloaded"),
        _ => {
            return Err(GatewayError::UpstreamStatus {
                status,
                detail: String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
            })
        }
    };
    Ok(error_reply(status, &message, kind, &code, headers))
}

/// A POST of `body` to `models/{model}:{method}` with the API key.
fn gemini_post(
    deployment: &GeminiDeployment<'_>,
    method: &str,
    query: Option<&str>,
    body: Value,
    request_id: &str,
) -> Result<Request<Bytes>, GatewayError> {
    let uri = deployment
        .base
        .uri(
            &format!("/models/{}:{method}", deployment.upstream_model),
            query,
        )
        .map_err(|e| GatewayError::internal(format!("upstream uri: {e}")))?;
    let mut request = Request::new(Bytes::from(body.to_string()));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        "x-goog-api-key",
        HeaderValue::try_from(deployment.api_key.expose())
            .map_err(|_| GatewayError::internal("gemini key is not a header value"))?,
    );
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(crate::http::X_REQUEST_ID, id);
    }
    Ok(request)
}

pub async fn gemini_chat(
    http: &impl HttpClient,
    clock: &impl Clock,
    deployment: GeminiDeployment<'_>,
    chat: &ChatRequest,
    request_id: &str,
) -> Result<ProviderReply, GatewayError> {
    let body = gemini_request(chat)?;
    let (method, query) = if chat.stream {
        ("streamGenerateContent", Some("alt=sse"))
    } else {
        ("generateContent", None)
    };
    let request = gemini_post(&deployment, method, query, body, request_id)?;
    let result = with_timeout(clock, deployment.timeout, http.send(request)).await;
    let (parts, body) = upstream_error(result, deployment.timeout)?.into_parts();
    if !parts.status.is_success() {
        return handle_gemini_error(parts.status, &parts.headers, body).await;
    }
    let created = clock.now_unix_ms() / 1000;
    if chat.stream {
        let translator = GeminiStreamTranslator::new(&chat.model, created, chat.include_usage);
        return Ok(stream_reply::<_, SseDecoder>(body, translator));
    }
    let response = read_json(body, MAX_RESPONSE_BYTES, "response").await?;
    let (completion, usage) = gemini_response_to_openai(&response, &chat.model, created);
    Ok(completion_reply(&completion, usage))
}

/// The pure embeddings mapping: texts → a `batchEmbedContents` body.
pub fn gemini_embeddings_request(
    texts: &[String],
    upstream_model: &str,
    dimensions: Option<u64>,
) -> Value {
    let requests: Vec<Value> = texts
        .iter()
        .map(|text| {
            let mut request = json!({"model": format!("models/{upstream_model}"), "content": {"parts": [{"text": text}]}});
            if let Some(dimensions) = dimensions {
                request["outputDimensionality"] = json!(dimensions);
            }
            request
        })
        .collect();
    json!({"requests": requests})
}

/// `models/{model}:batchEmbedContents`
/// (<https://ai.google.dev/api/embeddings#method:-models.batchembedcontents>),
/// 100 texts per call.
/// Gemini reports no token usage for embeddings: it is estimated from the
/// texts (4 bytes per token) and logged as such.
pub async fn gemini_embeddings(
    http: &impl HttpClient,
    clock: &impl Clock,
    deployment: GeminiDeployment<'_>,
    request: &EmbeddingsRequest,
    request_id: &str,
) -> Result<ProviderReply, GatewayError> {
    let texts = request.texts("Gemini")?;
    let deployment = &deployment;
    // batchEmbedContents takes at most 100 requests; batches go out in
    // order, a few at a time, stopping at the first failure.
    let calls = texts.chunks(GEMINI_EMBED_BATCH).map(|batch| async move {
        let body = gemini_embeddings_request(batch, deployment.upstream_model, request.dimensions);
        let upstream = gemini_post(deployment, "batchEmbedContents", None, body, request_id)?;
        let result = with_timeout(clock, deployment.timeout, http.send(upstream)).await;
        let (parts, body) = upstream_error(result, deployment.timeout)?.into_parts();
        if !parts.status.is_success() {
            let reply = handle_gemini_error(parts.status, &parts.headers, body).await;
            return Err(CallStop::from_error_reply(reply));
        }
        let response = read_json(body, MAX_RESPONSE_BYTES, "embeddings response").await?;
        let vectors: Option<Vec<Vec<f32>>> = response["embeddings"]
            .as_array()
            .map(|all| all.iter().map(|e| vector_of(&e["values"])).collect())
            .unwrap_or(None);
        vectors.filter(|v| v.len() == batch.len()).ok_or_else(|| {
            CallStop::Failed(GatewayError::UpstreamInvalid {
                detail: "embeddings response without one vector per input".into(),
            })
        })
    });
    // Collected first: a lazy iterator's closure held across the await
    // below would make the future not `Send` (the Lambda runtime needs it).
    let calls: Vec<_> = calls.collect();
    let batches: Vec<Vec<Vec<f32>>> = match futures_util::stream::iter(calls)
        .buffered(GEMINI_EMBED_BATCHES_IN_FLIGHT)
        .try_collect()
        .await
    {
        Ok(batches) => batches,
        Err(stop) => return stop.into_reply(),
    };
    let vectors: Vec<Vec<f32>> = batches.into_iter().flatten().collect();
    // Estimated, not reported: the pipeline logs it as estimated.
    let usage = Usage::new(request.estimated_tokens(), 0);
    Ok(embeddings_reply(&vectors, request, usage, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::sse::SseDecoder;

    const RESPONSE_FUNCTION_CALL: &str =
        include_str!("../../../../tests/fixtures/gemini/response_function_call.json");
    const RESPONSE_BLOCKED: &str =
        include_str!("../../../../tests/fixtures/gemini/response_blocked.json");
    const STREAM_TEXT: &str = include_str!("../../../../tests/fixtures/gemini/stream_text.sse");

    fn chat(body: Value) -> ChatRequest {
        ChatRequest::parse(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn request_maps_system_roles_images_tools_results_and_json_mode() {
        let request = chat(json!({
            "model": "g", "max_tokens": 100, "top_p": 0.9, "stop": ["END"],
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_9", "content": "{\"temp\": 18}"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
                "$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": false,
                "properties": {"location": {"type": ["string", "null"], "default": "Paris"}}, "required": ["location"]}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
        }));
        let out = gemini_request(&request).unwrap();
        assert_eq!(out["systemInstruction"]["parts"][0]["text"], "Be brief.");
        assert_eq!(
            out["generationConfig"],
            json!({"maxOutputTokens": 100, "topP": 0.9, "stopSequences": ["END"], "responseMimeType": "application/json"})
        );
        let contents = out["contents"].as_array().unwrap();
        assert_eq!(
            contents[0]["parts"][1],
            json!({"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}})
        );
        assert_eq!(
            contents[1],
            json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}]})
        );
        assert_eq!(
            contents[2]["parts"][0],
            json!({"functionResponse": {"name": "get_weather", "response": {"temp": 18}}})
        );
        let parameters = &out["tools"][0]["functionDeclarations"][0]["parameters"];
        assert_eq!(
            parameters,
            &json!({"type": "object", "properties": {"location": {"type": "string", "nullable": true}}, "required": ["location"]})
        );
        assert_eq!(
            out["toolConfig"]["functionCallingConfig"],
            json!({"mode": "ANY", "allowedFunctionNames": ["get_weather"]})
        );
    }

    #[test]
    fn embeddings_request_names_the_model_per_text() {
        let texts = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(
            gemini_embeddings_request(&texts, "gemini-embedding-001", Some(768)),
            json!({"requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 768},
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 768},
            ]})
        );
    }

    #[test]
    fn unsupported_meanings_are_refused() {
        let err = gemini_request(&chat(
            json!({"model": "g", "n": 3, "messages": [{"role": "user", "content": "x"}]}),
        ))
        .unwrap_err();
        assert!(matches!(
            err,
            GatewayError::InvalidRequest {
                param: Some("n"),
                ..
            }
        ));
    }

    #[test]
    fn response_maps_function_calls_and_cached_usage() {
        let response: Value = serde_json::from_str(RESPONSE_FUNCTION_CALL).unwrap();
        let (completion, usage) = gemini_response_to_openai(&response, "gemini", 1);
        let choice = &completion["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Checking the weather.");
        assert_eq!(
            choice["message"]["tool_calls"][0]["function"]["name"],
            "get_weather"
        );
        assert_eq!(choice["message"]["tool_calls"][0]["id"], "call_0");
        assert!(choice["message"]["tool_calls"][0].get("index").is_none());
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 120,
                completion_tokens: 15,
                total_tokens: 135,
                cached_tokens: 40
            }
        );
    }

    #[test]
    fn blocked_prompts_finish_with_content_filter() {
        let response: Value = serde_json::from_str(RESPONSE_BLOCKED).unwrap();
        let (completion, _) = gemini_response_to_openai(&response, "gemini", 1);
        assert_eq!(completion["choices"][0]["finish_reason"], "content_filter");
    }

    #[test]
    fn stream_translates_text_finish_and_usage() {
        let mut translator = GeminiStreamTranslator::new("gemini", 1, true);
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        decoder.push(STREAM_TEXT.as_bytes(), |data| {
            out.extend(translator.on_response(&serde_json::from_str(data).unwrap()))
        });
        out.extend(translator.finish());
        assert_eq!(out.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<Value> = out[..out.len() - 1]
            .iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect();
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "The weather in Paris is mild.");
        assert_eq!(
            chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );
        assert_eq!(chunks[chunks.len() - 1]["usage"]["total_tokens"], 17);
    }

    #[test]
    fn errors_map_to_openai_statuses() {
        use futures_executor::block_on;
        let exhausted = r#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#;
        let ProviderReply::Complete { response, .. } = block_on(handle_gemini_error(
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            Body::from(exhausted),
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let invalid = r#"{"error":{"code":400,"message":"Invalid JSON payload","status":"INVALID_ARGUMENT"}}"#;
        let ProviderReply::Complete { response, .. } = block_on(handle_gemini_error(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            Body::from(invalid),
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let denied =
            r#"{"error":{"code":403,"message":"API key not valid","status":"PERMISSION_DENIED"}}"#;
        let err = block_on(handle_gemini_error(
            StatusCode::FORBIDDEN,
            &HeaderMap::new(),
            Body::from(denied),
        ))
        .err()
        .unwrap();
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
    }
}
