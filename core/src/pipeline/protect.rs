//! Phase 3: request protection. Reads the body, bounded by the route's
//! `max_body_bytes`; CORS preflight, IP rules and request schema checks
//! belong here.
//!
//! Reads `route`. Puts the body into the request. Errors: 413 when the
//! declared `Content-Length` is above the limit (nothing is read) or a body
//! without one grows past it (reading stops there); 400 when the body
//! cannot be read.

use std::fmt::Display;

use bytes::Bytes;
use http::Request;
use http_body::Body as HttpBody;

use super::{route_config, RequestContext, Shared};
use crate::error::GatewayError;
use crate::http::read_body;
use crate::platform::Platform;

pub async fn protect<P, B>(
    shared: &Shared<P>,
    ctx: &RequestContext<P>,
    request: &mut Request<Bytes>,
    body: B,
) -> Result<(), GatewayError>
where
    P: Platform,
    B: HttpBody<Data = Bytes>,
    B::Error: Display,
{
    // Without a route (never after phase 1) no body is accepted.
    let limit = route_config(shared, ctx).map_or(0, |route| route.max_body_bytes);
    *request.body_mut() = read_body(request.headers(), body, limit).await?;
    Ok(())
}
