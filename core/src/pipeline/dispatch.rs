//! Phase 9: the route's action — the REST proxy (`http::proxy`), the AI
//! router (`ai::router`, which attaches the accounting observer to the
//! response body), or the admin API (`admin`).
//!
//! Reads everything earlier phases added; takes the `reservation` (the AI
//! router settles it). Adds `attempts` and `timings.dispatched_ms`. Errors:
//! the upstream's (passed through in the route's shape), 502, 504.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};

use super::{route_config, RequestContext, Shared};
use crate::ai::accounting::UsageRecord;
use crate::ai::router::{self, Upstreams};
use crate::ai::{self, AiRequest};
use crate::auth::CREDENTIAL_HEADERS;
use crate::body::Body;
use crate::config::RouteAction;
use crate::error::GatewayError;
use crate::http::proxy::{self, ProxyCall};
use crate::http::RuntimeDeadline;
use crate::platform::{Clock, Platform};
use crate::quota::Reservation;

pub async fn dispatch<P: Platform>(
    shared: &Arc<Shared<P>>,
    ctx: &mut RequestContext<P>,
    request: Request<Bytes>,
) -> Result<Response<Body>, GatewayError> {
    let (Some(route), Some(matched)) = (route_config(shared, ctx), ctx.route.as_ref()) else {
        return Err(GatewayError::internal("dispatch without a route"));
    };
    ctx.timings.dispatched_ms = Some(shared.platform.clock().now_unix_ms());
    match &route.action {
        RouteAction::Proxy(proxy_route) => {
            let policy = route.auth.as_ref();
            let strip_headers: &[&str] = match policy {
                Some(policy) if !policy.forward_credential => &CREDENTIAL_HEADERS,
                _ => &[],
            };
            let consumer_id = match policy {
                Some(policy) if policy.forward_consumer_id => ctx.consumer_id(),
                _ => None,
            };
            let call = ProxyCall {
                route: proxy_route,
                params: &matched.params,
                matched_len: matched.matched_len,
                request_id: &ctx.request_id,
                strip_headers,
                consumer_id,
            };
            let platform = &shared.platform;
            proxy::forward(platform.http(), platform.clock(), call, request).await
        }
        RouteAction::Ai(ai_route) => {
            let config = &shared.config;
            let model = match (ctx.ai.as_deref(), ctx.model) {
                (Some(AiRequest::ListModels), _) => {
                    return Ok(ai::list_models(
                        &config.providers,
                        &config.models,
                        ctx.identity.as_deref(),
                        request.headers(),
                    ))
                }
                (Some(AiRequest::StoredResponse { id, delete }), _) => {
                    return ai::dialects::responses::serve_stored(
                        &*shared.platform,
                        config.auth.store_timeout,
                        ctx.consumer_id().unwrap_or_default(),
                        id,
                        *delete,
                    )
                    .await;
                }
                (Some(AiRequest::Call(_) | AiRequest::CountTokens(_)), Some(model)) => {
                    &config.models[model]
                }
                _ => return Err(GatewayError::internal("ai dispatch without a request")),
            };
            let upstreams = Upstreams {
                platform: &shared.platform,
                providers: &config.providers,
                route: ai_route,
                request_id: &ctx.request_id,
                deadline_ms: request
                    .extensions()
                    .get::<RuntimeDeadline>()
                    .map(|d| d.unix_ms),
                dialect: ctx.dialect,
                store_timeout: config.auth.store_timeout,
            };
            let operation = match ctx.ai.as_deref() {
                Some(AiRequest::Call(operation)) => operation,
                Some(AiRequest::CountTokens(chat)) => {
                    return router::count_tokens(upstreams, model, chat, ctx.prompt_estimate).await;
                }
                _ => return Err(GatewayError::internal("ai dispatch without a request")),
            };
            let operation = operation.as_operation();
            let record = UsageRecord::new(
                ctx.request_id.clone(),
                route.name.clone(),
                model.name.clone(),
                operation,
                ctx.prompt_estimate,
            );
            let reservation = ctx
                .reservation
                .take()
                .unwrap_or_else(|| Reservation::new(Arc::clone(&shared.platform), Vec::new()));
            // Boxed: the router's state is large, and inline it would
            // enlarge every request's future (measured: proxy requests paid
            // for it in memcpy).
            Box::pin(router::serve(
                upstreams,
                model,
                operation,
                record,
                reservation,
                &mut ctx.attempts,
            ))
            .await
            .map(|mut response| {
                if !ai_route.forward_provider_rate_limits {
                    remove_provider_rate_limits(response.headers_mut());
                }
                response
            })
        }
    }
}

/// The admin API (phases 2–8 do not apply: it checks its own key, then
/// reads the body).
pub async fn admin<P, B>(
    shared: &Shared<P>,
    subpath: &str,
    request: Request<Bytes>,
    body: B,
) -> Result<Response<Body>, GatewayError>
where
    P: Platform,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let Some(admin) = &shared.config.admin else {
        return Err(GatewayError::internal(
            "admin dispatch without admin config",
        ));
    };
    // Boxed for the same reason as the AI router: rare and large.
    Box::pin(crate::admin::handle_admin(
        &shared.config,
        &*shared.platform,
        &shared.auth,
        admin,
        subpath,
        request,
        body,
    ))
    .await
}

/// Drops the provider's `x-ratelimit-*` headers: they describe the
/// gateway's account with the provider. (Routes with plans get the
/// gateway's own in the respond phase.)
fn remove_provider_rate_limits(headers: &mut http::HeaderMap) {
    let names: Vec<http::HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-ratelimit-"))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}
