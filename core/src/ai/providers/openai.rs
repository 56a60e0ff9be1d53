//! OpenAI and every server speaking its API (Groq, Together, DeepSeek,
//! Ollama, vLLM, …): the request passes through with `model` replaced by the
//! deployment's upstream id; SSE streams are relayed chunk by chunk.
//!
//! Replies name the model the client asked for (its public name), as the
//! translated providers' do: the upstream's id (a snapshot, an Azure
//! deployment's model, a fallback's) is replaced in JSON replies and in
//! every stream chunk.
//!
//! Wire shapes: <https://platform.openai.com/docs/api-reference/chat/create>
//! and <https://platform.openai.com/docs/api-reference/chat-streaming>;
//! errors: <https://platform.openai.com/docs/guides/error-codes>.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use serde_json::{Map, Value};

use super::super::embeddings::EmbeddingsRequest;
use super::super::request::ResponsesRequest;
use super::super::sse::{EventRewriter, SseRewrite};
use super::super::usage::Usage;
use super::super::ChatRequest;
use super::{sse_response, ProviderReply, MAX_ERROR_BYTES, MAX_RESPONSE_BYTES};
use crate::body::Body;
use crate::error::GatewayError;
use crate::http::proxy::{upstream_error, X_REQUEST_ID};
use crate::http::UpstreamBase;
use crate::platform::with_timeout;
use crate::platform::{Clock, HttpClient};
use crate::util::Secret;

/// Response headers from the upstream that clients may rely on.
fn passes_through(name: &str) -> bool {
    name == "retry-after" || name.starts_with("x-ratelimit-") || name == "openai-processing-ms"
}

/// OpenAI itself (and compatible servers) or Azure OpenAI, which differ in
/// URL shape and key header only.
#[derive(Debug, Clone, Copy)]
pub enum Flavor<'a> {
    /// `{base}/chat/completions`, `Authorization: Bearer <key>`.
    OpenAi,
    /// `{base}/openai/deployments/{deployment}/chat/completions?api-version=…`,
    /// `api-key: <key>`; the deployment is the model's `upstream_model`.
    Azure { api_version: &'a str },
}

pub struct OpenAiDeployment<'a> {
    pub base: &'a UpstreamBase,
    pub api_key: Option<&'a Secret>,
    pub upstream_model: &'a str,
    pub timeout: Duration,
    pub flavor: Flavor<'a>,
}

impl OpenAiDeployment<'_> {
    /// The field the gateway writes its completion cap into: OpenAI and
    /// Azure take `max_completion_tokens` (their reasoning models refuse
    /// `max_tokens`); other OpenAI-compatible servers (Mistral, vLLM,
    /// Ollama, …) know `max_tokens`, and some refuse the newer name.
    fn completion_limit_field(&self) -> &'static str {
        match self.flavor {
            Flavor::Azure { .. } => "max_completion_tokens",
            Flavor::OpenAi if self.base.authority.host() == "api.openai.com" => {
                "max_completion_tokens"
            }
            Flavor::OpenAi => "max_tokens",
        }
    }
}

pub async fn openai_chat(
    http: &impl HttpClient,
    clock: &impl Clock,
    deployment: OpenAiDeployment<'_>,
    request: &ChatRequest,
    request_id: &str,
) -> Result<ProviderReply, GatewayError> {
    let mut body = request.body.clone();
    if let (true, Some(cap)) = (request.gateway_capped, request.max_tokens) {
        body.insert(deployment.completion_limit_field().into(), cap.into());
    }
    if request.stream {
        // Always ask for usage so accounting is exact; the client sees the
        // usage chunk only if it asked (see `UsageFolding`).
        body.insert(
            "stream_options".into(),
            serde_json::json!({"include_usage": true}),
        );
    }

    let accept = if request.stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let upstream = upstream_request(&deployment, "chat/completions", body, accept, request_id)?;
    let result = with_timeout(clock, deployment.timeout, http.send(upstream)).await;
    let response = upstream_error(result, deployment.timeout)?;
    let (parts, body) = response.into_parts();

    if !parts.status.is_success() {
        return handle_openai_error(parts.status, &parts.headers, body).await;
    }

    if request.stream {
        let rewrite = UsageFolding {
            fold: !request.include_usage,
            public_model: request.model.clone(),
            held: None,
        };
        let body = Body::from_stream(SseRewrite::new(body, rewrite));
        let mut reply = sse_response(body);
        copy_passthrough_headers(&parts.headers, reply.headers_mut());
        return Ok(ProviderReply::Stream { response: reply });
    }

    relay_json(
        &parts.headers,
        body,
        "completion",
        &request.model,
        openai_usage,
    )
    .await
}

/// A Responses request sent to the server's own `/responses` (opt-in per
/// provider, `native_responses`): the client's body with the deployment's
/// model, the completion cap as `max_output_tokens`, and the conversation
/// the gateway keeps written out — `previous_response_id` becomes the
/// stored items before this turn's `input`, and `store: false`, because the
/// gateway, not the provider, keeps the state (so a conversation can move
/// between providers). The reply's ids, model and state fields are set
/// by the Responses renderer; usage is read from the reply (`usage`) or
/// the stream's terminal event.
pub async fn openai_responses_native(
    http: &impl HttpClient,
    clock: &impl Clock,
    deployment: OpenAiDeployment<'_>,
    chat: &ChatRequest,
    request: &ResponsesRequest,
    request_id: &str,
) -> Result<ProviderReply, GatewayError> {
    let mut body = request.body.clone();
    body.remove("previous_response_id");
    let input: Vec<Value> = request
        .history
        .iter()
        .chain(&request.input)
        .cloned()
        .collect();
    body.insert("input".into(), Value::Array(input));
    body.insert("store".into(), Value::Bool(false));
    if let (true, Some(cap)) = (chat.gateway_capped, chat.max_tokens) {
        body.insert("max_output_tokens".into(), cap.into());
    }
    let accept = if chat.stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let upstream = upstream_request(&deployment, "responses", body, accept, request_id)?;
    let result = with_timeout(clock, deployment.timeout, http.send(upstream)).await;
    let response = upstream_error(result, deployment.timeout)?;
    let (parts, body) = response.into_parts();
    if !parts.status.is_success() {
        return handle_openai_error(parts.status, &parts.headers, body).await;
    }
    if chat.stream {
        let mut reply = sse_response(body);
        copy_passthrough_headers(&parts.headers, reply.headers_mut());
        return Ok(ProviderReply::Stream { response: reply });
    }
    relay_json(
        &parts.headers,
        body,
        "response",
        &chat.model,
        responses_usage,
    )
    .await
}

/// A JSON answer relayed as it came but for its `model` (the public name),
/// with the upstream headers clients rely on; `usage_of` reads its usage
/// (`what` names it in errors).
async fn relay_json(
    upstream_headers: &HeaderMap,
    body: Body,
    what: &str,
    public_model: &str,
    usage_of: fn(&[u8]) -> serde_json::Result<Option<Usage>>,
) -> Result<ProviderReply, GatewayError> {
    let bytes =
        body.collect(MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| GatewayError::UpstreamInvalid {
                detail: format!("reading {what}: {e}"),
            })?;
    let usage = usage_of(&bytes).map_err(|e| GatewayError::UpstreamInvalid {
        detail: format!("{what} is not JSON: {e}"),
    })?;
    let bytes =
        with_public_model(bytes, public_model).map_err(|e| GatewayError::UpstreamInvalid {
            detail: format!("{what} is not a JSON object: {e}"),
        })?;
    let mut reply = Response::new(Body::from(bytes));
    copy_passthrough_headers(upstream_headers, reply.headers_mut());
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(ProviderReply::Complete {
        response: reply,
        usage,
    })
}

/// A POST of `body`, its `model` set to the deployment's, to the
/// deployment's `operation` (`chat/completions`, `embeddings`) with its key.
pub(super) fn upstream_request(
    deployment: &OpenAiDeployment<'_>,
    operation: &str,
    mut body: Map<String, Value>,
    accept: &'static str,
    request_id: &str,
) -> Result<Request<Bytes>, GatewayError> {
    body.insert(
        "model".into(),
        Value::String(deployment.upstream_model.to_owned()),
    );
    let body = serde_json::to_vec(&body)
        .map_err(|e| GatewayError::internal(format!("serialize request: {e}")))?;
    let json = HeaderValue::from_static("application/json");
    upstream_post(deployment, operation, body.into(), json, accept, request_id)
}

/// A POST of `body` (of `content_type`, sent as it is) to the deployment's
/// `operation` with its key: the URL and auth of every OpenAI call.
pub(super) fn upstream_post(
    deployment: &OpenAiDeployment<'_>,
    operation: &str,
    body: Bytes,
    content_type: HeaderValue,
    accept: &'static str,
    request_id: &str,
) -> Result<Request<Bytes>, GatewayError> {
    let uri = match deployment.flavor {
        Flavor::OpenAi => deployment.base.uri(&format!("/{operation}"), None),
        // Azure's Responses API is on its v1 surface: the deployment is
        // the `model`, no api-version.
        Flavor::Azure { .. } if operation == "responses" => {
            deployment.base.uri("/openai/v1/responses", None)
        }
        Flavor::Azure { api_version } => deployment.base.uri(
            &format!(
                "/openai/deployments/{}/{operation}",
                deployment.upstream_model
            ),
            Some(&format!("api-version={api_version}")),
        ),
    }
    .map_err(|e| GatewayError::internal(format!("upstream uri: {e}")))?;
    let mut upstream = Request::new(body);
    *upstream.method_mut() = Method::POST;
    *upstream.uri_mut() = uri;
    let headers = upstream.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
    if let Some(key) = deployment.api_key {
        let bad_key = |_| GatewayError::internal("provider api key is not a valid header value");
        match deployment.flavor {
            Flavor::OpenAi => {
                let value =
                    HeaderValue::try_from(format!("Bearer {}", key.expose())).map_err(bad_key)?;
                headers.insert(header::AUTHORIZATION, value);
            }
            Flavor::Azure { .. } => {
                headers.insert(
                    "api-key",
                    HeaderValue::try_from(key.expose()).map_err(bad_key)?,
                );
            }
        }
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(X_REQUEST_ID, id);
    }
    Ok(upstream)
}

/// Embeddings pass through with `model` replaced; the answer is relayed as
/// it came, its `usage` read for accounting.
pub async fn openai_embeddings(
    http: &impl HttpClient,
    clock: &impl Clock,
    deployment: OpenAiDeployment<'_>,
    request: &EmbeddingsRequest,
    request_id: &str,
) -> Result<ProviderReply, GatewayError> {
    let upstream = upstream_request(
        &deployment,
        "embeddings",
        request.body.clone(),
        "application/json",
        request_id,
    )?;
    let result = with_timeout(clock, deployment.timeout, http.send(upstream)).await;
    let (parts, body) = upstream_error(result, deployment.timeout)?.into_parts();
    if !parts.status.is_success() {
        return handle_openai_error(parts.status, &parts.headers, body).await;
    }
    relay_json(
        &parts.headers,
        body,
        "embeddings response",
        &request.model,
        openai_usage,
    )
    .await
}

/// A reply's `usage`; the rest (choices, vectors) is checked as JSON and
/// skipped, never built into a `Value` tree just to read one field (that
/// tree was the largest JSON cost of a relayed completion in `perf`).
#[derive(serde::Deserialize)]
struct UsageOnly {
    usage: Option<Value>,
}

/// The usage of a complete Chat Completions or embeddings reply.
fn openai_usage(bytes: &[u8]) -> serde_json::Result<Option<Usage>> {
    serde_json::from_slice::<UsageOnly>(bytes)
        .map(|parsed| parsed.usage.as_ref().and_then(Usage::from_openai))
}

/// The usage of a complete Responses reply.
fn responses_usage(bytes: &[u8]) -> serde_json::Result<Option<Usage>> {
    serde_json::from_slice::<UsageOnly>(bytes)
        .map(|parsed| Usage::from_responses(parsed.usage.as_ref().unwrap_or(&Value::Null)))
}

/// `reply` (a JSON object) with its `model` set to `public`; unchanged
/// when it already is. Only the top level is read, in one pass, and the
/// name is replaced where it stands: the other fields keep their bytes and
/// order (an embeddings reply's vectors are not parsed).
pub(super) fn with_public_model(reply: Bytes, public: &str) -> serde_json::Result<Bytes> {
    #[derive(serde::Deserialize)]
    struct ModelOnly<'a> {
        #[serde(borrow)]
        model: Option<&'a serde_json::value::RawValue>,
    }
    // A struct also deserializes from an array (`[x]` is `{model: x}`).
    if reply.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(serde::de::Error::custom("the reply is not a JSON object"));
    }
    let named: ModelOnly<'_> = serde_json::from_slice(&reply)?;
    let Some(model) = named.model.map(serde_json::value::RawValue::get) else {
        return Ok(reply);
    };
    if serde_json::from_str::<std::borrow::Cow<'_, str>>(model).is_ok_and(|name| name == public) {
        return Ok(reply);
    }
    // The raw value is borrowed from `reply`: where it starts there is
    // where the public name goes.
    let start = (model.as_ptr() as usize).wrapping_sub(reply.as_ptr() as usize);
    let end = start.wrapping_add(model.len());
    let (Some(before), Some(after)) = (reply.get(..start), reply.get(end..)) else {
        return Err(serde::de::Error::custom(
            "the model is not inside the reply",
        ));
    };
    let mut renamed = Vec::with_capacity(reply.len() + public.len());
    renamed.extend_from_slice(before);
    serde_json::to_writer(&mut renamed, public)?;
    renamed.extend_from_slice(after);
    Ok(Bytes::from(renamed))
}

/// Every chunk gets the public model name. For clients that did not ask
/// for `stream_options.include_usage` (`fold`): the gateway asked anyway;
/// this folds the usage-only chunk (`choices: []`) into the chunk that
/// carries `finish_reason`, held back until then, so the client sees
/// OpenAI's usual chunks and the gateway still counts exactly.
pub(crate) struct UsageFolding {
    pub(crate) fold: bool,
    pub(crate) public_model: String,
    /// The `finish_reason` chunk, waiting for the usage chunk.
    pub(crate) held: Option<Value>,
}

impl EventRewriter for UsageFolding {
    fn on_event(&mut self, data: &str, out: &mut Vec<String>) {
        let Ok(mut event) = serde_json::from_str::<Value>(data) else {
            out.extend(self.held.take().map(|chunk| chunk.to_string()));
            out.push(data.to_owned());
            return;
        };
        let renamed = match event.get_mut("model") {
            Some(model) if model.as_str().is_some_and(|m| m != self.public_model) => {
                *model = Value::String(self.public_model.clone());
                true
            }
            _ => false,
        };
        let data = if renamed {
            event.to_string()
        } else {
            data.to_owned()
        };
        if !self.fold {
            out.push(data);
            return;
        }
        let usage_only =
            event["choices"].as_array().is_some_and(Vec::is_empty) && event["usage"].is_object();
        if usage_only {
            match self.held.take() {
                Some(mut chunk) => {
                    chunk["usage"] = event["usage"].clone();
                    out.push(chunk.to_string());
                }
                None => out.push(data),
            }
            return;
        }
        out.extend(self.held.take().map(|chunk| chunk.to_string()));
        let finishing = event["choices"]
            .as_array()
            .is_some_and(|choices| choices.iter().any(|c| !c["finish_reason"].is_null()));
        if finishing {
            self.held = Some(event);
        } else {
            out.push(data);
        }
    }

    fn on_end(&mut self, out: &mut Vec<String>) {
        out.extend(self.held.take().map(|chunk| chunk.to_string()));
    }
}

pub(super) fn copy_passthrough_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if passes_through(name.as_str()) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Client errors (4xx) in OpenAI's error shape reach the client as sent, with
/// their status and `Retry-After` — except 401 and 403, which are about the
/// gateway's provider credentials, not the client's request (and their text
/// may echo part of the key): those, upstream 5xx and malformed errors become
/// 502 with the upstream body kept in the log only.
pub(super) async fn handle_openai_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: Body,
) -> Result<ProviderReply, GatewayError> {
    let bytes = body.collect(MAX_ERROR_BYTES).await.unwrap_or_default();
    let is_openai_error = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .is_some_and(|v| v.get("error").is_some_and(Value::is_object));
    let about_our_credentials = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
    if status.is_client_error() && is_openai_error && !about_our_credentials {
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_executor::block_on;
    use futures_util::StreamExt;

    #[test]
    fn usage_chunk_is_folded_into_the_finish_chunk() {
        let upstream = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n",
            "data: [DONE]\n\n",
        );
        let folding = UsageFolding {
            fold: true,
            public_model: "m".into(),
            held: None,
        };
        let folded = SseRewrite::new(Body::from(upstream), folding);
        let chunks: Vec<Bytes> = block_on(folded.map(Result::unwrap).collect());
        let text: String = chunks
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 3, "{events:?}");
        let finish: Value =
            serde_json::from_str(events[1].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        assert_eq!(finish["usage"]["total_tokens"], 4);
        assert_eq!(events[2], "data: [DONE]");
    }

    #[test]
    fn replies_and_chunks_name_the_public_model() {
        let reply = Bytes::from_static(
            br#"{"id":"x","model":"gpt-4o-mini-2024-07-18","data":[{"embedding":[0.1,0.25]}],"usage":null}"#,
        );
        let renamed: Value =
            serde_json::from_slice(&with_public_model(reply, "small").unwrap()).unwrap();
        assert_eq!(renamed["model"], "small");
        assert_eq!(renamed["data"][0]["embedding"][1], 0.25);
        let same = Bytes::from_static(br#"{"model":"small","x":1}"#);
        assert_eq!(with_public_model(same.clone(), "small").unwrap(), same);
        assert!(with_public_model(Bytes::from_static(b"[1]"), "small").is_err());
        // Replaced where it stands: the rest keeps its bytes and order;
        // escapes in either name are handled; a nested `model` is not it.
        let spaced = Bytes::from_static(
            br#"{ "z": {"model": "inner"}, "model" : "gpt-\u0034o", "a": [1, 2] }"#,
        );
        assert_eq!(
            with_public_model(spaced, "sm\"all").unwrap(),
            Bytes::from_static(br#"{ "z": {"model": "inner"}, "model" : "sm\"all", "a": [1, 2] }"#)
        );
        let escaped_same = Bytes::from_static(br#"{"model":"sm\u0061ll"}"#);
        assert_eq!(
            with_public_model(escaped_same.clone(), "small").unwrap(),
            escaped_same
        );
        let hostile = Bytes::from_static(br#"{"model":{"not":"a name"},"id":"x"}"#);
        assert_eq!(
            with_public_model(hostile, "small").unwrap(),
            Bytes::from_static(br#"{"model":"small","id":"x"}"#)
        );
        let duplicate = Bytes::from_static(br#"{"model":"a","model":"b"}"#);
        assert!(with_public_model(duplicate, "small").is_err());

        let upstream = concat!(
            "data: {\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
            "data: [DONE]\n\n",
        );
        let renaming = UsageFolding {
            fold: false,
            public_model: "small".into(),
            held: None,
        };
        let chunks: Vec<Bytes> = block_on(
            SseRewrite::new(Body::from(upstream), renaming)
                .map(Result::unwrap)
                .collect(),
        );
        let text: String = chunks
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        assert!(text.contains(r#""model":"small""#), "{text}");
        assert!(!text.contains("gpt-4o-mini"), "{text}");
        assert!(text.contains("[DONE]"), "{text}");
    }
}
