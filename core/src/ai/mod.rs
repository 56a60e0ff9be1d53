//! The AI gateway: the OpenAI-compatible API an `ai` route serves under its
//! `path_prefix` (usually `/v1`):
//! - `POST {prefix}/chat/completions` — stream and non-stream, served by the
//!   requested model's deployments;
//! - `POST {prefix}/embeddings` — served the same way (see [`embeddings`]);
//! - `GET {prefix}/models` — the configured public model names;
//! - `POST {prefix}/completions`, `/moderations`, `/images/generations`,
//!   `/audio/transcriptions`, `/audio/translations`, `/audio/speech` —
//!   passed through to OpenAI-compatible and Azure deployments (see
//!   [`passthrough`]);
//! - `POST {prefix}/messages` and `POST {prefix}/messages/count_tokens` —
//!   Anthropic's Messages API (see [`dialects`]), served by any provider;
//! - `POST {prefix}/responses`, `GET` / `DELETE {prefix}/responses/{id}` —
//!   OpenAI's Responses API with conversation state kept by the gateway
//!   (see [`dialects::responses`]), served by any provider.
//!
//! The pipeline drives it: [`request`] parses and checks what is asked,
//! [`accounting`] prices the reservation, [`router`] calls the deployments
//! (with fallbacks) through [`providers`] and accounts the reply. Errors on
//! these paths use OpenAI's error JSON so SDKs show the message. Usage of
//! every completion is recorded (the `gateway::usage` log event): as the
//! provider reported it, or estimated locally when it did not, and also when
//! the client disconnects mid-stream or the upstream fails.

pub mod accounting;
pub mod config;
pub mod dialects;
pub mod embeddings;
mod idle;
mod json;
pub mod passthrough;
pub mod pricing;
pub mod providers;
pub mod request;
pub mod router;
pub mod sse;
pub mod usage;

use http::{header, HeaderMap, HeaderValue, Method, Response};
use serde_json::{json, Value};

use self::config::{Model, Provider};
use self::embeddings::EmbeddingsRequest;
pub use self::request::{AiRequest, ChatRequest, Operation, OwnedOperation};
use crate::auth::{authorize_model, Identity};
use crate::body::Body;
use crate::error::GatewayError;

/// Resolves the operation from the path below the route's prefix and the
/// method (404 / 405 otherwise), and parses the body in the path's
/// dialect into the canonical request.
pub fn parse_request(
    subpath: &str,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &bytes::Bytes,
) -> Result<AiRequest, GatewayError> {
    let allow = |allowed: Method| GatewayError::MethodNotAllowed {
        method: method.clone(),
        path: path.to_owned(),
        allow: vec![allowed],
    };
    let post = method == Method::POST;
    // More OpenAI endpoints, passed through (see [`passthrough`]).
    if let Some(endpoint) = passthrough::Endpoint::of_subpath(subpath) {
        if !post {
            return Err(allow(Method::POST));
        }
        let request = passthrough::PassthroughRequest::parse(endpoint, headers, body)?;
        return Ok(AiRequest::Call(OwnedOperation::Passthrough(request)));
    }
    match subpath {
        "/chat/completions" if post => Ok(AiRequest::Call(OwnedOperation::Chat(
            ChatRequest::parse(body)?,
        ))),
        "/embeddings" if post => Ok(AiRequest::Call(OwnedOperation::Embeddings(
            EmbeddingsRequest::parse(body)?,
        ))),
        "/messages" if post => Ok(AiRequest::Call(OwnedOperation::Chat(
            dialects::anthropic::parse_messages(body, headers, true)?,
        ))),
        "/messages/count_tokens" if post => Ok(AiRequest::CountTokens(
            dialects::anthropic::parse_messages(body, headers, false)?,
        )),
        "/responses" if post => Ok(AiRequest::Call(OwnedOperation::Chat(
            dialects::responses::parse_responses(body)?,
        ))),
        "/chat/completions"
        | "/embeddings"
        | "/messages"
        | "/messages/count_tokens"
        | "/responses" => Err(allow(Method::POST)),
        "/models" if method == Method::GET => Ok(AiRequest::ListModels),
        "/models" => Err(allow(Method::GET)),
        _ if subpath.starts_with("/responses/") => {
            let id = &subpath["/responses/".len()..];
            match *method {
                _ if id.is_empty() || id.contains('/') => Err(GatewayError::RouteNotFound {
                    method: method.clone(),
                    path: path.to_owned(),
                }),
                Method::GET => Ok(AiRequest::StoredResponse {
                    id: id.to_owned(),
                    delete: false,
                }),
                Method::DELETE => Ok(AiRequest::StoredResponse {
                    id: id.to_owned(),
                    delete: true,
                }),
                _ => Err(GatewayError::MethodNotAllowed {
                    method: method.clone(),
                    path: path.to_owned(),
                    allow: vec![Method::GET, Method::DELETE],
                }),
            }
        }
        _ => Err(GatewayError::RouteNotFound {
            method: method.clone(),
            path: path.to_owned(),
        }),
    }
}

/// The configured models, limited to those the consumer may use: in
/// OpenAI's list shape, or Anthropic's
/// (<https://docs.anthropic.com/en/api/models-list>) for a client that
/// sends `anthropic-version` (the Anthropic SDKs always do).
pub fn list_models(
    providers: &[Provider],
    models: &[Model],
    identity: Option<&Identity>,
    headers: &HeaderMap,
) -> Response<Body> {
    let allowed = models
        .iter()
        .filter(|m| authorize_model(identity, &m.name).is_ok());
    let list = if headers.contains_key(dialects::anthropic::ANTHROPIC_VERSION) {
        let data: Vec<Value> = allowed
            .map(|m| {
                json!({
                    "type": "model",
                    "id": m.name,
                    "display_name": m.name,
                    "created_at": "1970-01-01T00:00:00Z",
                })
            })
            .collect();
        json!({
            "data": data,
            "has_more": false,
            "first_id": data.first().map(|m| m["id"].clone()),
            "last_id": data.last().map(|m| m["id"].clone()),
        })
    } else {
        let data: Vec<Value> = allowed
            .map(|m| {
                json!({
                    "id": m.name,
                    "object": "model",
                    "created": 0,
                    "owned_by": providers[m.provider].name,
                })
            })
            .collect();
        json!({"object": "list", "data": data})
    };
    let mut response = Response::new(Body::from(list.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
