//! Mock upstreams on 127.0.0.1, started in the test process:
//!
//! - a REST echo server: answers any request with a JSON description of what
//!   it received (method, path, query, headers, body); `/slow` waits first;
//! - an OpenAI-compatible server: `POST /v1/chat/completions`, streamed or
//!   not, in the shapes of <https://platform.openai.com/docs/api-reference/chat/create>
//!   and <https://platform.openai.com/docs/api-reference/chat-streaming>. It
//!   records when it sent each streamed chunk, keyed by `x-request-id`, so a
//!   test can prove the client saw the first chunk before the last was sent.
//!
//! - provider mocks for Anthropic, Gemini, Azure and Bedrock
//!   ([`crate::bedrock_mock`]) on the same server;
//! - OpenAI's other endpoints (legacy completions, moderations, images,
//!   audio): [`crate::endpoints_mock`].
//!
//! The upstream model id selects a behaviour: `mock-429` answers 429 with
//! `Retry-After`, `mock-cut` breaks the stream after two chunks, `adv-*`
//! are the adversarial billing upstreams of [`crate::adversary`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use futures_util::stream;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// Chunks of content in a streamed mock completion.
pub const STREAM_CONTENT_CHUNKS: usize = 5;
/// Pause between streamed chunks.
pub const STREAM_CHUNK_DELAY: Duration = Duration::from_millis(250);
/// The words the OpenAI mock streams (and returns whole when not streaming).
pub const MOCK_WORDS: [&str; STREAM_CONTENT_CHUNKS] =
    ["Streaming ", "from ", "the ", "upstream ", "mock."];
/// How long `/slow` on the echo server waits before answering.
pub const SLOW_DELAY: Duration = Duration::from_secs(3);

/// What the OpenAI mock saw of one request.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
struct OpenAiState {
    /// The JWKS document served at `/jwks.json` (the mock identity provider).
    jwks: String,
    /// x-request-id → instants at which each SSE event was handed to hyper.
    sent_at: HashMap<String, Vec<Instant>>,
    /// x-request-id → the request as received.
    seen: HashMap<String, SeenRequest>,
    /// x-request-id → tokens an adversarial upstream billed
    /// ([`crate::adversary`]).
    billed: HashMap<String, u64>,
}

/// Handle on the running OpenAI mock.
#[derive(Clone)]
pub struct OpenAiMock {
    pub addr: SocketAddr,
    state: Arc<Mutex<OpenAiState>>,
}

impl OpenAiMock {
    /// Base URL to configure as the provider's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn sent_at(&self, request_id: &str) -> Vec<Instant> {
        lock(&self.state)
            .sent_at
            .get(request_id)
            .cloned()
            .unwrap_or_default()
    }

    pub fn seen(&self, request_id: &str) -> Option<SeenRequest> {
        lock(&self.state).seen.get(request_id).cloned()
    }

    /// Tokens billed so far for `request_id` by an adversarial model.
    pub fn billed(&self, request_id: &str) -> u64 {
        lock(&self.state)
            .billed
            .get(request_id)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn bill(&self, request_id: &str, tokens: u64) {
        *lock(&self.state)
            .billed
            .entry(request_id.to_owned())
            .or_default() += tokens;
    }

    /// URL of the JWKS document this mock serves as an identity provider.
    pub fn jwks_url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    /// Replaces the served JWKS document (key rotation).
    pub fn set_jwks(&self, document: String) {
        lock(&self.state).jwks = document;
    }
}

/// Records a request a provider mock received, keyed by `x-request-id`.
pub(crate) fn record_seen(mock: &OpenAiMock, headers: &HeaderMap, body: Value) {
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    lock(&mock.state).seen.insert(
        request_id,
        SeenRequest {
            headers: headers.clone(),
            body,
        },
    );
}

/// Records that a chunk of `request_id`'s streamed reply was handed to
/// hyper now ([`OpenAiMock::sent_at`]).
pub(crate) fn mark_sent(mock: &OpenAiMock, request_id: &str) {
    lock(&mock.state)
        .sent_at
        .entry(request_id.to_owned())
        .or_default()
        .push(Instant::now());
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).await
}

/// Starts the OpenAI mock on `port` (0 = any free port).
pub async fn start_openai_mock(port: u16) -> std::io::Result<OpenAiMock> {
    let listener = bind(port).await?;
    let mock = OpenAiMock {
        addr: listener.local_addr()?,
        state: Arc::default(),
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(azure_embeddings),
        )
        .route("/jwks.json", axum::routing::get(jwks))
        .route("/v1/responses", post(crate::responses_mock::responses))
        .route(
            "/openai/v1/responses",
            post(crate::responses_mock::azure_responses),
        )
        .route("/v1/messages", post(anthropic_messages))
        .route("/v1/messages/count_tokens", post(anthropic_count_tokens))
        .route("/v1beta/models/{*model_and_method}", post(gemini_generate))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure_chat_completions),
        )
        .route(
            "/model/{model}/{action}",
            post(crate::bedrock_mock::bedrock_model),
        )
        .merge(crate::endpoints_mock::routes())
        .with_state(mock.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(mock)
}

/// Azure OpenAI's deployment URL form
/// (<https://learn.microsoft.com/azure/ai-services/openai/reference>): needs
/// `api-key` and `api-version`, then answers like OpenAI.
async fn azure_chat_completions(
    state: State<OpenAiMock>,
    axum::extract::Path(deployment): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let has_version = query.as_deref().is_some_and(|q| q.contains("api-version="));
    if !has_version || headers.get("api-key").is_none() || headers.get("authorization").is_some() {
        let error = json!({"error": {"code": "401", "message": "Access denied: api-key and api-version are required"}});
        return (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            error.to_string(),
        )
            .into_response();
    }
    let mut request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    request["model"] = Value::String(format!("azure:{deployment}"));
    chat_completions(state, headers, Bytes::from(request.to_string())).await
}

/// The mock's embedding of `text`: `[bytes, 0.5, -0.25, index]`, so a test
/// can tell which vector belongs to which input.
pub fn mock_vector(text: &str, index: usize) -> Vec<f32> {
    vec![text.len() as f32, 0.5, -0.25, index as f32]
}

/// OpenAI embeddings (<https://platform.openai.com/docs/api-reference/embeddings/create>):
/// floats, or base64 of little-endian f32 when `encoding_format: base64`;
/// usage 3 tokens per input.
async fn embeddings(State(mock): State<OpenAiMock>, headers: HeaderMap, body: Bytes) -> Response {
    use base64::Engine;
    let Ok(request): Result<Value, _> = serde_json::from_slice(&body) else {
        return (StatusCode::BAD_REQUEST, "mock: body is not JSON").into_response();
    };
    record_seen(&mock, &headers, request.clone());
    let inputs: Vec<String> = match &request["input"] {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect(),
        _ => return (StatusCode::BAD_REQUEST, "mock: bad input").into_response(),
    };
    let base64 = request["encoding_format"] == "base64";
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let vector = mock_vector(text, index);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens = 3 * inputs.len();
    let body = json!({"object": "list", "data": data, "model": request["model"], "usage": {"prompt_tokens": tokens, "total_tokens": tokens}});
    ([("content-type", "application/json")], body.to_string()).into_response()
}

/// Azure's deployment form of embeddings: `api-key` and `api-version` required.
async fn azure_embeddings(
    state: State<OpenAiMock>,
    axum::extract::Path(deployment): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let has_version = query.as_deref().is_some_and(|q| q.contains("api-version="));
    if !has_version || headers.get("api-key").is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            json!({"error": {"code": "401", "message": "Access denied"}}).to_string(),
        )
            .into_response();
    }
    let mut request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    request["model"] = Value::String(format!("azure:{deployment}"));
    embeddings(state, headers, Bytes::from(request.to_string())).await
}

/// Words of the Gemini mock's text reply.
pub const GEMINI_WORDS: [&str; 3] = ["Hello ", "from ", "Gemini mock."];

/// Gemini API mock (<https://ai.google.dev/api/generate-content>):
/// `models/{model}:generateContent` and `:streamGenerateContent?alt=sse`,
/// key in `x-goog-api-key`. Answers with a `functionCall` when tools are
/// offered and the last part is not a function response; model `gemini-429`
/// answers 429 RESOURCE_EXHAUSTED.
async fn gemini_generate(
    State(mock): State<OpenAiMock>,
    axum::extract::Path(model_and_method): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error = |status: StatusCode, code: &str, message: &str| {
        let body = json!({"error": {"code": status.as_u16(), "message": message, "status": code}});
        (
            status,
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response()
    };
    let Some((model, method)) = model_and_method.split_once(':') else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "unknown method");
    };
    if headers.get("x-goog-api-key").is_none() {
        return error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "API key not valid",
        );
    }
    let Ok(request): Result<Value, _> = serde_json::from_slice(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Invalid JSON payload",
        );
    };
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut seen = request.clone();
    seen["_model"] = json!(model);
    lock(&mock.state).seen.insert(
        request_id,
        SeenRequest {
            headers: headers.clone(),
            body: seen,
        },
    );
    if method == "batchEmbedContents" {
        let embeddings: Vec<Value> = request["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(index, r)| json!({"values": mock_vector(r["content"]["parts"][0]["text"].as_str().unwrap_or_default(), index)}))
            .collect();
        return (
            [("content-type", "application/json")],
            json!({"embeddings": embeddings}).to_string(),
        )
            .into_response();
    }
    if model == "gemini-429" {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted",
        );
    }
    let last_is_response = request["contents"]
        .as_array()
        .and_then(|c| c.last())
        .is_some_and(|c| {
            c["parts"]
                .as_array()
                .is_some_and(|parts| parts.iter().any(|p| p.get("functionResponse").is_some()))
        });
    let tool = request["tools"][0]["functionDeclarations"][0]["name"]
        .as_str()
        .filter(|_| !last_is_response)
        .map(str::to_owned);
    let usage = json!({"promptTokenCount": 14, "candidatesTokenCount": 6, "totalTokenCount": 20, "cachedContentTokenCount": 4});
    let response = |parts: Value, finish: Option<&str>, usage: &Value| {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(finish) = finish {
            candidate["finishReason"] = json!(finish);
        }
        json!({"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": "resp-mock"})
    };
    let call = tool
        .as_ref()
        .map(|name| json!({"functionCall": {"name": name, "args": {"location": "Paris"}}}));
    if method == "generateContent" {
        let mut parts = vec![json!({"text": GEMINI_WORDS.concat()})];
        parts.extend(call);
        return (
            [("content-type", "application/json")],
            response(json!(parts), Some("STOP"), &usage).to_string(),
        )
            .into_response();
    }
    if method != "streamGenerateContent" || !query.as_deref().is_some_and(|q| q.contains("alt=sse"))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "streaming needs alt=sse",
        );
    }
    let partial = json!({"promptTokenCount": 14, "totalTokenCount": 14});
    let mut events: Vec<Value> = GEMINI_WORDS
        .iter()
        .map(|w| response(json!([{"text": w}]), None, &partial))
        .collect();
    let mut last_parts = vec![json!({"text": ""})];
    last_parts.extend(call);
    events.push(response(json!(last_parts), Some("STOP"), &usage));
    let body = stream::unfold(events.into_iter(), |mut events| async move {
        let next = events.next()?;
        tokio::time::sleep(Duration::from_millis(60)).await;
        Some((
            Ok::<_, std::io::Error>(Bytes::from(format!("data: {next}\r\n\r\n"))),
            events,
        ))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Words of the Anthropic mock's text reply.
pub const ANTHROPIC_WORDS: [&str; 4] = ["Hello ", "from ", "Anthropic ", "mock."];

/// Anthropic's token counting
/// (<https://docs.anthropic.com/en/api/messages-count-tokens>): its own count,
/// the request's size at 3 bytes a token (not the gateway's estimate, so a
/// test sees which one answered); needs the key and version, refuses
/// `max_tokens` as the real API does.
async fn anthropic_count_tokens(headers: HeaderMap, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if headers.get("anthropic-version").is_none()
        || headers.get("x-api-key").is_none()
        || request.get("max_tokens").is_some()
    {
        let error = json!({"type": "error", "error": {"type": "invalid_request_error", "message": "bad count_tokens request"}});
        return (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            error.to_string(),
        )
            .into_response();
    }
    let tokens = (body.len() as u64).div_ceil(3);
    (
        [("content-type", "application/json")],
        json!({"input_tokens": tokens}).to_string(),
    )
        .into_response()
}

/// Anthropic Messages API mock (<https://docs.anthropic.com/en/api/messages>,
/// streaming per <https://docs.anthropic.com/en/api/messages-streaming>).
/// Answers with a `tool_use` block when tools are offered and the last turn
/// is not a tool result; model `anthropic-529` answers 529 overloaded.
async fn anthropic_messages(
    State(mock): State<OpenAiMock>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(request): Result<Value, _> = serde_json::from_slice(&body) else {
        return (StatusCode::BAD_REQUEST, "mock: body is not JSON").into_response();
    };
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    lock(&mock.state).seen.insert(
        request_id,
        SeenRequest {
            headers: headers.clone(),
            body: request.clone(),
        },
    );
    let error = |status: u16, kind: &str, message: &str| {
        let body = json!({"type": "error", "error": {"type": kind, "message": message}});
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response()
    };
    if headers.get("anthropic-version").is_none() || headers.get("x-api-key").is_none() {
        return error(
            401,
            "authentication_error",
            "missing x-api-key or anthropic-version",
        );
    }
    if request["max_tokens"].as_u64().is_none() {
        return error(400, "invalid_request_error", "max_tokens: Field required");
    }
    let model = request["model"].as_str().unwrap_or_default().to_owned();
    if model == "agent-bash" {
        return crate::agent_mock::anthropic(&request);
    }
    if model == "anthropic-529" {
        return error(529, "overloaded_error", "Overloaded");
    }
    let last_is_tool_result = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .is_some_and(|m| {
            m["content"]
                .as_array()
                .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"))
        });
    let tool = request["tools"][0]["name"]
        .as_str()
        .filter(|_| !last_is_tool_result)
        .map(str::to_owned);
    let usage = json!({"input_tokens": 20, "output_tokens": 12, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 0});
    let id = "msg_mock01";
    if request["stream"] != Value::Bool(true) {
        let mut content = vec![json!({"type": "text", "text": ANTHROPIC_WORDS.concat()})];
        if let Some(name) = &tool {
            content.push(json!({"type": "tool_use", "id": "toolu_mock01", "name": name, "input": {"location": "Paris"}}));
        }
        let body = json!({
            "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": if tool.is_some() { "tool_use" } else { "end_turn" }, "stop_sequence": null, "usage": usage,
        });
        return ([("content-type", "application/json")], body.to_string()).into_response();
    }
    let event = |name: &str, data: Value| Bytes::from(format!("event: {name}\ndata: {data}\n\n"));
    let mut events = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 20, "output_tokens": 1, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 0}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", json!({"type": "ping"})),
    ];
    for word in ANTHROPIC_WORDS {
        events.push(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}})));
    }
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    if let Some(name) = &tool {
        events.push(event("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_mock01", "name": name, "input": {}}})));
        for part in ["{\"locat", "ion\": \"Par", "is\"}"] {
            events.push(event("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": part}})));
        }
        events.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ));
    }
    events.push(event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": if tool.is_some() { "tool_use" } else { "end_turn" }, "stop_sequence": null}, "usage": {"output_tokens": 12}})));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    let body = stream::unfold(events.into_iter(), |mut events| async move {
        let next = events.next()?;
        tokio::time::sleep(Duration::from_millis(40)).await;
        Some((Ok::<_, std::io::Error>(next), events))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn jwks(State(mock): State<OpenAiMock>) -> Response {
    let document = lock(&mock.state).jwks.clone();
    let document = if document.is_empty() {
        r#"{"keys":[]}"#.to_owned()
    } else {
        document
    };
    ([("content-type", "application/json")], document).into_response()
}

fn chunk(id: &str, model: &str, delta: Value, finish: Option<&str>) -> Bytes {
    let event = json!({
        "id": id, "object": "chat.completion.chunk", "created": 1_735_689_600, "model": model,
        "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    });
    Bytes::from(format!("data: {event}\n\n"))
}

async fn chat_completions(
    State(mock): State<OpenAiMock>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(request): Result<Value, _> = serde_json::from_slice(&body) else {
        return (StatusCode::BAD_REQUEST, "mock: body is not JSON").into_response();
    };
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    lock(&mock.state).seen.insert(
        request_id.clone(),
        SeenRequest {
            headers: headers.clone(),
            body: request.clone(),
        },
    );
    let model = request["model"].as_str().unwrap_or_default().to_owned();
    if model.starts_with("adv-") {
        return crate::adversary::chat(&mock, request_id, &request);
    }
    if model == "agent-bash" {
        return crate::agent_mock::openai(&request);
    }
    if model == "mock-429" {
        let error = json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "param": null, "code": "rate_limit_exceeded"}});
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "3"), ("content-type", "application/json")],
            error.to_string(),
        )
            .into_response();
    }
    let id = "chatcmpl-mockupstream";
    let usage = json!({"prompt_tokens": 11, "completion_tokens": STREAM_CONTENT_CHUNKS, "total_tokens": 11 + STREAM_CONTENT_CHUNKS});
    // Tools offered and no tool result last: call the first tool.
    let tool = request["tools"][0]["function"]["name"]
        .as_str()
        .filter(|_| {
            request["messages"]
                .as_array()
                .and_then(|m| m.last())
                .is_some_and(|m| m["role"] != "tool")
        });
    if request["stream"] != Value::Bool(true) {
        let (message, finish) = match tool {
            Some(name) => (
                json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [{"id": "call_mock01", "type": "function", "function": {"name": name, "arguments": "{\"location\": \"Paris\"}"}}]}),
                "tool_calls",
            ),
            None => (
                json!({"role": "assistant", "content": MOCK_WORDS.concat(), "refusal": null}),
                "stop",
            ),
        };
        let body = json!({
            "id": id, "object": "chat.completion", "created": 1_735_689_600, "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": usage,
        });
        return ([("content-type", "application/json")], body.to_string()).into_response();
    }

    let include_usage = request["stream_options"]["include_usage"] == Value::Bool(true);
    let cut = model == "mock-cut";
    let mut events = vec![chunk(
        id,
        &model,
        json!({"role": "assistant", "content": ""}),
        None,
    )];
    match tool {
        // A streamed tool call: the name first, then the arguments in parts.
        Some(name) => {
            events.push(chunk(id, &model, json!({"tool_calls": [{"index": 0, "id": "call_mock01", "type": "function", "function": {"name": name, "arguments": ""}}]}), None));
            for part in ["{\"locat", "ion\": \"Par", "is\"}"] {
                events.push(chunk(
                    id,
                    &model,
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}),
                    None,
                ));
            }
            events.push(chunk(id, &model, json!({}), Some("tool_calls")));
        }
        None => {
            events.extend(
                MOCK_WORDS
                    .iter()
                    .map(|w| chunk(id, &model, json!({"content": w}), None)),
            );
            events.push(chunk(id, &model, json!({}), Some("stop")));
        }
    }
    if include_usage {
        let event = json!({"id": id, "object": "chat.completion.chunk", "created": 1_735_689_600, "model": model, "choices": [], "usage": usage});
        events.push(Bytes::from(format!("data: {event}\n\n")));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    if cut {
        events.truncate(2);
    }

    let state = mock.state.clone();
    let body = stream::unfold((events.into_iter(), 0usize), move |(mut events, index)| {
        let state = state.clone();
        let request_id = request_id.clone();
        async move {
            if index > 0 {
                tokio::time::sleep(STREAM_CHUNK_DELAY).await;
            }
            let Some(event) = events.next() else {
                if cut {
                    // Break the connection instead of ending the stream.
                    return Some((
                        Err(std::io::Error::other("mock: stream cut")),
                        (events, index + 1),
                    ));
                }
                return None;
            };
            lock(&state)
                .sent_at
                .entry(request_id)
                .or_default()
                .push(Instant::now());
            Some((Ok::<_, std::io::Error>(event), (events, index + 1)))
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Handle on the running echo server.
#[derive(Clone, Debug)]
pub struct EchoServer {
    pub addr: SocketAddr,
}

impl EchoServer {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Starts the REST echo server on `port` (0 = any free port).
pub async fn start_echo_server(port: u16) -> std::io::Result<EchoServer> {
    let listener = bind(port).await?;
    let server = EchoServer {
        addr: listener.local_addr()?,
    };
    let app = Router::new().fallback(any(echo));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(server)
}

async fn echo(request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if parts.uri.path() == "/slow" {
        tokio::time::sleep(SLOW_DELAY).await;
    }
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                Value::String(value.to_str().unwrap_or("<binary>").to_owned()),
            )
        })
        .collect();
    let description = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    Response::builder()
        .header("content-type", "application/json")
        .header("x-echo-server", "1")
        // Hop-by-hop headers the gateway must not relay to its client.
        .header("connection", "x-upstream-hop")
        .header("x-upstream-hop", "must-not-reach-client")
        .body(Body::from(description.to_string()))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A 127.0.0.1 port with nothing listening (bound, then released).
pub async fn closed_port() -> std::io::Result<u16> {
    let listener = bind(0).await?;
    let port = listener.local_addr()?.port();
    drop(listener);
    Ok(port)
}
