//! The OpenAI endpoints beyond chat and embeddings, on the OpenAI mock
//! ([`crate::mocks`]), in the shapes of OpenAI's API reference:
//!
//! - `POST /v1/completions` — <https://platform.openai.com/docs/api-reference/completions/create>
//!   (a `text_completion`, or its chunks as SSE with `[DONE]` and, when
//!   asked for, a usage chunk without choices);
//! - `POST /v1/moderations` — <https://platform.openai.com/docs/api-reference/moderations/create>;
//! - `POST /v1/images/generations` — <https://platform.openai.com/docs/api-reference/images/create>
//!   (`n` images; `usage` in tokens for `gpt-image-*` models, as OpenAI
//!   reports for them);
//! - `POST /v1/audio/transcriptions` and `/v1/audio/translations` —
//!   <https://platform.openai.com/docs/api-reference/audio/createTranscription>
//!   (multipart in, `{"text", "usage"}` out);
//! - `POST /v1/audio/speech` — <https://platform.openai.com/docs/api-reference/audio/createSpeech>
//!   (binary audio, sent in [`SPEECH_CHUNKS`] chunks [`STREAM_CHUNK_DELAY`]
//!   apart, each send time recorded so a test can prove it was not
//!   buffered);
//! - Azure's deployment form of images and transcriptions.
//!
//! Every handler records what it received by `x-request-id`
//! ([`OpenAiMock::seen`]): the JSON body, or for a multipart body
//! `{"multipart_base64": …, "content_type": …}`, its exact bytes.

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use futures_util::stream;
use serde_json::{json, Value};

use crate::mocks::{mark_sent, record_seen, OpenAiMock, STREAM_CHUNK_DELAY};

/// The legacy completion's text, streamed one piece per chunk.
pub const COMPLETION_PIECES: [&str; 3] = ["This ", "is a ", "test."];
/// `usage` of every mock completion.
pub const COMPLETION_USAGE: (u64, u64) = (5, 7);
/// Chunks of the mock's speech reply, and the bytes of each.
pub const SPEECH_CHUNKS: usize = 5;
pub const SPEECH_CHUNK_BYTES: usize = 1024;
/// The transcription's text and token usage (`usage.type: tokens`).
pub const TRANSCRIPT: &str = "Bonjour, le monde.";
pub const TRANSCRIPTION_USAGE: (u64, u64) = (14, 45);

/// The mock's speech: chunk `i` is `SPEECH_CHUNK_BYTES` bytes counting up
/// from `i`, binary (every byte value occurs), so a test can compare it.
pub fn speech_chunk(index: usize) -> Vec<u8> {
    (0..SPEECH_CHUNK_BYTES)
        .map(|b| ((b + index) % 256) as u8)
        .collect()
}

/// The routes, merged into the OpenAI mock's router.
pub fn routes() -> Router<OpenAiMock> {
    Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/moderations", post(moderations))
        .route("/v1/images/generations", post(images))
        .route("/v1/audio/transcriptions", post(transcription))
        .route("/v1/audio/translations", post(transcription))
        .route("/v1/audio/speech", post(speech))
        .route(
            "/openai/deployments/{deployment}/images/generations",
            post(azure_images),
        )
        .route(
            "/openai/deployments/{deployment}/audio/transcriptions",
            post(azure_transcription),
        )
}

fn json_reply(body: &Value) -> Response {
    ([("content-type", "application/json")], body.to_string()).into_response()
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Records a JSON body; `None` (a 400 from the caller) when it is not JSON.
fn json_request(mock: &OpenAiMock, headers: &HeaderMap, body: &Bytes) -> Option<Value> {
    let request: Value = serde_json::from_slice(body).ok()?;
    record_seen(mock, headers, request.clone());
    Some(request)
}

fn not_json() -> Response {
    (StatusCode::BAD_REQUEST, "mock: body is not JSON").into_response()
}

async fn completions(State(mock): State<OpenAiMock>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(request) = json_request(&mock, &headers, &body) else {
        return not_json();
    };
    let model = request["model"].clone();
    let (prompt, completion) = COMPLETION_USAGE;
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
    let id = "cmpl-mockupstream";
    let chunk = |text: &str, finish: Value| {
        json!({"id": id, "object": "text_completion", "created": 1_735_689_600, "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}]})
    };
    if request["stream"] != json!(true) {
        let mut reply = chunk(&COMPLETION_PIECES.concat(), json!("length"));
        reply["usage"] = usage;
        return json_reply(&reply);
    }
    let mut events: Vec<Value> = COMPLETION_PIECES
        .iter()
        .map(|piece| chunk(piece, Value::Null))
        .collect();
    events.push(chunk("", json!("length")));
    if request["stream_options"]["include_usage"] == json!(true) {
        let mut last = chunk("", Value::Null);
        last["choices"] = json!([]);
        last["usage"] = usage;
        events.push(last);
    }
    let mut frames: Vec<Bytes> = events
        .iter()
        .map(|e| Bytes::from(format!("data: {e}\n\n")))
        .collect();
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    paced(&mock, request_id(&headers), frames, "text/event-stream")
}

async fn moderations(State(mock): State<OpenAiMock>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(request) = json_request(&mock, &headers, &body) else {
        return not_json();
    };
    let flagged = request["input"]
        .as_str()
        .is_some_and(|i| i.contains("kill"));
    json_reply(&json!({
        "id": "modr-mock", "model": request["model"],
        "results": [{"flagged": flagged, "categories": {"violence": flagged}, "category_scores": {"violence": if flagged { 0.9 } else { 0.01 }}}],
    }))
}

async fn images(State(mock): State<OpenAiMock>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(request) = json_request(&mock, &headers, &body) else {
        return not_json();
    };
    let n = request["n"].as_u64().unwrap_or(1);
    let data: Vec<Value> = (0..n)
        .map(|i| json!({"url": format!("https://images.mock/{i}.png"), "revised_prompt": request["prompt"]}))
        .collect();
    let mut reply = json!({"created": 1_735_689_600, "data": data});
    if request["model"]
        .as_str()
        .is_some_and(|m| m.starts_with("gpt-image"))
    {
        reply["usage"] = json!({"total_tokens": 100, "input_tokens": 50, "output_tokens": 50,
            "input_tokens_details": {"text_tokens": 50, "image_tokens": 0}});
    }
    json_reply(&reply)
}

async fn transcription(
    State(mock): State<OpenAiMock>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !content_type.starts_with("multipart/form-data") {
        return (StatusCode::BAD_REQUEST, "mock: not multipart").into_response();
    }
    let seen = json!({
        "multipart_base64": base64::engine::general_purpose::STANDARD.encode(&body),
        "content_type": content_type,
    });
    record_seen(&mock, &headers, seen);
    let (input, output) = TRANSCRIPTION_USAGE;
    json_reply(&json!({
        "text": TRANSCRIPT,
        "usage": {"type": "tokens", "input_tokens": input, "output_tokens": output, "total_tokens": input + output},
    }))
}

async fn speech(State(mock): State<OpenAiMock>, headers: HeaderMap, body: Bytes) -> Response {
    if json_request(&mock, &headers, &body).is_none() {
        return not_json();
    }
    let chunks = (0..SPEECH_CHUNKS)
        .map(|i| Bytes::from(speech_chunk(i)))
        .collect();
    paced(&mock, request_id(&headers), chunks, "audio/mpeg")
}

/// `chunks` sent [`STREAM_CHUNK_DELAY`] apart, each send time recorded.
fn paced(
    mock: &OpenAiMock,
    request_id: String,
    chunks: Vec<Bytes>,
    content_type: &'static str,
) -> Response {
    let mock = mock.clone();
    let body = stream::unfold((chunks.into_iter(), 0usize), move |(mut chunks, index)| {
        let (mock, request_id) = (mock.clone(), request_id.clone());
        async move {
            if index > 0 {
                tokio::time::sleep(STREAM_CHUNK_DELAY).await;
            }
            let chunk = chunks.next()?;
            mark_sent(&mock, &request_id);
            Some((Ok::<_, std::io::Error>(chunk), (chunks, index + 1)))
        }
    });
    Response::builder()
        .header("content-type", content_type)
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Azure's deployment URL form: `api-key` and `api-version` required.
fn azure_refusal(query: Option<&str>, headers: &HeaderMap) -> Option<Response> {
    let has_version = query.is_some_and(|q| q.contains("api-version="));
    if has_version && headers.get("api-key").is_some() && headers.get("authorization").is_none() {
        return None;
    }
    let error = json!({"error": {"code": "401", "message": "Access denied: api-key and api-version are required"}});
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            error.to_string(),
        )
            .into_response(),
    )
}

async fn azure_images(
    state: State<OpenAiMock>,
    Path(deployment): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = azure_refusal(query.as_deref(), &headers) {
        return refusal;
    }
    let mut request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    request["_deployment"] = json!(deployment);
    images(state, headers, Bytes::from(request.to_string())).await
}

async fn azure_transcription(
    state: State<OpenAiMock>,
    Path(_deployment): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = azure_refusal(query.as_deref(), &headers) {
        return refusal;
    }
    transcription(state, headers, body).await
}
