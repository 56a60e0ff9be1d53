//! Phase 5, on `ai` routes: which operation the request asks for (from the
//! path below the route's prefix and the method), its body parsed in the
//! path's dialect into the canonical request, and the model that serves
//! the requested name (a model, or an alias of one: `model_aliases`) —
//! checked against the consumer's allowed models.
//!
//! A dialect that keeps state (Responses) takes what it needs from the
//! gateway's store here, before the estimate: the conversation
//! `previous_response_id` continues, owned by the same consumer.
//!
//! Reads `route`, `identity`, `dialect`. Adds `ai`, `model`, `prompt_estimate`. Errors: 400 (bad body,
//! unknown previous response), 403 (model not allowed), 404 (unknown path or model), 405,
//! 503 (store).

use bytes::Bytes;
use http::Request;

use super::{route_config, RequestContext, Shared};
use crate::ai::{parse_request, AiRequest, Operation};
use crate::auth::authorize_model;
use crate::config::RouteAction;
use crate::error::GatewayError;
use crate::platform::Platform;

pub async fn ai_request<P: Platform>(
    shared: &Shared<P>,
    ctx: &mut RequestContext<P>,
    request: &Request<Bytes>,
) -> Result<(), GatewayError> {
    let Some(route) = route_config(shared, ctx) else {
        return Ok(());
    };
    let RouteAction::Ai(ai_route) = &route.action else {
        return Ok(());
    };
    let matched_len = ctx.route.as_ref().map_or(0, |r| r.matched_len);
    let path = request.uri().path();
    let subpath = path.get(matched_len..).unwrap_or_default();
    let mut parsed = parse_request(
        subpath,
        request.method(),
        path,
        request.headers(),
        request.body(),
    )?;
    ctx.dialect
        .prepare(
            &mut parsed,
            &*shared.platform,
            shared.config.auth.store_timeout,
            ctx.consumer_id().unwrap_or_default(),
            ai_route.response_retention,
        )
        .await?;
    let operation = match &parsed {
        AiRequest::Call(operation) => Some(operation.as_operation()),
        AiRequest::CountTokens(chat) => Some(Operation::Chat(chat)),
        AiRequest::ListModels | AiRequest::StoredResponse { .. } => None,
    };
    if let Some(operation) = operation {
        let name = operation.model();
        let index = shared
            .config
            .resolve_model(name)
            .ok_or_else(|| GatewayError::ModelNotFound(name.to_owned()))?;
        // The consumer's allowed models name the model that serves.
        authorize_model(ctx.identity.as_deref(), &shared.config.models[index].name)?;
        ctx.model = Some(index);
        ctx.prompt_estimate = operation.prompt_estimate();
    }
    ctx.ai = Some(Box::new(parsed));
    Ok(())
}
