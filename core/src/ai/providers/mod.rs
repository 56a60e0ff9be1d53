//! One module per vendor, each in the same order: wire types, request mapping,
//! response and stream mapping, error mapping, tests. A vendor too large for
//! one file is a folder (`bedrock/`, `gemini/`): entry points and error
//! mapping in `mod.rs`, then `request`, `response`, `stream` and `embeddings`.
//! Providers are picked with the closed [`crate::config::ProviderKind`] enum,
//! not `dyn`.

pub mod anthropic;
pub mod bedrock;
mod fan_out;
pub mod gemini;
pub mod mock;
pub mod openai;
pub mod openai_endpoints;

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::sse::{EventRewriter, EventSource, SseRewrite};
use super::usage::Usage;
use crate::body::Body;
use crate::error::GatewayError;
use crate::platform::MaybeSend;

/// What a provider hands back to the AI pipeline.
pub enum ProviderReply {
    /// A complete JSON response (success or a passed-through client error)
    /// and the usage it reported.
    Complete {
        response: Response<Body>,
        usage: Option<Usage>,
    },
    /// An OpenAI-format SSE stream, relayed as it arrives; usage is read from
    /// it by the pipeline.
    Stream { response: Response<Body> },
    /// Calls fanned out for one request (embeddings batches) stopped at a
    /// failure after some of them succeeded: the client gets `failure` (the
    /// provider's error reply, or an error), and the provider billed
    /// `billed` for the calls that succeeded (`reported: false` when that
    /// is the gateway's estimate, for a provider that reports none).
    PartialFailure {
        failure: Result<Response<Body>, GatewayError>,
        billed: Usage,
        reported: bool,
    },
}

impl ProviderReply {
    /// The response for the client (the failure of a partial one).
    pub fn into_response(self) -> Result<Response<Body>, GatewayError> {
        match self {
            Self::Complete { response, .. } | Self::Stream { response } => Ok(response),
            Self::PartialFailure { failure, .. } => failure,
        }
    }
}

/// A JSON response with `status`.
pub(crate) fn json_response(status: StatusCode, body: impl Into<Body>) -> Response<Body> {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An SSE response relaying `body`.
pub(crate) fn sse_response(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A provider error in OpenAI's shape, keeping the upstream's `Retry-After`.
pub(crate) fn error_reply(
    status: StatusCode,
    message: &str,
    kind: &str,
    code: &str,
    upstream_headers: &HeaderMap,
) -> ProviderReply {
    let error = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    let mut response = json_response(status, error.to_string());
    if let Some(retry) = upstream_headers.get(header::RETRY_AFTER) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry.clone());
    }
    ProviderReply::Complete {
        response,
        usage: None,
    }
}

/// Reads a complete upstream JSON body (`what` names it in errors).
pub(crate) async fn read_json(body: Body, limit: usize, what: &str) -> Result<Value, GatewayError> {
    read_typed(body, limit, what).await
}

/// Reads a complete upstream JSON body into `T` (straight from the bytes,
/// no `Value` in between).
pub(crate) async fn read_typed<T: serde::de::DeserializeOwned>(
    body: Body,
    limit: usize,
    what: &str,
) -> Result<T, GatewayError> {
    let bytes = body
        .collect(limit)
        .await
        .map_err(|e| GatewayError::UpstreamInvalid {
            detail: format!("reading {what}: {e}"),
        })?;
    serde_json::from_slice(&bytes).map_err(|e| GatewayError::UpstreamInvalid {
        detail: format!("{what} is not JSON: {e}"),
    })
}

/// Upstream JSON bodies larger than this are refused as invalid.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Upstream error bodies are read up to this size.
pub(crate) const MAX_ERROR_BYTES: usize = 64 * 1024;

/// The 400 for an OpenAI parameter `vendor` cannot honour.
pub(crate) fn unsupported(vendor: &str, what: &str, param: &'static str) -> GatewayError {
    GatewayError::invalid_request(
        format!("{what} (not supported by the {vendor} provider)."),
        Some(param),
    )
}

/// A `{"type":"text"}` part whose text is empty or missing.
pub(crate) fn is_empty_text_part(part: &Value) -> bool {
    part.get("type").and_then(Value::as_str) == Some("text")
        && part
            .get("text")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
}

/// OpenAI's `stop` (a string or an array) as a list of stop sequences.
pub(crate) fn stop_sequences(body: &Map<String, Value>) -> Option<Value> {
    match body.get("stop") {
        Some(Value::String(stop)) => Some(json!([stop])),
        Some(Value::Array(stops)) => Some(Value::Array(stops.clone())),
        _ => None,
    }
}

/// A translated stream: the upstream body, split into events by `S`,
/// re-encoded as OpenAI SSE by `rewriter`.
pub(crate) fn stream_reply<R, S>(body: Body, rewriter: R) -> ProviderReply
where
    R: EventRewriter + MaybeSend + 'static,
    S: EventSource + MaybeSend + 'static,
{
    let stream = SseRewrite::<R, S>::with_source(body, rewriter);
    ProviderReply::Stream {
        response: sse_response(Body::from_stream(stream)),
    }
}

/// A translated `chat.completion` and the usage it reports.
pub(crate) fn completion_reply(completion: &Value, usage: Usage) -> ProviderReply {
    ProviderReply::Complete {
        response: json_response(StatusCode::OK, completion.to_string()),
        usage: Some(usage),
    }
}

/// Refuses the OpenAI parameters no translated provider can honour:
/// `n > 1`, `logprobs`, non-zero presence or frequency penalties.
pub(crate) fn refuse_unsupported(
    body: &Map<String, Value>,
    vendor: &str,
) -> Result<(), GatewayError> {
    let refuse = |what: &str, param: &'static str| unsupported(vendor, what, param);
    if body.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(refuse("`n` greater than 1", "n"));
    }
    if body.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(refuse("`logprobs`", "logprobs"));
    }
    for penalty in ["presence_penalty", "frequency_penalty"] {
        if body
            .get(penalty)
            .and_then(Value::as_f64)
            .is_some_and(|p| p != 0.0)
        {
            return Err(refuse(&format!("`{penalty}`"), penalty));
        }
    }
    Ok(())
}

/// Why a batch of upstream calls stopped: a failure, or a provider error
/// reply that is itself the answer to the client.
pub(crate) enum CallStop {
    Failed(GatewayError),
    Rejected(Response<Body>),
}

impl From<GatewayError> for CallStop {
    fn from(error: GatewayError) -> Self {
        Self::Failed(error)
    }
}

impl CallStop {
    /// The reply for the client when calls that succeeded before this stop
    /// billed `billed`: a [`ProviderReply::PartialFailure`] that charges
    /// them, or the plain failure when nothing was billed.
    pub(crate) fn into_partial_reply(
        self,
        billed: Usage,
        reported: bool,
    ) -> Result<ProviderReply, GatewayError> {
        let failure = match self {
            Self::Failed(error) => Err(error),
            Self::Rejected(response) => Ok(response),
        };
        if billed == Usage::default() {
            return failure.map(|response| ProviderReply::Complete {
                response,
                usage: None,
            });
        }
        Ok(ProviderReply::PartialFailure {
            failure,
            billed,
            reported,
        })
    }

    /// A provider's error reply (or the failure to read it) as a stop.
    pub(crate) fn from_error_reply(reply: Result<ProviderReply, GatewayError>) -> Self {
        match reply.and_then(ProviderReply::into_response) {
            Ok(response) => Self::Rejected(response),
            Err(error) => Self::Failed(error),
        }
    }
}

/// An OpenAI `chat.completion` built by a translating provider.
pub(crate) fn chat_completion(
    id: &str,
    created: u64,
    public_model: &str,
    text: String,
    tool_calls: Vec<Value>,
    finish: &str,
    usage: &Usage,
) -> Value {
    // OpenAI sends `content: null` for a reply that is only tool calls.
    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    let mut message = json!({"role": "assistant", "content": content, "refusal": null});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": public_model,
        "system_fingerprint": null,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage.to_openai_json(),
    })
}

/// Writes the OpenAI `chat.completion.chunk` payloads of a translated
/// stream.
pub(crate) struct ChunkWriter {
    pub(crate) id: String,
    model: String,
    created: u64,
    include_usage: bool,
}

impl ChunkWriter {
    pub(crate) fn new(id: String, public_model: &str, created: u64, include_usage: bool) -> Self {
        Self {
            id,
            model: public_model.to_owned(),
            created,
            include_usage,
        }
    }

    fn value(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    }

    /// One chunk carrying `delta`.
    pub(crate) fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        self.value(delta, finish).to_string()
    }

    /// The end of a stream: the `finish_reason` chunk, the usage (its own
    /// chunk without choices when the client asked for
    /// `stream_options.include_usage`, else on the finish chunk, so the
    /// gateway can account for it; OpenAI SDKs read `usage` on any chunk),
    /// then `[DONE]`. Without usage none is made up: the gateway estimates.
    pub(crate) fn finish(&self, finish: &str, usage: Option<&Usage>) -> Vec<String> {
        let mut last = self.value(json!({}), Some(finish));
        let mut out = Vec::with_capacity(3);
        match usage.map(Usage::to_openai_json) {
            Some(usage) if self.include_usage => {
                out.push(last.to_string());
                let mut usage_chunk = self.value(json!({}), None);
                usage_chunk["choices"] = json!([]);
                usage_chunk["usage"] = usage;
                out.push(usage_chunk.to_string());
            }
            Some(usage) => {
                last["usage"] = usage;
                out.push(last.to_string());
            }
            None => out.push(last.to_string()),
        }
        out.push("[DONE]".into());
        out
    }
}

/// The event that ends a translated stream when the provider reports an
/// error mid-way, in OpenAI's error shape.
pub(crate) fn stream_error_event(kind: &str, message: &str) -> String {
    json!({"error": {
        "message": format!("The upstream provider failed mid-stream ({kind}): {message}"),
        "type": "upstream_error",
        "param": null,
        "code": kind,
    }})
    .to_string()
}

/// Appends `blocks` to `turns` as a `role` turn under `key` (`content`, or
/// `parts` for Gemini), merged into the previous turn when it has the same
/// role: the translated APIs want user and assistant turns to alternate.
pub(crate) fn push_turn(turns: &mut Vec<Value>, key: &str, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = turns.last_mut() {
        if last["role"] == role {
            if let Some(existing) = last[key].as_array_mut() {
                existing.extend(blocks);
                return;
            }
        }
    }
    let mut turn = Map::new();
    turn.insert("role".into(), Value::String(role.to_owned()));
    turn.insert(key.to_owned(), Value::Array(blocks));
    turns.push(Value::Object(turn));
}

/// The OpenAI embeddings reply for `vectors` with `usage` in its body;
/// `reported: false` marks the usage as the gateway's estimate.
pub(crate) fn embeddings_reply(
    vectors: &[Vec<f32>],
    request: &super::embeddings::EmbeddingsRequest,
    usage: Usage,
    reported: bool,
) -> ProviderReply {
    let body = super::embeddings::embeddings_response(
        vectors,
        &request.model,
        &usage,
        request.encoding_format,
    );
    ProviderReply::Complete {
        response: json_response(StatusCode::OK, body),
        usage: reported.then_some(usage),
    }
}

/// The tool calls of an OpenAI assistant message (none when absent).
pub(crate) fn tool_calls_of(message: &Value) -> impl Iterator<Item = &Value> {
    message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// A tool call's `function.arguments` (a JSON string) as the JSON value the
/// translated APIs take; not JSON → 400.
pub(crate) fn tool_call_input(call: &Value) -> Result<Value, GatewayError> {
    let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
    serde_json::from_str(arguments).map_err(|e| {
        GatewayError::invalid_request(
            format!("tool call arguments are not JSON: {e}"),
            Some("messages"),
        )
    })
}
