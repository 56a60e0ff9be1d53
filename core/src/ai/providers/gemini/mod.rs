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

mod embeddings;
mod request;
mod response;
mod stream;

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use serde_json::Value;

use super::super::embeddings::EmbeddingsRequest;
use super::super::sse::SseDecoder;
use super::super::usage::{estimate_tokens, Usage};
use super::super::ChatRequest;
use super::fan_out::{fan_out, FanOut};
use super::{
    completion_reply, embeddings_reply, error_reply, read_json, read_typed, stream_reply, CallStop,
    ProviderReply, MAX_ERROR_BYTES, MAX_RESPONSE_BYTES,
};
use crate::body::Body;
use crate::error::GatewayError;
use crate::http::proxy::upstream_error;
use crate::http::UpstreamBase;
use crate::platform::with_timeout;
use crate::platform::{Clock, HttpClient};
use crate::util::Secret;

// The public paths of the items defined in the files of this folder.
pub use self::embeddings::gemini_embeddings_request;
pub use self::request::{clean_schema, gemini_request};
pub use self::response::{
    gemini_finish_reason_to_finish_reason, gemini_response_to_openai, gemini_usage,
};
pub use self::stream::GeminiStreamTranslator;

/// Requests per `batchEmbedContents` call, as Gemini allows.
const GEMINI_EMBED_BATCH: usize = 100;
/// Concurrent `batchEmbedContents` calls of one embeddings request.
const GEMINI_EMBED_BATCHES_IN_FLIGHT: usize = 4;

pub struct GeminiDeployment<'a> {
    pub base: &'a UpstreamBase,
    pub api_key: &'a Secret,
    pub upstream_model: &'a str,
    pub timeout: Duration,
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
        let response: GeminiEmbeddings =
            read_typed(body, MAX_RESPONSE_BYTES, "embeddings response").await?;
        let vectors: Option<Vec<Vec<f32>>> = response
            .embeddings
            .map(|all| all.into_iter().map(|e| e.values).collect());
        let vectors = vectors.filter(|v| v.len() == batch.len()).ok_or_else(|| {
            CallStop::Failed(GatewayError::UpstreamInvalid {
                detail: "embeddings response without one vector per input".into(),
            })
        })?;
        let tokens: u64 = batch.iter().map(|text| estimate_tokens(text)).sum();
        Ok((vectors, tokens))
    });
    // Collected first: a lazy iterator's closure held across the await
    // below would make the future not `Send` (the Lambda runtime needs it).
    let calls: Vec<_> = calls.collect();
    let batches: Vec<(Vec<Vec<f32>>, u64)> =
        match fan_out(calls, GEMINI_EMBED_BATCHES_IN_FLIGHT).await {
            FanOut::Done(batches) => batches,
            FanOut::Stopped(stop, succeeded) => {
                // The batches that succeeded were billed; Gemini reports no
                // tokens, so they are estimated like a whole request.
                let billed = succeeded.iter().map(|(_, tokens)| tokens).sum();
                return stop.into_partial_reply(Usage::new(billed, 0), false);
            }
        };
    let batches = batches.into_iter().map(|(vectors, _)| vectors);
    let vectors: Vec<Vec<f32>> = batches.flatten().collect();
    // Estimated, not reported: the pipeline logs it as estimated.
    let usage = Usage::new(request.estimated_tokens(), 0);
    Ok(embeddings_reply(&vectors, request, usage, false))
}

/// A `batchEmbedContents` answer (the parts read; vectors straight to
/// `f32`).
#[derive(serde::Deserialize)]
struct GeminiEmbeddings {
    embeddings: Option<Vec<GeminiEmbedding>>,
}

#[derive(serde::Deserialize)]
struct GeminiEmbedding {
    values: Vec<f32>,
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

#[cfg(test)]
mod tests {
    use super::*;

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
