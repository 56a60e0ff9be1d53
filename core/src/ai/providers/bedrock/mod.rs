//! AWS Bedrock Converse API (`/model/{id}/converse`, `/converse-stream`):
//! OpenAI chat requests translated to Converse and back, requests signed
//! with SigV4, the binary event stream decoded and re-encoded as OpenAI SSE.
//!
//! References: <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>,
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html>,
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/CommonErrors.html>.
//!
//! Field rule as for Anthropic: mapped when Converse has it (`max_tokens` →
//! `inferenceConfig.maxTokens`, `temperature`, `top_p`, `stop`, `tools`,
//! `tool_choice`), delivery-only fields dropped (`stream_options`, `seed`,
//! `user`, `parallel_tool_calls`, `store`, `service_tier`, `n: 1`), and
//! `n > 1`, `logprobs`, non-zero penalties and JSON `response_format`
//! refused with 400. Images must be data URLs (Converse takes bytes, not
//! URLs). `tool_choice: "none"` sends no tools (or, when the conversation
//! already holds tool calls, the tools without a `toolChoice`, as Converse
//! requires). Embeddings: `dimensions` maps to Titan's `dimensions`; Cohere
//! models take none (400).

mod embeddings;
mod request;
mod response;
mod stream;

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use serde_json::Value;

use self::embeddings::embedding_answer;
use super::super::embeddings::EmbeddingsRequest;
use super::super::usage::Usage;
use super::super::ChatRequest;
use super::fan_out::{fan_out, FanOut};
use super::{
    completion_reply, embeddings_reply, error_reply, read_json, stream_reply, unsupported,
    CallStop, ProviderReply, MAX_ERROR_BYTES, MAX_RESPONSE_BYTES,
};
use crate::aws::sigv4::{self, AwsCredentials, SigningScope};
use crate::body::Body;
use crate::error::GatewayError;
use crate::http::proxy::upstream_error;
use crate::http::UpstreamBase;
use crate::platform::with_timeout;
use crate::platform::{Clock, HttpClient};

// The public paths of the items defined in the files of this folder.
pub use self::embeddings::{bedrock_embedding_bodies, EmbeddingFamily};
pub use self::request::bedrock_request;
pub use self::response::{
    bedrock_response_to_openai, bedrock_stop_reason_to_finish_reason, bedrock_usage,
};
pub use self::stream::{BedrockStreamTranslator, ConverseEvents};

/// The SigV4 service name of the Bedrock runtime.
pub const SIGNING_SERVICE: &str = "bedrock";

/// Concurrent InvokeModel calls of one embeddings request.
const EMBEDDING_CALLS_IN_FLIGHT: usize = 16;

pub struct BedrockDeployment<'a> {
    pub base: &'a UpstreamBase,
    pub region: &'a str,
    pub credentials: &'a AwsCredentials,
    pub upstream_model: &'a str,
    pub timeout: Duration,
}

fn refuse(message: &str, param: &'static str) -> GatewayError {
    unsupported("Bedrock", message, param)
}

pub async fn bedrock_chat(
    http: &impl HttpClient,
    clock: &impl Clock,
    deployment: BedrockDeployment<'_>,
    chat: &ChatRequest,
    request_id: &str,
) -> Result<ProviderReply, GatewayError> {
    let body = bedrock_request(chat)?;
    let (action, accept) = if chat.stream {
        ("converse-stream", "application/vnd.amazon.eventstream")
    } else {
        ("converse", "application/json")
    };
    let now_ms = clock.now_unix_ms();
    let request = signed_request(
        &deployment,
        action,
        Bytes::from(body.to_string()),
        accept,
        now_ms / 1000,
        request_id,
    )?;
    let result = with_timeout(clock, deployment.timeout, http.send(request)).await;
    let (parts, body) = upstream_error(result, deployment.timeout)?.into_parts();
    if !parts.status.is_success() {
        return handle_bedrock_error(parts.status, &parts.headers, body).await;
    }
    let created = now_ms / 1000;
    let id = format!("chatcmpl-bedrock-{request_id}");
    if chat.stream {
        let translator =
            BedrockStreamTranslator::new(&id, &chat.model, created, chat.include_usage);
        return Ok(stream_reply::<_, ConverseEvents>(body, translator));
    }
    let response = read_json(body, MAX_RESPONSE_BYTES, "response").await?;
    let (completion, usage) = bedrock_response_to_openai(&response, &chat.model, &id, created);
    Ok(completion_reply(&completion, usage))
}

/// Embeddings through InvokeModel, one call per Titan text (up to 16 at a
/// time) or per 96 Cohere texts; tokens as Bedrock reports them.
pub async fn bedrock_embeddings(
    http: &impl HttpClient,
    clock: &impl Clock,
    deployment: BedrockDeployment<'_>,
    request: &EmbeddingsRequest,
    request_id: &str,
) -> Result<ProviderReply, GatewayError> {
    let texts = request.texts("Bedrock")?;
    let family = EmbeddingFamily::of(deployment.upstream_model);
    if family == EmbeddingFamily::Cohere && request.dimensions.is_some() {
        return Err(refuse(
            "`dimensions` for Cohere embedding models",
            "dimensions",
        ));
    }
    let deployment = &deployment;
    let calls = bedrock_embedding_bodies(family, texts, request.dimensions)
        .into_iter()
        .map(|body| async move {
            // Signed when sent: a long batch must not outlive its signature.
            let signed = signed_request(
                deployment,
                "invoke",
                Bytes::from(body.to_string()),
                "application/json",
                clock.now_unix_ms() / 1000,
                request_id,
            )?;
            let result = with_timeout(clock, deployment.timeout, http.send(signed)).await;
            let (parts, body) = upstream_error(result, deployment.timeout)?.into_parts();
            if !parts.status.is_success() {
                let reply = handle_bedrock_error(parts.status, &parts.headers, body).await;
                return Err(CallStop::from_error_reply(reply));
            }
            let bytes = body.collect(MAX_RESPONSE_BYTES).await.map_err(|e| {
                GatewayError::UpstreamInvalid {
                    detail: format!("reading embeddings response: {e}"),
                }
            })?;
            let mut response = serde_json::Deserializer::from_slice(&bytes);
            embedding_answer(family, &parts.headers, &mut response)
                .filter(|_| response.end().is_ok())
                .ok_or_else(|| {
                    CallStop::Failed(GatewayError::UpstreamInvalid {
                        detail: "embeddings response without vectors or token count".into(),
                    })
                })
        });
    // Collected first: a lazy iterator's closure held across the await
    // below would make the future not `Send` (the Lambda runtime needs it).
    let calls: Vec<_> = calls.collect();
    // In order, at most EMBEDDING_CALLS_IN_FLIGHT at a time (a 2048-text
    // request must not open 2048 connections against the account's
    // limits), stopping at the first failure; the calls that succeeded
    // before it were billed and are charged.
    let answers: Vec<(Vec<Vec<f32>>, u64)> = match fan_out(calls, EMBEDDING_CALLS_IN_FLIGHT).await {
        FanOut::Done(answers) => answers,
        FanOut::Stopped(stop, succeeded) => {
            let billed = succeeded.iter().map(|(_, tokens)| tokens).sum();
            return stop.into_partial_reply(Usage::new(billed, 0), true);
        }
    };
    let mut vectors = Vec::with_capacity(texts.len());
    let mut tokens = 0;
    for (batch, batch_tokens) in answers {
        vectors.extend(batch);
        tokens += batch_tokens;
    }
    if vectors.len() != texts.len() {
        return Err(GatewayError::UpstreamInvalid {
            detail: "embeddings response without one vector per input".into(),
        });
    }
    Ok(embeddings_reply(
        &vectors,
        request,
        Usage::new(tokens, 0),
        true,
    ))
}

/// RFC 3986 encoding of a model id or ARN as one path segment.
fn path_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len() + 8);
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A signed POST of `body` to `{base}/model/{id}/{action}`.
pub(crate) fn signed_request(
    deployment: &BedrockDeployment<'_>,
    action: &str,
    body: Bytes,
    accept: &'static str,
    unix_time: u64,
    request_id: &str,
) -> Result<Request<Bytes>, GatewayError> {
    let uri = deployment
        .base
        .uri(
            &format!(
                "/model/{}/{action}",
                path_segment(deployment.upstream_model)
            ),
            None,
        )
        .map_err(|e| GatewayError::internal(format!("upstream uri: {e}")))?;
    let mut request = Request::new(body);
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let scope = SigningScope {
        region: deployment.region,
        service: SIGNING_SERVICE,
        unix_time,
    };
    sigv4::sign(&mut request, deployment.credentials, scope)
        .map_err(|_| GatewayError::internal("AWS credentials are not valid header values"))?;
    // Sent unsigned (AWS accepts extra headers), so nothing between here
    // and the server can break the signature by adjusting them.
    request
        .headers_mut()
        .insert(header::ACCEPT, HeaderValue::from_static(accept));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        request.headers_mut().insert(crate::http::X_REQUEST_ID, id);
    }
    Ok(request)
}

/// Bedrock errors (`{"message"}`, type in `x-amzn-ErrorType`) →
/// OpenAI-shaped: 400/404/413 keep status and message, 429 (throttling,
/// model not ready) keeps `Retry-After`, 503 stays 503; access problems,
/// model errors and other 5xx → 502.
async fn handle_bedrock_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: Body,
) -> Result<ProviderReply, GatewayError> {
    let bytes = body.collect(MAX_ERROR_BYTES).await.unwrap_or_default();
    let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let message = parsed["message"]
        .as_str()
        .or_else(|| parsed["Message"].as_str())
        .unwrap_or("The upstream provider returned an error.");
    let kind = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(':').next())
        .unwrap_or("UnknownError");
    let (status, openai_type) = match status.as_u16() {
        400 | 404 | 413 => (status, "invalid_request_error"),
        429 => (status, "rate_limit_exceeded"),
        503 => (status, "upstream_overloaded"),
        _ => {
            return Err(GatewayError::UpstreamStatus {
                status,
                detail: format!("{kind}: {message}"),
            })
        }
    };
    Ok(error_reply(status, message, openai_type, kind, headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_executor::block_on;

    const ERROR_VALIDATION: &str =
        include_str!("../../../../../tests/fixtures/bedrock/error_validation.json");

    fn error_reply_of(
        status: u16,
        error_type: &str,
        body: &str,
        retry_after: Option<&str>,
    ) -> Result<ProviderReply, GatewayError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amzn-errortype",
            HeaderValue::from_str(&format!(
                "{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"
            ))
            .unwrap(),
        );
        if let Some(retry) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_str(retry).unwrap());
        }
        block_on(handle_bedrock_error(
            StatusCode::from_u16(status).unwrap(),
            &headers,
            Body::from(body.to_owned()),
        ))
    }

    fn complete(reply: ProviderReply) -> (StatusCode, HeaderMap, Value) {
        let ProviderReply::Complete { response, .. } = reply else {
            panic!("expected a complete reply")
        };
        let (parts, body) = response.into_parts();
        let bytes = block_on(body.collect(1 << 20)).unwrap();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    #[test]
    fn errors_map_to_openai_statuses() {
        let (status, _, body) =
            complete(error_reply_of(400, "ValidationException", ERROR_VALIDATION, None).unwrap());
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("A conversation must start"));
        assert_eq!(body["error"]["code"], "ValidationException");

        let throttled = r#"{"message":"Too many requests, please wait before trying again."}"#;
        let (status, headers, body) =
            complete(error_reply_of(429, "ThrottlingException", throttled, Some("3")).unwrap());
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "3");
        assert_eq!(body["error"]["type"], "rate_limit_exceeded");

        let unavailable = r#"{"message":"Bedrock is unable to process your request."}"#;
        let (status, _, _) = complete(
            error_reply_of(503, "ServiceUnavailableException", unavailable, None).unwrap(),
        );
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

        for (status, kind) in [
            (403, "AccessDeniedException"),
            (424, "ModelErrorException"),
            (500, "InternalServerException"),
        ] {
            let err = error_reply_of(status, kind, r#"{"message":"no"}"#, None)
                .err()
                .unwrap();
            assert!(
                matches!(err, GatewayError::UpstreamStatus { .. }),
                "{status}"
            );
        }
    }

    #[test]
    fn requests_are_signed_for_the_encoded_model_path() {
        let base = crate::http::UpstreamBase::parse("http://127.0.0.1:8123").unwrap();
        let credentials = AwsCredentials {
            access_key_id: crate::config::Secret::new("AKIDEXAMPLE"),
            secret_access_key: crate::config::Secret::new(
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            ),
            session_token: Some(crate::config::Secret::new("session")),
        };
        let deployment = BedrockDeployment {
            base: &base,
            region: "eu-west-1",
            credentials: &credentials,
            upstream_model: "anthropic.claude-3-haiku-20240307-v1:0",
            timeout: Duration::from_secs(1),
        };
        let request = signed_request(
            &deployment,
            "converse-stream",
            Bytes::from_static(b"{}"),
            "application/vnd.amazon.eventstream",
            1_440_938_160,
            "req-1",
        )
        .unwrap();
        assert_eq!(
            request.uri().path(),
            "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
        );
        let authorization = request.headers()["authorization"].to_str().unwrap();
        assert!(authorization.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
        ), "{authorization}");
        assert_eq!(request.headers()["x-amz-security-token"], "session");
        assert_eq!(request.headers()["x-request-id"], "req-1");
        // The server's check passes; any change to a signed part fails it.
        sigv4::verify(&request, &credentials, "eu-west-1", SIGNING_SERVICE).unwrap();
        let mut tampered = request.clone();
        *tampered.body_mut() = Bytes::from_static(b"{\"x\":1}");
        assert!(sigv4::verify(&tampered, &credentials, "eu-west-1", SIGNING_SERVICE).is_err());
    }
}
