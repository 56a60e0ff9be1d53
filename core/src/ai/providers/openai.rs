//! OpenAI and every server speaking its API (Groq, Together, DeepSeek,
//! Ollama, vLLM, …): the request passes through with `model` replaced by the
//! deployment's upstream id; SSE streams are relayed chunk by chunk.
//!
//! Wire shapes: <https://platform.openai.com/docs/api-reference/chat/create>
//! and <https://platform.openai.com/docs/api-reference/chat-streaming>;
//! errors: <https://platform.openai.com/docs/guides/error-codes>.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use serde_json::Value;

use super::super::usage::Usage;
use super::super::ChatRequest;
use super::ProviderReply;
use crate::body::Body;
use crate::config::{Secret, UpstreamBase};
use crate::error::GatewayError;
use crate::platform::{Clock, HttpClient};
use crate::proxy::{upstream_error, with_timeout, X_REQUEST_ID};

/// Non-streamed completions larger than this are refused as invalid.
const MAX_COMPLETION_BYTES: usize = 64 * 1024 * 1024;
/// Upstream error bodies are read up to this size.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Response headers from the upstream that clients may rely on.
fn passes_through(name: &str) -> bool {
    name == "retry-after" || name.starts_with("x-ratelimit-") || name == "openai-processing-ms"
}

pub struct OpenAiDeployment<'a> {
    pub base: &'a UpstreamBase,
    pub api_key: Option<&'a Secret>,
    pub upstream_model: &'a str,
    pub timeout: Duration,
}

pub async fn openai_chat(
    http: &impl HttpClient,
    clock: &impl Clock,
    deployment: OpenAiDeployment<'_>,
    request: &ChatRequest,
    request_id: &str,
) -> Result<ProviderReply, GatewayError> {
    let mut body = request.body.clone();
    body.insert(
        "model".into(),
        Value::String(deployment.upstream_model.to_owned()),
    );
    let body = serde_json::to_vec(&body)
        .map_err(|e| GatewayError::internal(format!("serialize request: {e}")))?;

    let uri = deployment
        .base
        .uri("/chat/completions", None)
        .map_err(|e| GatewayError::internal(format!("upstream uri: {e}")))?;
    let mut upstream = Request::new(Bytes::from(body));
    *upstream.method_mut() = Method::POST;
    *upstream.uri_mut() = uri;
    let headers = upstream.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static(if request.stream {
            "text/event-stream"
        } else {
            "application/json"
        }),
    );
    if let Some(key) = deployment.api_key {
        let value = HeaderValue::try_from(format!("Bearer {}", key.expose()))
            .map_err(|_| GatewayError::internal("provider api key is not a valid header value"))?;
        headers.insert(header::AUTHORIZATION, value);
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(X_REQUEST_ID, id);
    }

    let result = with_timeout(clock, deployment.timeout, http.send(upstream)).await;
    let response = upstream_error(result, deployment.timeout)?;
    let (parts, body) = response.into_parts();

    if !parts.status.is_success() {
        return handle_openai_error(parts.status, &parts.headers, body).await;
    }

    let mut reply = Response::new(Body::empty());
    copy_passthrough_headers(&parts.headers, reply.headers_mut());
    if request.stream {
        let headers = reply.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        *reply.body_mut() = body;
        return Ok(ProviderReply::Stream { response: reply });
    }

    let bytes =
        body.collect(MAX_COMPLETION_BYTES)
            .await
            .map_err(|e| GatewayError::UpstreamInvalid {
                detail: format!("reading completion: {e}"),
            })?;
    let json: Value =
        serde_json::from_slice(&bytes).map_err(|e| GatewayError::UpstreamInvalid {
            detail: format!("completion is not JSON: {e}"),
        })?;
    let usage = json.get("usage").and_then(Usage::from_openai);
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    *reply.body_mut() = Body::from(bytes);
    Ok(ProviderReply::Complete {
        response: reply,
        usage,
    })
}

fn copy_passthrough_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if passes_through(name.as_str()) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Client errors (4xx) in OpenAI's error shape reach the client as sent, with
/// their status and `Retry-After`; upstream 5xx and malformed errors become
/// 502 with the upstream body kept in the log only.
async fn handle_openai_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: Body,
) -> Result<ProviderReply, GatewayError> {
    let bytes = body.collect(MAX_ERROR_BYTES).await.unwrap_or_default();
    let is_openai_error = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .is_some_and(|v| v.get("error").is_some_and(Value::is_object));
    if status.is_client_error() && is_openai_error {
        let mut reply = Response::new(Body::from(bytes));
        *reply.status_mut() = status;
        copy_passthrough_headers(headers, reply.headers_mut());
        reply.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(ProviderReply::Complete {
            response: reply,
            usage: None,
        });
    }
    Err(GatewayError::UpstreamStatus {
        status,
        detail: String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
    })
}
