//! Adversarial OpenAI-compatible upstreams, selected by upstream model id on
//! the OpenAI mock's `/v1/chat/completions`, for budget tests that can fail.
//!
//! They bill like a real provider, independently of the gateway: prompt
//! tokens are their own count of the text and `tools` (4 bytes a token,
//! without the gateway's per-message framing), completion tokens are what
//! they generate — `max_completion_tokens` / `max_tokens` per choice when
//! sent, else [`RAMBLE`] (a model that is not stopped talks on), times `n`.
//! Every request's bill is kept in a ledger by `x-request-id`, so a test can
//! compare the gateway's counter with what the provider charged.
//!
//! - `adv-honest`: reports its bill as `usage`.
//! - `adv-overreport`: bills and reports three times its prompt count (a
//!   tokenizer that disagrees with the gateway's estimate).
//! - `adv-silent`: bills but reports no `usage` (not even in streams that
//!   asked for it).
//! - `adv-stall`: headers (and, streaming, one chunk), then nothing.
//!
//! Streams bill as they go: a client that disconnects is billed the prompt
//! and the chunks written before the disconnect (what OpenAI documents for
//! cancelled streams).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde_json::{json, Value};

use crate::mocks::OpenAiMock;

/// Tokens generated per choice when nothing limits the completion.
pub const RAMBLE: u64 = 1000;
/// Completion tokens per streamed chunk.
const TOKENS_PER_CHUNK: u64 = 50;

/// The provider's own prompt count: the text of every message and the tools.
fn prompt_tokens(request: &Value) -> u64 {
    let text: u64 = request["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| match &m["content"] {
                    Value::String(s) => s.len() as u64,
                    Value::Array(parts) => parts
                        .iter()
                        .filter_map(|p| p["text"].as_str())
                        .map(|t| t.len() as u64)
                        .sum(),
                    _ => 0,
                })
                .map(|bytes| bytes.div_ceil(4))
                .sum()
        })
        .unwrap_or(0);
    let tools = match &request["tools"] {
        Value::Null => 0,
        tools => (tools.to_string().len() as u64).div_ceil(4),
    };
    text + tools
}

/// Answers a chat completion for an `adv-*` model.
pub(crate) fn chat(mock: &OpenAiMock, request_id: String, request: &Value) -> Response {
    let model = request["model"].as_str().unwrap_or_default().to_owned();
    let choices = request["n"].as_u64().unwrap_or(1);
    let per_choice = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| request[*k].as_u64())
        .unwrap_or(RAMBLE)
        .min(RAMBLE);
    let prompt = match model.as_str() {
        "adv-overreport" => 3 * prompt_tokens(request),
        _ => prompt_tokens(request),
    };
    let completion = per_choice * choices;
    let reports_usage = matches!(model.as_str(), "adv-honest" | "adv-overreport");
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
    let stream = request["stream"] == true;

    if model == "adv-stall" {
        mock.bill(&request_id, prompt);
        let first = chunk(
            &model,
            json!({"role": "assistant", "content": "tok "}),
            None,
        );
        let chunks = if stream {
            vec![Ok::<_, std::io::Error>(first)]
        } else {
            Vec::new()
        };
        let stalled = stream::StreamExt::chain(stream::iter(chunks), stream::pending());
        let content_type = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        return Response::builder()
            .header("content-type", content_type)
            .body(Body::from_stream(stalled))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }

    if !stream {
        mock.bill(&request_id, prompt + completion);
        let text = "tok ".repeat(per_choice as usize);
        let mut body = json!({
            "id": "chatcmpl-adversary", "object": "chat.completion", "created": 1_735_689_600,
            "model": model,
            "choices": (0..choices).map(|i| json!({"index": i, "finish_reason": "length",
                "message": {"role": "assistant", "content": text, "refusal": null}})).collect::<Vec<_>>(),
        });
        if reports_usage {
            body["usage"] = usage;
        }
        return ([("content-type", "application/json")], body.to_string()).into_response();
    }

    // Streamed: the prompt is billed up front, each chunk as it is written.
    mock.bill(&request_id, prompt);
    let mut steps: Vec<Step> = (0..completion.div_ceil(TOKENS_PER_CHUNK))
        .map(|i| Step::Tokens(TOKENS_PER_CHUNK.min(completion - i * TOKENS_PER_CHUNK)))
        .collect();
    steps.push(Step::Finish);
    if request["stream_options"]["include_usage"] == true && reports_usage {
        steps.push(Step::Usage);
    }
    steps.push(Step::Done);
    let mock = mock.clone();
    let events = stream::unfold(steps.into_iter(), move |mut steps| {
        let (mock, request_id, model, usage) = (
            mock.clone(),
            request_id.clone(),
            model.clone(),
            usage.clone(),
        );
        async move {
            let event = match steps.next()? {
                Step::Tokens(tokens) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    mock.bill(&request_id, tokens);
                    chunk(
                        &model,
                        json!({"content": "tok ".repeat(tokens as usize)}),
                        None,
                    )
                }
                Step::Finish => chunk(&model, json!({}), Some("length")),
                Step::Usage => {
                    let event = json!({"id": "chatcmpl-adversary", "object": "chat.completion.chunk",
                        "created": 1_735_689_600, "model": model, "choices": [], "usage": usage});
                    Bytes::from(format!("data: {event}\n\n"))
                }
                Step::Done => Bytes::from_static(b"data: [DONE]\n\n"),
            };
            Some((Ok::<_, std::io::Error>(event), steps))
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(events))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

enum Step {
    Tokens(u64),
    Finish,
    Usage,
    Done,
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> Bytes {
    let event = json!({
        "id": "chatcmpl-adversary", "object": "chat.completion.chunk", "created": 1_735_689_600,
        "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    Bytes::from(format!("data: {event}\n\n"))
}
