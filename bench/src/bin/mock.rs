//! A fast mock upstream for `scripts/bench`: answers OpenAI chat completions
//! (`POST …/chat/completions`) and Anthropic messages (`POST …/messages`),
//! complete or streamed (the request's `"stream": true`), with the wire
//! shapes of the real APIs and fixed usage, so every gateway under test does
//! its real parsing and translation work while the upstream costs next to
//! nothing. `GET …/models` lists one model.
//!
//! Shapes follow the API references: OpenAI "Create chat completion" (the
//! `chat.completion` object, `chat.completion.chunk` stream events ending
//! with a usage chunk and `data: [DONE]`) and Anthropic "Messages" /
//! "Streaming messages" (`message_start`, `content_block_*`,
//! `message_delta` with usage, `message_stop`).
//!
//! Usage: `bench-mock --listen 127.0.0.1:PORT [--chunks N] [--gap-ms MS]`.
//! A stream sends its first event at once, then `N` text deltas, `MS`
//! milliseconds apart (0: all at once), then the closing events.
//!
//! Written on hyper directly rather than reusing the tests crate's axum mocks:
//! those check requests and script misbehaviour; this one only has to be
//! cheaper than every target it is measured through.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

const OPENAI_MODEL: &str = "gpt-4o-mini-2024-07-18";
const ANTHROPIC_MODEL: &str = "claude-sonnet-4-5-20250929";
const WORDS: [&str; 8] = [
    "Hello", "!", " How", " can", " I", " help", " you", " today?",
];

#[derive(Clone, Copy)]
struct Settings {
    chunks: usize,
    gap: Duration,
}

/// A response body fed by a channel: one frame per streamed event.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|item| item.map(|b| Ok(Frame::data(b))))
    }
}

enum Reply {
    Full(Full<Bytes>),
    Stream(ChannelBody),
}

impl http_body::Body for Reply {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Reply::Full(body) => Pin::new(body).poll_frame(cx),
            Reply::Stream(body) => Pin::new(body).poll_frame(cx),
        }
    }
}

/// `"stream"` followed by `:` and `true`, whatever the spacing: the one
/// field the mock reads (clients serialise it as `"stream":true` or
/// `"stream": true`).
fn wants_stream(body: &[u8]) -> bool {
    let key = b"\"stream\"";
    let Some(at) = body.windows(key.len()).position(|w| w == key) else {
        return false;
    };
    let rest = body[at + key.len()..]
        .iter()
        .copied()
        .skip_while(|b| b.is_ascii_whitespace() || *b == b':')
        .take(4)
        .collect::<Vec<u8>>();
    rest == b"true"
}

fn openai_completion() -> String {
    let text: String = WORDS.concat();
    serde_json::json!({
        "id": "chatcmpl-bench0001",
        "object": "chat.completion",
        "created": 1_764_460_800,
        "model": OPENAI_MODEL,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": 24,
            "completion_tokens": 9,
            "total_tokens": 33,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_bench"
    })
    .to_string()
}

fn openai_chunk(delta: serde_json::Value, finish: Option<&str>) -> Bytes {
    let chunk = serde_json::json!({
        "id": "chatcmpl-bench0001",
        "object": "chat.completion.chunk",
        "created": 1_764_460_800,
        "model": OPENAI_MODEL,
        "service_tier": "default",
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
    });
    Bytes::from(format!("data: {chunk}\n\n"))
}

fn openai_stream(chunks: usize) -> (Bytes, Vec<Bytes>, Vec<Bytes>) {
    let first = openai_chunk(
        serde_json::json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    );
    let deltas = (0..chunks)
        .map(|i| openai_chunk(serde_json::json!({"content": WORDS[i % WORDS.len()]}), None))
        .collect();
    let usage = serde_json::json!({
        "id": "chatcmpl-bench0001",
        "object": "chat.completion.chunk",
        "created": 1_764_460_800,
        "model": OPENAI_MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [],
        "usage": {"prompt_tokens": 24, "completion_tokens": chunks, "total_tokens": 24 + chunks}
    });
    let closing = vec![
        openai_chunk(serde_json::json!({}), Some("stop")),
        Bytes::from(format!("data: {usage}\n\n")),
        Bytes::from_static(b"data: [DONE]\n\n"),
    ];
    (first, deltas, closing)
}

fn anthropic_message() -> String {
    serde_json::json!({
        "id": "msg_bench0001",
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_MODEL,
        "content": [{"type": "text", "text": WORDS.concat()}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {
            "input_tokens": 24,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 9,
            "service_tier": "standard"
        }
    })
    .to_string()
}

fn sse(event: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

fn anthropic_stream(chunks: usize) -> (Bytes, Vec<Bytes>, Vec<Bytes>) {
    let mut first = Vec::new();
    first.extend_from_slice(&sse(
        "message_start",
        &serde_json::json!({"type": "message_start", "message": {
            "id": "msg_bench0001", "type": "message", "role": "assistant",
            "model": ANTHROPIC_MODEL, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 24, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1, "service_tier": "standard"}
        }}),
    ));
    first.extend_from_slice(&sse(
        "content_block_start",
        &serde_json::json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ));
    first.extend_from_slice(&sse("ping", &serde_json::json!({"type": "ping"})));
    let deltas = (0..chunks)
        .map(|i| {
            sse(
                "content_block_delta",
                &serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": WORDS[i % WORDS.len()]}}),
            )
        })
        .collect();
    let closing = vec![
        sse(
            "content_block_stop",
            &serde_json::json!({"type": "content_block_stop", "index": 0}),
        ),
        sse(
            "message_delta",
            &serde_json::json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": chunks}}),
        ),
        sse("message_stop", &serde_json::json!({"type": "message_stop"})),
    ];
    (Bytes::from(first), deltas, closing)
}

fn json_response(status: u16, body: String) -> http::Response<Reply> {
    let mut response = http::Response::new(Reply::Full(Full::new(Bytes::from(body))));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn stream_response(
    settings: Settings,
    parts: (Bytes, Vec<Bytes>, Vec<Bytes>),
) -> http::Response<Reply> {
    let (first, deltas, closing) = parts;
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        if tx.send(first).await.is_err() {
            return;
        }
        for delta in deltas {
            if !settings.gap.is_zero() {
                tokio::time::sleep(settings.gap).await;
            }
            if tx.send(delta).await.is_err() {
                return;
            }
        }
        for event in closing {
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
    let mut response = http::Response::new(Reply::Stream(ChannelBody(rx)));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    response
}

async fn answer(
    settings: Settings,
    request: hyper::Request<Incoming>,
) -> Result<http::Response<Reply>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(json_response(400, r#"{"error":"unreadable body"}"#.into())),
    };
    let path = parts.uri.path();
    let stream = wants_stream(&body);
    let response = if parts.method == http::Method::GET && path.ends_with("/models") {
        json_response(
            200,
            serde_json::json!({"object": "list", "data": [{"id": OPENAI_MODEL, "object": "model", "created": 1_721_172_741, "owned_by": "system"}]}).to_string(),
        )
    } else if parts.method != http::Method::POST {
        json_response(405, r#"{"error":"method not allowed"}"#.into())
    } else if path.ends_with("/chat/completions") {
        if stream {
            stream_response(settings, openai_stream(settings.chunks))
        } else {
            json_response(200, openai_completion())
        }
    } else if path.ends_with("/messages") {
        if stream {
            stream_response(settings, anthropic_stream(settings.chunks))
        } else {
            json_response(200, anthropic_message())
        }
    } else {
        json_response(404, r#"{"error":"not found"}"#.into())
    };
    Ok(response)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let settings = Settings {
        chunks: arg(&args, "--chunks").map_or(Ok(8), |v| v.parse())?,
        gap: Duration::from_millis(arg(&args, "--gap-ms").map_or(Ok(0), |v| v.parse())?),
    };
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    // The bench reads the port from this line.
    println!("listening on {}", listener.local_addr()?);
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(settings, request));
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_flag_is_read_whatever_the_spacing() {
        assert!(wants_stream(br#"{"model":"m","stream":true}"#));
        assert!(wants_stream(br#"{"model": "m", "stream": true}"#));
        assert!(!wants_stream(br#"{"model":"m","stream":false}"#));
        assert!(!wants_stream(br#"{"model":"m"}"#));
    }

    #[test]
    fn stream_events_are_valid_json() {
        let (first, deltas, closing) = openai_stream(3);
        assert_eq!(deltas.len(), 3);
        for event in std::iter::once(&first).chain(&deltas).chain(&closing) {
            let text = std::str::from_utf8(event).unwrap_or_default();
            let data = text.trim().trim_start_matches("data: ");
            if data != "[DONE]" {
                assert!(
                    serde_json::from_str::<serde_json::Value>(data).is_ok(),
                    "{text}"
                );
            }
        }
    }
}
