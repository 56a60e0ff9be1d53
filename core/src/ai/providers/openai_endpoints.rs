//! The OpenAI endpoints the gateway passes through (`ai::passthrough`:
//! legacy completions, moderations, image generation, audio), called on an
//! OpenAI-compatible or Azure deployment with the URL, key and error
//! handling of [`super::openai`]. The request goes up with the deployment's
//! model name; the reply comes back as the upstream sent it but for `model`
//! in JSON (the public name), and what it reports is read for accounting.
//!
//! Wire shapes: <https://platform.openai.com/docs/api-reference/completions>,
//! <https://platform.openai.com/docs/api-reference/moderations>,
//! <https://platform.openai.com/docs/api-reference/images/create>,
//! <https://platform.openai.com/docs/api-reference/audio>.

use http::{header, HeaderMap, HeaderValue, Response};
use serde_json::{json, Value};

use super::super::passthrough::{
    unsupported_on, Endpoint, GeneratedImages, PassthroughBody, PassthroughRequest,
};
use super::super::sse::SseRewrite;
use super::super::usage::Usage;
use super::openai::{
    copy_passthrough_headers, handle_openai_error, upstream_post, upstream_request,
    with_public_model, Flavor, OpenAiDeployment, UsageFolding,
};
use super::{sse_response, ProviderReply, MAX_RESPONSE_BYTES};
use crate::body::Body;
use crate::error::GatewayError;
use crate::http::proxy::upstream_error;
use crate::platform::{with_timeout, Clock, HttpClient};

/// Calls `request`'s endpoint on `deployment`; see the module docs.
pub async fn openai_passthrough(
    http: &impl HttpClient,
    clock: &impl Clock,
    deployment: OpenAiDeployment<'_>,
    request: &PassthroughRequest,
    request_id: &str,
) -> Result<ProviderReply, GatewayError> {
    let endpoint = request.endpoint;
    if matches!(deployment.flavor, Flavor::Azure { .. }) && endpoint == Endpoint::Moderations {
        return Err(unsupported_on(request, "an Azure OpenAI"));
    }
    let upstream = match &request.body {
        PassthroughBody::Json(body) => {
            let mut body = body.clone();
            let mut accept = "application/json";
            if endpoint == Endpoint::Completions {
                // The limit the reservation was made for, always written:
                // servers differ in their defaults.
                body.insert("max_tokens".into(), request.max_tokens.into());
                if request.stream {
                    // Always ask for usage so accounting is exact; the
                    // client sees the usage chunk only if it asked.
                    body.insert("stream_options".into(), json!({"include_usage": true}));
                    accept = "text/event-stream";
                }
            } else if endpoint == Endpoint::AudioSpeech {
                accept = "*/*";
            }
            upstream_request(&deployment, endpoint.path(), body, accept, request_id)?
        }
        PassthroughBody::Multipart(form) => upstream_post(
            &deployment,
            endpoint.path(),
            form.with_model(deployment.upstream_model),
            form.content_type().clone(),
            "*/*",
            request_id,
        )?,
    };
    let result = with_timeout(clock, deployment.timeout, http.send(upstream)).await;
    let (parts, body) = upstream_error(result, deployment.timeout)?.into_parts();
    if !parts.status.is_success() {
        return handle_openai_error(parts.status, &parts.headers, body).await;
    }
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    match endpoint {
        Endpoint::Completions if request.stream => {
            let rewrite = UsageFolding {
                fold: !request.include_usage,
                public_model: request.model.clone(),
                held: None,
            };
            let mut reply = sse_response(Body::from_stream(SseRewrite::new(body, rewrite)));
            copy_passthrough_headers(&parts.headers, reply.headers_mut());
            Ok(ProviderReply::Stream { response: reply })
        }
        Endpoint::Completions | Endpoint::Moderations | Endpoint::ImageGenerations => {
            relay_json(&parts.headers, body, endpoint, &request.model).await
        }
        Endpoint::AudioTranscriptions | Endpoint::AudioTranslations if is_json => {
            relay_json(&parts.headers, body, endpoint, &request.model).await
        }
        // Audio, and transcripts as text, subtitles or SSE: relayed chunk
        // by chunk as they come (the router bounds the gaps with the
        // route's stream idle timeout).
        Endpoint::AudioTranscriptions | Endpoint::AudioTranslations | Endpoint::AudioSpeech => {
            Ok(ProviderReply::Complete {
                response: relay_as_is(&parts.headers, body),
                usage: None,
            })
        }
    }
}

/// A JSON reply relayed but for its `model` (the public name), its usage
/// read (chat-style `prompt_tokens`, or the `input_tokens`/`output_tokens`
/// of image and transcription replies) and, for images, how many came back.
async fn relay_json(
    upstream_headers: &HeaderMap,
    body: Body,
    endpoint: Endpoint,
    public_model: &str,
) -> Result<ProviderReply, GatewayError> {
    /// Only what is accounted is parsed; image data is skipped.
    #[derive(serde::Deserialize)]
    struct Measured {
        usage: Option<Value>,
        data: Option<Vec<serde::de::IgnoredAny>>,
    }
    let what = endpoint.name();
    let bytes =
        body.collect(MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| GatewayError::UpstreamInvalid {
                detail: format!("reading the {what} reply: {e}"),
            })?;
    let measured: Measured =
        serde_json::from_slice(&bytes).map_err(|e| GatewayError::UpstreamInvalid {
            detail: format!("the {what} reply is not a JSON object: {e}"),
        })?;
    let usage = measured.usage.as_ref().and_then(usage_of);
    let bytes =
        with_public_model(bytes, public_model).map_err(|e| GatewayError::UpstreamInvalid {
            detail: format!("the {what} reply is not a JSON object: {e}"),
        })?;
    let mut response = Response::new(Body::from(bytes));
    copy_passthrough_headers(upstream_headers, response.headers_mut());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if endpoint == Endpoint::ImageGenerations {
        let images = measured.data.map_or(0, |data| data.len() as u64);
        response.extensions_mut().insert(GeneratedImages(images));
    }
    Ok(ProviderReply::Complete { response, usage })
}

/// Usage as OpenAI's chat-style `usage` (`prompt_tokens`, …), or the
/// `input_tokens`/`output_tokens` form of image and transcription replies;
/// `None` for anything else (a transcription's `{"type":"duration"}`).
fn usage_of(usage: &Value) -> Option<Usage> {
    Usage::from_openai(usage).or_else(|| {
        let input = usage.get("input_tokens")?.as_u64()?;
        let output = usage
            .get("output_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Some(Usage::new(input, output))
    })
}

/// A reply relayed as the upstream sent it: its body (streamed as it
/// arrives), its content type and the headers clients rely on.
fn relay_as_is(upstream_headers: &HeaderMap, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    copy_passthrough_headers(upstream_headers, response.headers_mut());
    if let Some(content_type) = upstream_headers.get(header::CONTENT_TYPE) {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_read_in_each_reply_shape() {
        // Legacy completions (chat-style usage).
        let completion = json!({"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12});
        assert_eq!(usage_of(&completion), Some(Usage::new(5, 7)));
        // gpt-image-1 (images/create reference: `usage.input_tokens`, …).
        let image = json!({"total_tokens": 100, "input_tokens": 50, "output_tokens": 50,
            "input_tokens_details": {"text_tokens": 10, "image_tokens": 40}});
        assert_eq!(usage_of(&image), Some(Usage::new(50, 50)));
        // gpt-4o-transcribe (`usage.type: tokens`) and whisper-1 (`duration`).
        let tokens =
            json!({"type": "tokens", "input_tokens": 14, "output_tokens": 45, "total_tokens": 59});
        assert_eq!(usage_of(&tokens), Some(Usage::new(14, 45)));
        assert_eq!(usage_of(&json!({"type": "duration", "seconds": 9})), None);
    }
}
