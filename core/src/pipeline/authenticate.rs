//! Phase 2: authentication and route authorization, on routes with an
//! `auth` policy (API keys, JWT; see `crate::auth`).
//!
//! Reads `route`. Adds `identity`. Errors: 401 (no or bad credential),
//! 403 (scope or route not allowed), 503 when the key store is down.

use bytes::Bytes;
use http::Request;

use super::{route_config, RequestContext, Shared};
use crate::auth;
use crate::error::GatewayError;
use crate::platform::Platform;

pub async fn authenticate<P: Platform>(
    shared: &Shared<P>,
    ctx: &mut RequestContext<P>,
    request: &Request<Bytes>,
) -> Result<(), GatewayError> {
    let Some(route) = route_config(shared, ctx) else {
        return Ok(());
    };
    let Some(policy) = &route.auth else {
        return Ok(());
    };
    let identity = auth::authenticate(
        shared.config.auth_view(),
        &*shared.platform,
        &shared.auth,
        policy,
        request.headers(),
    )
    .await?;
    let authorized = auth::authorize_route(&identity, policy, &route.name);
    ctx.identity = Some(Box::new(identity));
    authorized
}
