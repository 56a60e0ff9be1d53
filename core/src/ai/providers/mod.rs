//! One file per vendor, each in the same order: wire types, request mapping,
//! response and stream mapping, error mapping, tests. Providers are picked
//! with the closed [`crate::config::ProviderKind`] enum, not `dyn`.

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod mock;
pub mod openai;

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::usage::Usage;
use crate::body::Body;
use crate::error::GatewayError;

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
}

/// A JSON response with `status`.
pub(crate) fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
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

/// Refuses the OpenAI parameters no translated provider can honour:
/// `n > 1`, `logprobs`, non-zero presence or frequency penalties.
pub(crate) fn refuse_unsupported(
    body: &Map<String, Value>,
    vendor: &str,
) -> Result<(), GatewayError> {
    let refuse = |what: &str, param: &'static str| {
        GatewayError::invalid_request(
            format!("{what} (not supported by the {vendor} provider)."),
            Some(param),
        )
    };
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
/// that is itself the answer to the client.
pub(crate) enum CallStop {
    Failed(GatewayError),
    Rejected(ProviderReply),
}

impl From<GatewayError> for CallStop {
    fn from(error: GatewayError) -> Self {
        Self::Failed(error)
    }
}

impl CallStop {
    /// The reply for the client.
    pub(crate) fn into_reply(self) -> Result<ProviderReply, GatewayError> {
        match self {
            Self::Failed(error) => Err(error),
            Self::Rejected(reply) => Ok(reply),
        }
    }

    /// A provider's error reply (or the failure to read it) as a stop.
    pub(crate) fn from_error_reply(reply: Result<ProviderReply, GatewayError>) -> Self {
        match reply {
            Ok(reply) => Self::Rejected(reply),
            Err(error) => Self::Failed(error),
        }
    }
}
