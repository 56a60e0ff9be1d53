//! Phases 4 and 6: quotas (see `crate::quota` for the algorithms and the
//! store contract).
//!
//! [`requests`] (phase 4) picks the plans that apply — the route's, then
//! the consumer's — and consumes one unit of each request limit, before the
//! body is parsed, so malformed requests count too. [`reserve`] (phase 6,
//! `ai` routes) reserves the worst case of each token and spend limit (and
//! counts per-model request limits) once the model and prompt are known,
//! and caps a chat's completion at what it reserved (see
//! `ChatRequest::cap_completion`); the [`Reservation`] it puts in the
//! context is settled by the dispatch.
//!
//! Reads `route`, `identity`, `client`, then `ai`, `model` and
//! `prompt_estimate`. Adds
//! `plans`, `subject`, `limited`, `rate_limits` (only when some plan
//! applies), `reservation`; may lower the chat's `max_tokens` in `ai`. Errors: 429
//! (`rate_limit_exceeded`, or `insufficient_quota` for budgets), 503 when
//! the store fails and the plan fails closed.

use std::sync::Arc;

use super::{route_config, RequestContext, Shared};
use crate::ai::accounting::reservation_amount;
use crate::ai::pricing::deployment_price;
use crate::ai::{AiRequest, OwnedOperation};
use crate::error::GatewayError;
use crate::platform::Platform;
use crate::quota::{self, Plan, Reservation, Subject, Unit};

/// Phase 4: request limits.
pub async fn requests<P: Platform>(
    shared: &Shared<P>,
    ctx: &mut RequestContext<P>,
) -> Result<(), GatewayError> {
    let Some(route) = route_config(shared, ctx) else {
        return Ok(());
    };
    let config = &shared.config;
    let mut plans: Vec<usize> = route.plan.into_iter().collect();
    let consumer_plan = ctx
        .identity
        .as_ref()
        .and_then(|i| i.consumer.as_ref())
        .and_then(|c| c.plan.as_deref())
        .and_then(|name| config.plans.iter().position(|p| p.name == name));
    if let Some(plan) = consumer_plan.filter(|p| !plans.contains(p)) {
        plans.push(plan);
    }
    if plans.is_empty() {
        return Ok(());
    }
    ctx.subject = Some(Box::new(Subject {
        consumer: ctx.consumer_id().map(str::to_owned),
        route: route.name.clone(),
        model: None,
        ip: ctx.client.and_then(|c| c.ip),
    }));
    ctx.plans = plans;
    ctx.limited = true;
    let plans: Vec<&Plan> = ctx.plans.iter().map(|&i| &config.plans[i]).collect();
    let Some(subject) = &ctx.subject else {
        return Ok(());
    };
    quota::consume(
        &shared.platform,
        &shared.quota,
        &plans,
        subject,
        &mut ctx.rate_limits,
        |_, limit| (limit.unit == Unit::Requests).then_some(1),
    )
    .await
    .map(drop)
}

/// Phase 6: the token and spend reservation of an AI call.
pub async fn reserve<P: Platform>(
    shared: &Arc<Shared<P>>,
    ctx: &mut RequestContext<P>,
) -> Result<(), GatewayError> {
    let config = &shared.config;
    // A chat without a completion limit gets the smallest default
    // reservation of the plans that settle tokens or spend, written into the
    // upstream request: the call can then never use more than was reserved.
    if let Some(AiRequest::Call(OwnedOperation::Chat(chat))) = ctx.ai.as_deref_mut() {
        // The model's own output limit first: a client asking for more
        // gets the most the model gives (and is reserved for that).
        if let Some(limit) = ctx.model.and_then(|m| config.models[m].max_output_tokens) {
            if chat.max_tokens.is_some_and(|max| max > limit) {
                chat.cap_completion(limit);
            }
        }
        let cap = ctx
            .plans
            .iter()
            .map(|&i| &config.plans[i])
            .filter(|plan| plan.limits.iter().any(|l| l.unit.is_settled()))
            .map(|plan| plan.reserve_completion_tokens)
            .min();
        if let (None, Some(cap)) = (chat.max_tokens, cap) {
            chat.cap_completion(cap);
        }
    }
    let (Some(AiRequest::Call(operation)), Some(model)) = (ctx.ai.as_deref(), ctx.model) else {
        return Ok(());
    };
    let model = &config.models[model];
    let operation = operation.as_operation();
    let grants = match &ctx.subject {
        Some(subject) if !ctx.plans.is_empty() => {
            let plans: Vec<&Plan> = ctx.plans.iter().map(|&i| &config.plans[i]).collect();
            let mut subject = Subject::clone(subject);
            subject.model = Some(model.name.clone());
            let (prompt_estimate, price) = (
                ctx.prompt_estimate,
                deployment_price(model.price, &model.upstream_model),
            );
            quota::consume(
                &shared.platform,
                &shared.quota,
                &plans,
                &subject,
                &mut ctx.rate_limits,
                |plan, limit| reservation_amount(operation, prompt_estimate, price, plan, limit),
            )
            .await?
        }
        _ => Vec::new(),
    };
    ctx.reservation = Some(Reservation::new(Arc::clone(&shared.platform), grants));
    Ok(())
}
