//! Phase 3: request protection. Today the route's body limit; CORS
//! preflight, IP rules and request schema checks belong here.
//!
//! Reads `route`. Adds nothing. Errors: 413 when the declared or actual
//! body is larger than the route's `max_body_bytes`.

use bytes::Bytes;
use http::Request;

use super::{route_config, RequestContext, Shared};
use crate::error::GatewayError;
use crate::http::check_body_size;
use crate::platform::Platform;

pub fn protect<P: Platform>(
    shared: &Shared<P>,
    ctx: &RequestContext<P>,
    request: &Request<Bytes>,
) -> Result<(), GatewayError> {
    let Some(route) = route_config(shared, ctx) else {
        return Ok(());
    };
    check_body_size(request, route.max_body_bytes)
}
