//! The Messages API called natively, for clients that speak it: no double
//! translation; same auth, limits and accounting as every other call.

use bytes::Bytes;
use http::{header, HeaderMap, Request, StatusCode};
use serde_json::{json, Map, Value};

use super::{messages_request, AnthropicDeployment};
use crate::ai::providers::{
    json_response, sse_response, ProviderReply, MAX_ERROR_BYTES, MAX_RESPONSE_BYTES,
};
use crate::ai::request::MessagesRequest;
use crate::ai::sse::{EventRewriter, SseRewrite};
use crate::ai::usage::Usage;
use crate::ai::ChatRequest;
use crate::body::Body;
use crate::error::GatewayError;
use crate::http::proxy::upstream_error;
use crate::platform::{with_timeout, Clock, HttpClient};

/// The Messages API called natively, for a client that speaks it (the
/// inbound dialect is Anthropic's): the client's body with the
/// deployment's model and the completion cap (`max_tokens`, at most what
/// was reserved), its `anthropic-version` (else the deployment's) and
/// `anthropic-beta`. The reply is relayed as sent — no double translation;
/// a complete one's usage is read here, a stream's by the accounting
/// observer (`StreamWire::Anthropic`).
pub async fn anthropic_messages_native(
    http: &impl HttpClient,
    clock: &impl Clock,
    deployment: AnthropicDeployment<'_>,
    chat: &ChatRequest,
    native: &MessagesRequest,
    request_id: &str,
) -> Result<ProviderReply, GatewayError> {
    let MessagesRequest {
        body,
        version,
        beta,
    } = native;
    let mut body = body.clone();
    body.insert("model".into(), json!(deployment.upstream_model));
    if let Some(max_tokens) = chat.max_tokens {
        body.insert("max_tokens".into(), json!(max_tokens));
    }
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let request = native_request(
        &deployment,
        "/messages",
        &body,
        version.as_deref(),
        beta.as_deref(),
        request_id,
    )?;
    let result = with_timeout(clock, deployment.timeout, http.send(request)).await;
    let (parts, body) = upstream_error(result, deployment.timeout)?.into_parts();
    if !parts.status.is_success() {
        return handle_native_error(parts.status, &parts.headers, body).await;
    }
    if stream {
        let events = PublicModel {
            model: chat.model.clone(),
        };
        return Ok(ProviderReply::Stream {
            response: sse_response(Body::from_stream(SseRewrite::new(body, events))),
        });
    }
    let bytes =
        body.collect(MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| GatewayError::UpstreamInvalid {
                detail: format!("reading message: {e}"),
            })?;
    let mut message: Value =
        serde_json::from_slice(&bytes).map_err(|e| GatewayError::UpstreamInvalid {
            detail: format!("message is not JSON: {e}"),
        })?;
    let usage = message
        .get("usage")
        .filter(|u| u.is_object())
        .map(Usage::from_anthropic);
    // The reply names the model the client asked for, as on every provider.
    let bytes = match message.get_mut("model") {
        Some(model) if model.as_str() != Some(chat.model.as_str()) => {
            *model = json!(chat.model);
            Bytes::from(message.to_string())
        }
        _ => bytes,
    };
    Ok(ProviderReply::Complete {
        response: json_response(StatusCode::OK, bytes),
        usage,
    })
}

/// A native stream relayed event by event, as sent, but for the model
/// `message_start` names: the public name the client asked for (as on
/// every provider). Every Anthropic event's name is its data's `type`, so
/// frames are rewritten as `event: <type>` + the data unchanged.
struct PublicModel {
    model: String,
}

impl EventRewriter for PublicModel {
    fn framed(&self) -> bool {
        true
    }

    fn on_event(&mut self, data: &str, out: &mut Vec<String>) {
        #[derive(serde::Deserialize)]
        struct Typed<'a> {
            #[serde(borrow, rename = "type")]
            kind: Option<std::borrow::Cow<'a, str>>,
        }
        let kind = serde_json::from_str::<Typed<'_>>(data)
            .ok()
            .and_then(|t| t.kind);
        let Some(kind) = kind else {
            out.push(format!("data: {data}\n\n"));
            return;
        };
        if kind == "message_start" {
            if let Ok(mut event) = serde_json::from_str::<Value>(data) {
                if event["message"]["model"].as_str() != Some(self.model.as_str()) {
                    event["message"]["model"] = json!(self.model);
                    out.push(format!("event: {kind}\ndata: {event}\n\n"));
                    return;
                }
            }
        }
        out.push(format!("event: {kind}\ndata: {data}\n\n"));
    }
}

/// `POST /v1/messages/count_tokens`, natively: the client's body with the
/// deployment's model; the answer (or a client error) relayed as sent.
pub async fn anthropic_count_tokens(
    http: &impl HttpClient,
    clock: &impl Clock,
    deployment: AnthropicDeployment<'_>,
    native: &MessagesRequest,
    request_id: &str,
) -> Result<http::Response<Body>, GatewayError> {
    let MessagesRequest {
        body,
        version,
        beta,
    } = native;
    let mut body = body.clone();
    body.insert("model".into(), json!(deployment.upstream_model));
    let request = native_request(
        &deployment,
        "/messages/count_tokens",
        &body,
        version.as_deref(),
        beta.as_deref(),
        request_id,
    )?;
    let result = with_timeout(clock, deployment.timeout, http.send(request)).await;
    let (parts, body) = upstream_error(result, deployment.timeout)?.into_parts();
    if !parts.status.is_success() {
        return handle_native_error(parts.status, &parts.headers, body)
            .await?
            .into_response();
    }
    let bytes = body
        .collect(MAX_ERROR_BYTES)
        .await
        .map_err(|e| GatewayError::UpstreamInvalid {
            detail: format!("reading count_tokens: {e}"),
        })?;
    Ok(json_response(StatusCode::OK, bytes))
}

/// A POST of `body` to `{base}{path}` with the deployment's key and the
/// client's (else the deployment's) Anthropic headers.
fn native_request(
    deployment: &AnthropicDeployment<'_>,
    path: &str,
    body: &Map<String, Value>,
    version: Option<&str>,
    beta: Option<&str>,
    request_id: &str,
) -> Result<Request<Bytes>, GatewayError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| GatewayError::internal(format!("serialize request: {e}")))?;
    messages_request(
        deployment,
        path,
        Bytes::from(bytes),
        version,
        beta,
        request_id,
    )
}

/// Errors of a native call, relayed in Anthropic's shape: client errors
/// and 529 (overloaded) as sent, with `Retry-After`; 401 and 403 (about
/// the gateway's key, whose text may echo it), other 5xx and malformed
/// errors → 502, the body in the log only.
async fn handle_native_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: Body,
) -> Result<ProviderReply, GatewayError> {
    let bytes = body.collect(MAX_ERROR_BYTES).await.unwrap_or_default();
    let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let about_our_credentials = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
    let relayed = (status.is_client_error() && !about_our_credentials) || status.as_u16() == 529;
    if !relayed || parsed["error"]["message"].as_str().is_none() {
        return Err(GatewayError::UpstreamStatus {
            status,
            detail: String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
        });
    }
    let mut response = json_response(status, bytes);
    if let Some(retry) = headers.get(header::RETRY_AFTER) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry.clone());
    }
    Ok(ProviderReply::Complete {
        response,
        usage: None,
    })
}
