//! One error type for the whole pipeline, mapped to a status in one place.
//!
//! `Display` is the message a client sees: it never carries internals or
//! secrets. `detail()` is what goes to the log, once, in `Gateway::handle`.

use http::{header, HeaderValue, Method, Response, StatusCode};
use serde_json::json;

use crate::body::Body;

/// Where an error came from; decides the log level and the status family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorOrigin {
    /// The request was wrong (4xx).
    Client,
    /// The upstream failed or was unreachable (502/504).
    Upstream,
    /// A gateway bug or misconfiguration (500).
    Internal,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("No route matches {method} {path}.")]
    RouteNotFound { method: Method, path: String },
    #[error("Method {method} is not allowed on {path}.")]
    MethodNotAllowed {
        method: Method,
        path: String,
        allow: Vec<Method>,
    },
    #[error("Invalid request path: {0}.")]
    InvalidPath(&'static str),
    #[error("Request body is larger than the limit of {limit} bytes.")]
    PayloadTooLarge { limit: usize },
    #[error("We could not parse the JSON body of your request: {0}.")]
    InvalidJson(String),
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<&'static str>,
    },
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    /// No valid credential. `message` says what is wrong without detail on
    /// why a signature failed; `invalid_token` adds `error="invalid_token"`
    /// to `WWW-Authenticate` (a credential was sent but refused).
    #[error("{message}")]
    Unauthorized {
        message: &'static str,
        invalid_token: bool,
    },
    #[error("{0}")]
    Forbidden(String),
    /// An admin API resource does not exist.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("Rate limit reached for `{limit}`. Try again in {retry_after_s} s.")]
    RateLimited {
        limit: String,
        retry_after_s: u64,
        /// A token budget (long window) rather than a rate limit.
        budget: bool,
    },
    #[error("The quota service is unavailable. Try again shortly.")]
    QuotaUnavailable,
    /// The key store (API keys, consumers) failed or did not answer in
    /// time: fail closed.
    #[error("The key store is unavailable. Try again shortly.")]
    StoreUnavailable { detail: String },
    #[error("The upstream service is unreachable.")]
    UpstreamUnreachable { detail: String },
    #[error("The upstream service did not respond within {timeout_ms} ms.")]
    UpstreamTimeout { timeout_ms: u64 },
    #[error("The upstream service returned an invalid response.")]
    UpstreamInvalid { detail: String },
    #[error("The upstream service returned an error (status {status}).")]
    UpstreamStatus { status: StatusCode, detail: String },
    #[error("Internal gateway error.")]
    Internal { detail: String },
}

/// The JSON shape an error is rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"error":{"message","type","param","code"}}`, what OpenAI SDKs parse.
    OpenAi,
    /// `{"error":{"message","code","request_id"}}` for REST routes.
    Gateway,
    /// `{"type":"error","error":{"type","message"},"request_id"}`, what
    /// Anthropic SDKs parse (the Messages paths of AI routes).
    Anthropic,
}

/// Anthropic's `error.type` for an HTTP status, as its API uses them
/// (<https://docs.anthropic.com/en/api/errors>): 400 invalid_request_error,
/// 401 authentication_error, 402 billing_error, 403 permission_error,
/// 404 not_found_error, 413 request_too_large, 429 rate_limit_error,
/// 500 api_error, 504 timeout_error, 529 overloaded_error. Other 4xx are
/// invalid requests; 503 is overloaded; other 5xx are API errors.
pub fn anthropic_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// An error in Anthropic's shape (`request_id` only when there is one).
pub fn anthropic_error_json(kind: &str, message: &str, request_id: &str) -> serde_json::Value {
    let mut error = json!({"type": "error", "error": {"type": kind, "message": message}});
    if !request_id.is_empty() {
        error["request_id"] = json!(request_id);
    }
    error
}

impl GatewayError {
    pub fn invalid_request(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param,
        }
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::Internal {
            detail: detail.into(),
        }
    }

    pub fn origin(&self) -> ErrorOrigin {
        match self {
            Self::RouteNotFound { .. }
            | Self::MethodNotAllowed { .. }
            | Self::InvalidPath(_)
            | Self::PayloadTooLarge { .. }
            | Self::InvalidJson(_)
            | Self::InvalidRequest { .. }
            | Self::ModelNotFound(_)
            | Self::Unauthorized { .. }
            | Self::Forbidden(_)
            | Self::NotFound(_)
            | Self::Conflict(_)
            | Self::RateLimited { .. } => ErrorOrigin::Client,
            Self::QuotaUnavailable | Self::StoreUnavailable { .. } => ErrorOrigin::Internal,
            Self::UpstreamUnreachable { .. }
            | Self::UpstreamTimeout { .. }
            | Self::UpstreamInvalid { .. }
            | Self::UpstreamStatus { .. } => ErrorOrigin::Upstream,
            Self::Internal { .. } => ErrorOrigin::Internal,
        }
    }

    /// The one place errors become statuses.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::RouteNotFound { .. } | Self::ModelNotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidPath(_) | Self::InvalidJson(_) | Self::InvalidRequest { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::QuotaUnavailable | Self::StoreUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::UpstreamUnreachable { .. }
            | Self::UpstreamInvalid { .. }
            | Self::UpstreamStatus { .. } => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RouteNotFound { .. } => "route_not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::InvalidPath(_) => "invalid_path",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::InvalidJson(_) => "invalid_json",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::ModelNotFound(_) => "model_not_found",
            Self::Unauthorized { .. } => "invalid_api_key",
            Self::Forbidden(_) => "permission_denied",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::RateLimited { budget: true, .. } => "insufficient_quota",
            Self::RateLimited { budget: false, .. } => "rate_limit_exceeded",
            Self::QuotaUnavailable => "quota_unavailable",
            Self::StoreUnavailable { .. } => "store_unavailable",
            Self::UpstreamUnreachable { .. } => "upstream_unreachable",
            Self::UpstreamTimeout { .. } => "upstream_timeout",
            Self::UpstreamInvalid { .. } => "upstream_invalid_response",
            Self::UpstreamStatus { .. } => "upstream_error",
            Self::Internal { .. } => "internal_error",
        }
    }

    /// The OpenAI `error.type` for this error.
    pub fn openai_type(&self) -> &'static str {
        if let Self::RateLimited { .. } = self {
            return self.code();
        }
        match self.origin() {
            ErrorOrigin::Client => "invalid_request_error",
            ErrorOrigin::Upstream => "upstream_error",
            ErrorOrigin::Internal => "server_error",
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            Self::InvalidRequest { param, .. } => *param,
            Self::ModelNotFound(_) => Some("model"),
            _ => None,
        }
    }

    /// What the log gets beyond the client message. Never sent to clients.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::UpstreamUnreachable { detail }
            | Self::UpstreamInvalid { detail }
            | Self::UpstreamStatus { detail, .. }
            | Self::StoreUnavailable { detail }
            | Self::Internal { detail } => Some(detail),
            _ => None,
        }
    }

    /// The JSON body alone (also used for SSE error events).
    pub fn to_json(&self, shape: ErrorShape, request_id: &str) -> serde_json::Value {
        match shape {
            ErrorShape::OpenAi => json!({
                "error": {
                    "message": self.to_string(),
                    "type": self.openai_type(),
                    "param": self.param(),
                    "code": self.code(),
                }
            }),
            ErrorShape::Gateway => json!({
                "error": {
                    "message": self.to_string(),
                    "code": self.code(),
                    "request_id": request_id,
                }
            }),
            ErrorShape::Anthropic => anthropic_error_json(
                anthropic_error_type(self.status()),
                &self.to_string(),
                request_id,
            ),
        }
    }

    pub fn into_response(self, shape: ErrorShape, request_id: &str) -> Response<Body> {
        let body = self.to_json(shape, request_id).to_string();
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Self::Unauthorized { invalid_token, .. } = &self {
            let challenge = if *invalid_token {
                r#"Bearer realm="gateway", error="invalid_token""#
            } else {
                r#"Bearer realm="gateway""#
            };
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Self::RateLimited { retry_after_s, .. } = &self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
        }
        if let Self::MethodNotAllowed { allow, .. } = &self {
            let allow = allow
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            if let Ok(value) = HeaderValue::from_str(&allow) {
                headers.insert(header::ALLOW, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_details_stay_out_of_the_client_message() {
        let err = GatewayError::UpstreamUnreachable {
            detail: "tcp connect error 10.0.0.7:443 (secret-host)".into(),
        };
        let body = err.to_json(ErrorShape::OpenAi, "rid").to_string();
        assert!(!body.contains("secret-host"), "{body}");
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn method_not_allowed_lists_allowed_methods() {
        let err = GatewayError::MethodNotAllowed {
            method: Method::DELETE,
            path: "/x".into(),
            allow: vec![Method::GET, Method::POST],
        };
        let response = err.into_response(ErrorShape::Gateway, "rid");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET, POST");
    }

    #[test]
    fn anthropic_shape_uses_anthropic_types_per_status() {
        // Shape per <https://docs.anthropic.com/en/api/errors>.
        let cases = [
            (
                GatewayError::invalid_request("max_tokens: Field required", Some("max_tokens")),
                400,
                "invalid_request_error",
            ),
            (
                GatewayError::Unauthorized {
                    message: "Invalid API key.",
                    invalid_token: true,
                },
                401,
                "authentication_error",
            ),
            (
                GatewayError::Forbidden("no".into()),
                403,
                "permission_error",
            ),
            (
                GatewayError::ModelNotFound("claude-x".into()),
                404,
                "not_found_error",
            ),
            (
                GatewayError::PayloadTooLarge { limit: 10 },
                413,
                "request_too_large",
            ),
            (
                GatewayError::RateLimited {
                    limit: "t".into(),
                    retry_after_s: 3,
                    budget: true,
                },
                429,
                "rate_limit_error",
            ),
            (GatewayError::internal("x"), 500, "api_error"),
            (GatewayError::QuotaUnavailable, 503, "overloaded_error"),
            (
                GatewayError::UpstreamTimeout { timeout_ms: 5 },
                504,
                "timeout_error",
            ),
        ];
        for (error, status, kind) in cases {
            let response = error.clone().into_response(ErrorShape::Anthropic, "req_1");
            assert_eq!(response.status().as_u16(), status, "{error:?}");
            let json = error.to_json(ErrorShape::Anthropic, "req_1");
            assert_eq!(json["type"], "error");
            assert_eq!(json["error"]["type"], kind, "{error:?}");
            assert_eq!(json["error"]["message"], error.to_string());
            assert_eq!(json["request_id"], "req_1");
        }
        assert_eq!(
            anthropic_error_type(StatusCode::from_u16(529).unwrap()),
            "overloaded_error"
        );
    }

    #[test]
    fn openai_shape_has_message_type_code() {
        let err = GatewayError::InvalidJson("expected value at line 1 column 1".into());
        let json = err.to_json(ErrorShape::OpenAi, "rid");
        assert_eq!(json["error"]["type"], "invalid_request_error");
        assert_eq!(json["error"]["code"], "invalid_json");
        assert!(json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1 column 1"));
    }
}
