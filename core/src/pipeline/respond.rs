//! Phase 10: the response every request gets. An error is logged once (at
//! the level its origin deserves) and rendered in the route's shape; routes
//! with plans get rate-limit headers; every response carries the request
//! id; one `request` access-log event is written.

use http::{HeaderValue, Response};

use super::{RequestContext, Shared};
use crate::body::Body;
use crate::error::{ErrorOrigin, GatewayError};
use crate::http::X_REQUEST_ID;
use crate::platform::{Clock, Platform};
use crate::quota::{LimitStatus, RateLimitSnapshot};

pub fn respond<P: Platform>(
    shared: &Shared<P>,
    ctx: &mut RequestContext<P>,
    result: Result<Response<Body>, GatewayError>,
) -> Response<Body> {
    let clock = shared.platform.clock();
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            log_error(&error);
            error.into_response(ctx.shape, &ctx.request_id)
        }
    };
    let now_ms = clock.now_unix_ms();
    ctx.timings.responded_ms = Some(now_ms);
    if ctx.limited {
        set_rate_limit_headers(response.headers_mut(), &ctx.rate_limits, now_ms, ctx.shape);
    }
    if let Ok(value) = HeaderValue::from_str(&ctx.request_id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    let latency_ms = now_ms.saturating_sub(ctx.timings.received_ms);
    let served_by = ctx.attempts.last().map(|a| a.provider.as_str());
    tracing::info!(
        route = %ctx.route_name(&shared.config),
        consumer = ctx.consumer_id().unwrap_or_default(),
        provider = served_by.unwrap_or_default(),
        attempts = ctx.attempts.len(),
        status = response.status().as_u16(),
        latency_ms,
        streaming = response.body().is_stream(),
        "request"
    );
    response
}

/// `RateLimit-Limit`/`-Remaining`/`-Reset` (the IETF draft's fields, for
/// the most constrained request limit, else token limit) and, on AI routes,
/// OpenAI's `x-ratelimit-*-requests` / `-tokens`, or on Anthropic's paths
/// its `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`
/// (reset as an RFC 3339 time), which the Anthropic SDKs and Claude Code
/// read (they replace any the upstream sent: clients see the gateway's
/// limits, not the provider's).
fn set_rate_limit_headers(
    headers: &mut http::HeaderMap,
    snapshot: &RateLimitSnapshot,
    now_ms: u64,
    shape: crate::error::ErrorShape,
) {
    let reset_s = |s: &LimitStatus| s.reset_ms.saturating_sub(now_ms).div_ceil(1000);
    if let Some(primary) = snapshot.requests.or(snapshot.tokens) {
        headers.insert("ratelimit-limit", HeaderValue::from(primary.max));
        headers.insert("ratelimit-remaining", HeaderValue::from(primary.remaining));
        headers.insert("ratelimit-reset", HeaderValue::from(reset_s(&primary)));
    }
    let anthropic = match shape {
        crate::error::ErrorShape::OpenAi => false,
        crate::error::ErrorShape::Anthropic => true,
        crate::error::ErrorShape::Gateway => return,
    };
    for (kind, status) in [("requests", snapshot.requests), ("tokens", snapshot.tokens)] {
        let header = |name: &str| {
            if anthropic {
                format!("anthropic-ratelimit-{kind}-{name}")
            } else {
                format!("x-ratelimit-{name}-{kind}")
            }
        };
        for name in ["limit", "remaining", "reset"] {
            headers.remove(header(name));
        }
        if let Some(status) = status {
            let reset = if anthropic {
                crate::util::rfc3339_utc(status.reset_ms.div_ceil(1000))
            } else {
                format!("{}s", reset_s(&status))
            };
            let pairs = [
                ("limit", status.max.to_string()),
                ("remaining", status.remaining.to_string()),
                ("reset", reset),
            ];
            for (name, value) in pairs {
                if let (Ok(name), Ok(value)) = (
                    http::HeaderName::try_from(header(name)),
                    HeaderValue::try_from(value),
                ) {
                    headers.insert(name, value);
                }
            }
        }
    }
}

/// Logs an error once, at the level its origin deserves, with the detail
/// that the client does not see.
fn log_error(error: &GatewayError) {
    let status = error.status().as_u16();
    let code = error.code();
    match error.origin() {
        ErrorOrigin::Client => tracing::info!(status, code, error = %error, "request rejected"),
        ErrorOrigin::Upstream => {
            tracing::warn!(status, code, error = %error, detail = error.detail().unwrap_or_default(), "upstream failed");
        }
        ErrorOrigin::Internal => {
            tracing::error!(
                status,
                code,
                detail = error.detail().unwrap_or_default(),
                "internal error"
            );
        }
    }
}
