//! The built-in `mock` provider: deterministic OpenAI-shaped replies with no
//! network and no key, so the gateway runs locally out of the box.
//!
//! The reply echoes the last user message. Usage counts tokens with
//! [`estimate_tokens`] (4 bytes per token), so it is reproducible; `max_tokens`
//! (or `max_completion_tokens`) truncates the reply and sets
//! `finish_reason: "length"`. With `stream: true` the reply is sent word by
//! word as `chat.completion.chunk` events, `stream_delay` apart, with a usage
//! chunk when `stream_options.include_usage` is set — the shapes of
//! <https://platform.openai.com/docs/api-reference/chat/object> and
//! <https://platform.openai.com/docs/api-reference/chat-streaming>.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http::StatusCode;
use serde_json::{json, Value};

use super::super::embeddings::EmbeddingsRequest;
use super::super::usage::{content_text, estimate_prompt_tokens, estimate_tokens, Usage};
use super::super::ChatRequest;
use super::{embeddings_reply, json_response, sse_response, ProviderReply};
use crate::body::{Body, BodyError};
use crate::error::GatewayError;
use crate::platform::{Clock, MaybeSend};

const MOCK_PREFIX: &str = "Hello from the gateway's mock provider! You said: ";
const MAX_ECHO_CHARS: usize = 200;

/// The full reply text for a request, before `max_tokens` truncation.
fn mock_reply_text(messages: &[Value]) -> String {
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .map(content_text)
        .unwrap_or_default();
    let echo: String = last_user.chars().take(MAX_ECHO_CHARS).collect();
    format!("{MOCK_PREFIX}{echo}")
}

/// Truncates `text` to at most `max_tokens` estimated tokens (on a char
/// boundary); returns the text and the finish reason.
fn apply_max_tokens(text: String, max_tokens: Option<u64>) -> (String, &'static str) {
    let Some(max) = max_tokens else {
        return (text, "stop");
    };
    let max_bytes = usize::try_from(max.saturating_mul(4)).unwrap_or(usize::MAX);
    if text.len() <= max_bytes {
        return (text, "stop");
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_owned(), "length")
}

pub fn mock_chat(
    clock: impl Clock + Clone,
    request: &ChatRequest,
    stream_delay: Duration,
    completion_id: String,
    created_unix_s: u64,
) -> ProviderReply {
    let (text, finish_reason) =
        apply_max_tokens(mock_reply_text(request.messages()), request.max_tokens);
    let usage = Usage::new(
        estimate_prompt_tokens(request.messages()),
        estimate_tokens(&text),
    );
    let model = request.model.as_str();

    if !request.stream {
        let body = json!({
            "id": completion_id,
            "object": "chat.completion",
            "created": created_unix_s,
            "model": model,
            "system_fingerprint": null,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": null},
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
            "usage": usage,
        });
        return ProviderReply::Complete {
            response: json_response(StatusCode::OK, body.to_string()),
            usage: Some(usage),
        };
    }

    let include_usage = request.include_usage;
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut chunk = json!({
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created_unix_s,
            "model": model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        sse_data(&chunk.to_string())
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    )];
    events.extend(
        text.split_inclusive(' ')
            .map(|word| chunk(json!({"content": word}), None)),
    );
    events.push(chunk(json!({}), Some(finish_reason)));
    if include_usage {
        let usage_chunk = json!({
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created_unix_s,
            "model": model,
            "system_fingerprint": null,
            "choices": [],
            "usage": usage,
        });
        events.push(sse_data(&usage_chunk.to_string()));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));

    ProviderReply::Stream {
        response: sse_response(paced(clock, events, stream_delay)),
    }
}

/// Yields `events`, waiting `delay` before each one after the first.
fn paced(clock: impl Clock + Clone, events: Vec<Bytes>, delay: Duration) -> Body {
    let events = stream::iter(events.into_iter().enumerate()).then(move |(i, event)| {
        let sleep = (i > 0 && !delay.is_zero()).then(|| clock.sleep(delay));
        async move {
            if let Some(sleep) = sleep {
                sleep.await;
            }
            Ok::<_, BodyError>(event)
        }
    });
    body_from_stream(events)
}

fn body_from_stream(
    s: impl futures_util::Stream<Item = Result<Bytes, BodyError>> + MaybeSend + 'static,
) -> Body {
    Body::from_stream(s)
}

fn sse_data(json: &str) -> Bytes {
    Bytes::from(format!("data: {json}\n\n"))
}

/// Vector length when a request sets no `dimensions`.
pub const MOCK_EMBEDDING_DIMENSIONS: u64 = 16;
/// Largest `dimensions` the mock serves.
const MAX_MOCK_DIMENSIONS: u64 = 4096;

/// A deterministic unit vector per text (SHA-256 driven): equal texts get
/// equal vectors, so similarity search can be tried locally. Usage is the
/// 4-bytes-per-token estimate.
pub fn mock_embeddings(request: &EmbeddingsRequest) -> Result<ProviderReply, GatewayError> {
    use sha2::{Digest, Sha256};
    let texts = request.texts("mock")?;
    let dimensions = request.dimensions.unwrap_or(MOCK_EMBEDDING_DIMENSIONS);
    if dimensions > MAX_MOCK_DIMENSIONS {
        return Err(GatewayError::invalid_request(
            format!("`dimensions` may be at most {MAX_MOCK_DIMENSIONS} for the mock provider."),
            Some("dimensions"),
        ));
    }
    let vectors: Vec<Vec<f32>> = texts
        .iter()
        .map(|text| {
            let mut vector = Vec::with_capacity(dimensions as usize);
            let mut block = 0u32;
            while (vector.len() as u64) < dimensions {
                let digest = Sha256::new()
                    .chain_update(block.to_le_bytes())
                    .chain_update(text.as_bytes())
                    .finalize();
                vector.extend(
                    digest
                        .chunks(2)
                        .map(|pair| {
                            f32::from(u16::from_le_bytes([pair[0], pair[1]])) / 32768.0 - 1.0
                        })
                        .take((dimensions as usize).saturating_sub(vector.len())),
                );
                block += 1;
            }
            let norm = vector
                .iter()
                .map(|x| x * x)
                .sum::<f32>()
                .sqrt()
                .max(f32::EPSILON);
            vector.iter().map(|x| x / norm).collect()
        })
        .collect();
    let usage = Usage::new(request.estimated_tokens(), 0);
    Ok(embeddings_reply(&vectors, request, usage, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_echoes_last_user_message() {
        let messages = vec![
            json!({"role": "system", "content": "be brief"}),
            json!({"role": "user", "content": "first"}),
            json!({"role": "assistant", "content": "ok"}),
            json!({"role": "user", "content": [{"type": "text", "text": "second"}]}),
        ];
        assert_eq!(mock_reply_text(&messages), format!("{MOCK_PREFIX}second"));
    }

    #[test]
    fn max_tokens_truncates_on_char_boundary() {
        let (text, reason) = apply_max_tokens("abcéfg".into(), Some(1));
        assert_eq!((text.as_str(), reason), ("abc", "length"));
        let (text, reason) = apply_max_tokens("hi".into(), Some(10));
        assert_eq!((text.as_str(), reason), ("hi", "stop"));
    }
}
