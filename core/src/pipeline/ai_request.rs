//! Phase 5, on `ai` routes: which operation the request asks for (from the
//! path below the route's prefix and the method), its parsed body, and the
//! requested model — checked against the consumer's allowed models and the
//! configured ones.
//!
//! Reads `route`, `identity`. Adds `ai`, `model`, `prompt_estimate`. Errors: 400 (bad body),
//! 403 (model not allowed), 404 (unknown path or model), 405.

use bytes::Bytes;
use http::Request;

use super::{route_config, RequestContext, Shared};
use crate::ai::AiRequest;
use crate::auth::authorize_model;
use crate::config::RouteAction;
use crate::error::GatewayError;
use crate::platform::Platform;

pub fn ai_request<P: Platform>(
    shared: &Shared<P>,
    ctx: &mut RequestContext<P>,
    request: &Request<Bytes>,
) -> Result<(), GatewayError> {
    let Some(route) = route_config(shared, ctx) else {
        return Ok(());
    };
    if !matches!(route.action, RouteAction::Ai(_)) {
        return Ok(());
    }
    let matched_len = ctx.route.as_ref().map_or(0, |r| r.matched_len);
    let path = request.uri().path();
    let subpath = path.get(matched_len..).unwrap_or_default();
    let parsed = AiRequest::parse(subpath, request.method(), path, request.body())?;
    if let AiRequest::Call(operation) = &parsed {
        let operation = operation.as_operation();
        let name = operation.model();
        authorize_model(ctx.identity.as_deref(), name)?;
        let index = shared
            .config
            .models
            .iter()
            .position(|m| m.name == name)
            .ok_or_else(|| GatewayError::ModelNotFound(name.to_owned()))?;
        ctx.model = Some(index);
        ctx.prompt_estimate = operation.prompt_estimate();
    }
    ctx.ai = Some(Box::new(parsed));
    Ok(())
}
