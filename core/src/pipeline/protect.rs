//! Phase 3: request protection. Today the route's body limit; CORS
//! preflight, IP rules and request schema checks belong here.
//!
//! Reads `route`. Adds nothing. Errors: 413 when the declared or actual
//! body is larger than the route's `max_body_bytes`.

use bytes::Bytes;
use http::{header, Request};

use super::{route_config, RequestContext, Shared};
use crate::error::GatewayError;
use crate::platform::Platform;

pub fn protect<P: Platform>(
    shared: &Shared<P>,
    ctx: &RequestContext<P>,
    request: &Request<Bytes>,
) -> Result<(), GatewayError> {
    let Some(route) = route_config(shared, ctx) else {
        return Ok(());
    };
    let declared_len = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = |n: u64| n > route.max_body_bytes as u64;
    if declared_len.is_some_and(too_large) || too_large(request.body().len() as u64) {
        return Err(GatewayError::PayloadTooLarge {
            limit: route.max_body_bytes,
        });
    }
    Ok(())
}
