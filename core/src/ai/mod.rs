//! Phase 6b: the OpenAI-compatible AI API.
//!
//! An `ai` route serves, under its `path_prefix` (usually `/v1`):
//! - `POST {prefix}/chat/completions` — stream and non-stream, dispatched to
//!   the provider of the requested model;
//! - `POST {prefix}/embeddings` — dispatched the same way (see
//!   [`embeddings`]);
//! - `GET {prefix}/models` — the configured public model names.
//!
//! Errors on these paths use OpenAI's error JSON so SDKs show the message.
//! Usage of every completion is recorded (the `gateway::usage` log event):
//! as the provider reported it, or estimated locally when it did not, and
//! also when the client disconnects mid-stream or the upstream fails.

pub mod embeddings;
pub mod pricing;
pub mod providers;
pub mod sse;
pub mod usage;

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response};
use serde_json::{json, Map, Value};

use self::embeddings::EmbeddingsRequest;
use self::providers::mock::{self, mock_chat};
use self::providers::{anthropic, bedrock, gemini, openai, ProviderReply};
use self::sse::{ObservedSse, StreamOutcome};
use self::usage::{estimate_prompt_tokens, Usage};
use crate::auth::{authorize_model, Identity};
use crate::body::Body;
use crate::config::{AiRoute, Config, Provider, ProviderKind};
use crate::error::{ErrorOrigin, GatewayError};
use crate::gateway::Shared;
use crate::platform::{BackgroundTask, Clock, Platform};
use crate::quota::{self, Grant, Plan, RateLimitSnapshot, Scope, Subject, Unit};

/// What the AI phase needs for quotas: the applicable plans and who asks.
pub(crate) struct QuotaCall<'a> {
    pub(crate) plans: Vec<&'a Plan>,
    pub(crate) subject: Subject,
}

/// The routed request's context for the AI phase.
pub(crate) struct AiCall<'a> {
    pub(crate) route_name: &'a str,
    pub(crate) route: &'a AiRoute,
    pub(crate) request_id: &'a str,
    pub(crate) identity: Option<&'a Identity>,
    pub(crate) quota: QuotaCall<'a>,
}

/// The parts of an OpenAI chat completion request the gateway reads; the
/// full object is kept in `body` and passed through to OpenAI-compatible
/// providers unchanged but for `model`.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub body: Map<String, Value>,
    pub model: String,
    pub messages: Vec<Value>,
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<u64>,
}

impl ChatRequest {
    /// Parses and checks the fields the gateway relies on; errors are 400s
    /// naming the offending parameter.
    pub fn parse(bytes: &[u8]) -> Result<Self, GatewayError> {
        let (body, model) = parse_object_with_model(bytes)?;
        let messages = match body.get("messages") {
            Some(Value::Array(messages)) if !messages.is_empty() => messages.clone(),
            Some(Value::Array(_)) => {
                return Err(GatewayError::invalid_request(
                    "`messages` must contain at least one message.",
                    Some("messages"),
                ))
            }
            Some(_) => {
                return Err(GatewayError::invalid_request(
                    "`messages` must be an array.",
                    Some("messages"),
                ))
            }
            None => {
                return Err(GatewayError::invalid_request(
                    "Missing required parameter: 'messages'.",
                    Some("messages"),
                ))
            }
        };
        for message in &messages {
            if !message.get("role").is_some_and(Value::is_string) {
                return Err(GatewayError::invalid_request(
                    "Every message must be an object with a string `role`.",
                    Some("messages"),
                ));
            }
        }
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(GatewayError::invalid_request(
                    "`stream` must be a boolean.",
                    Some("stream"),
                ))
            }
        };
        let include_usage = body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let max_tokens = match body
            .get("max_completion_tokens")
            .or_else(|| body.get("max_tokens"))
        {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => Some(n),
                _ => {
                    return Err(GatewayError::invalid_request(
                        "`max_tokens` must be a positive integer.",
                        Some("max_tokens"),
                    ))
                }
            },
        };
        Ok(Self {
            body,
            model,
            messages,
            stream,
            include_usage,
            max_tokens,
        })
    }
}

/// A request body that must be a JSON object naming a `model`; errors are
/// 400s naming the parameter.
pub(crate) fn parse_object_with_model(
    bytes: &[u8],
) -> Result<(Map<String, Value>, String), GatewayError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    let Value::Object(body) = value else {
        return Err(GatewayError::invalid_request(
            "The request body must be a JSON object.",
            None,
        ));
    };
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) | None => {
            return Err(GatewayError::invalid_request(
                "You must provide a model parameter.",
                Some("model"),
            ))
        }
        Some(_) => {
            return Err(GatewayError::invalid_request(
                "`model` must be a string.",
                Some("model"),
            ))
        }
    };
    Ok((body, model))
}

/// Who a usage record is about.
#[derive(Debug, Clone)]
struct UsageContext {
    request_id: String,
    route: String,
    model: String,
    provider: String,
    operation: &'static str,
    prompt_estimate: u64,
    price: Option<pricing::Price>,
}

fn record_usage(ctx: &UsageContext, usage: Usage, source: &'static str, outcome: &'static str) {
    // Unpriced models log a cost of -1 (unknown), never a silent 0.
    let cost_usd = ctx.price.map_or(-1.0, |price| price.cost_usd(&usage));
    tracing::info!(
        target: "gateway::usage",
        request_id = %ctx.request_id,
        route = %ctx.route,
        model = %ctx.model,
        provider = %ctx.provider,
        operation = ctx.operation,
        prompt_tokens = usage.prompt_tokens,
        completion_tokens = usage.completion_tokens,
        total_tokens = usage.total_tokens,
        cached_tokens = usage.cached_tokens,
        usage_source = source,
        cost_usd,
        outcome,
        "usage"
    );
}

/// Serves one request on an `ai` route; `subpath` is the path below the
/// route's prefix.
pub(crate) async fn handle_ai<P: Platform>(
    shared: &Arc<Shared<P>>,
    call: AiCall<'_>,
    subpath: &str,
    request: Request<Bytes>,
) -> Result<Response<Body>, GatewayError> {
    let identity = call.identity;
    let method = request.method().clone();
    let allow = |allowed: Method| GatewayError::MethodNotAllowed {
        method: method.clone(),
        path: request.uri().path().to_owned(),
        allow: vec![allowed],
    };
    match subpath {
        "/chat/completions" if method == Method::POST => {
            let chat = ChatRequest::parse(request.body())?;
            authorize_model(identity, &chat.model)?;
            serve(shared, &call, Operation::Chat(&chat)).await
        }
        "/chat/completions" => Err(allow(Method::POST)),
        "/embeddings" if method == Method::POST => {
            let request = EmbeddingsRequest::parse(request.body())?;
            authorize_model(identity, &request.model)?;
            serve(shared, &call, Operation::Embeddings(&request)).await
        }
        "/embeddings" => Err(allow(Method::POST)),
        "/models" if method == Method::GET => Ok(list_models(&shared.config, identity)),
        "/models" => Err(allow(Method::GET)),
        _ => Err(GatewayError::RouteNotFound {
            method,
            path: request.uri().path().to_owned(),
        }),
    }
}

/// The configured models, limited to those the consumer may use.
fn list_models(config: &Config, identity: Option<&Identity>) -> Response<Body> {
    let data: Vec<Value> = config
        .models
        .iter()
        .filter(|m| authorize_model(identity, &m.name).is_ok())
        .map(|m| {
            json!({
                "id": m.name,
                "object": "model",
                "created": 0,
                "owned_by": config.providers[m.provider].name,
            })
        })
        .collect();
    let mut response = Response::new(Body::from(
        json!({"object": "list", "data": data}).to_string(),
    ));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// What a request on an AI route asks for.
#[derive(Clone, Copy)]
enum Operation<'a> {
    Chat(&'a ChatRequest),
    Embeddings(&'a EmbeddingsRequest),
}

impl Operation<'_> {
    fn model(&self) -> &str {
        match self {
            Self::Chat(chat) => &chat.model,
            Self::Embeddings(request) => &request.model,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Chat(_) => "chat.completions",
            Self::Embeddings(_) => "embeddings",
        }
    }

    fn prompt_estimate(&self) -> u64 {
        match self {
            Self::Chat(chat) => estimate_prompt_tokens(&chat.messages),
            Self::Embeddings(request) => request.estimated_tokens(),
        }
    }

    /// The request with `params` added where the client set nothing.
    fn with_defaults(&self, params: &Map<String, Value>) -> Result<OwnedOperation, GatewayError> {
        let merge = |body: &Map<String, Value>| {
            let mut body = body.clone();
            // Two spellings of one limit: a client setting either keeps it.
            const MAX_TOKENS: [&str; 2] = ["max_tokens", "max_completion_tokens"];
            let client_limits = MAX_TOKENS.iter().any(|k| body.contains_key(*k));
            for (key, value) in params {
                if client_limits && MAX_TOKENS.contains(&key.as_str()) {
                    continue;
                }
                body.entry(key.clone()).or_insert_with(|| value.clone());
            }
            serde_json::to_vec(&Value::Object(body))
                .map_err(|e| GatewayError::internal(format!("request with defaults: {e}")))
        };
        Ok(match self {
            Self::Chat(chat) => OwnedOperation::Chat(ChatRequest::parse(&merge(&chat.body)?)?),
            Self::Embeddings(request) => {
                OwnedOperation::Embeddings(EmbeddingsRequest::parse(&merge(&request.body)?)?)
            }
        })
    }

    /// Completion tokens to reserve: `max_tokens` if set (`None`: the
    /// plan's default); embeddings produce none.
    fn completion_reservation(&self) -> Option<u64> {
        match self {
            Self::Chat(chat) => chat.max_tokens,
            Self::Embeddings(_) => Some(0),
        }
    }
}

/// A request rebuilt with a deployment's defaults.
enum OwnedOperation {
    Chat(ChatRequest),
    Embeddings(EmbeddingsRequest),
}

impl OwnedOperation {
    fn as_operation(&self) -> Operation<'_> {
        match self {
            Self::Chat(chat) => Operation::Chat(chat),
            Self::Embeddings(request) => Operation::Embeddings(request),
        }
    }
}

/// Serves a chat completion or embeddings request: quota reservation,
/// the model's deployments in order, usage accounting and settlement.
async fn serve<P: Platform>(
    shared: &Arc<Shared<P>>,
    call: &AiCall<'_>,
    operation: Operation<'_>,
) -> Result<Response<Body>, GatewayError> {
    let (route_name, route, request_id, quota) =
        (call.route_name, call.route, call.request_id, &call.quota);
    let config = &shared.config;
    let model = config
        .model(operation.model())
        .ok_or_else(|| GatewayError::ModelNotFound(operation.model().to_owned()))?;
    let provider = &config.providers[model.provider];
    let mut usage_ctx = UsageContext {
        request_id: request_id.to_owned(),
        route: route_name.to_owned(),
        model: model.name.clone(),
        provider: provider.name.clone(),
        operation: operation.name(),
        prompt_estimate: operation.prompt_estimate(),
        price: model
            .price
            .or_else(|| pricing::builtin_price(&model.upstream_model)),
    };
    let platform = &shared.platform;

    // Phase 4 for tokens: reserve the worst case now, settle at the end.
    let (grants, token_snapshot) = reserve_tokens(
        shared,
        quota,
        operation.completion_reservation(),
        &model.name,
        usage_ctx.prompt_estimate,
        usage_ctx.price,
    )
    .await?;

    // The primary deployment, then the fallbacks, as plain data (nothing
    // borrowed by a closure lives across the awaits below).
    type DeploymentRef<'a> = (
        usize,
        &'a str,
        Option<pricing::Price>,
        &'a Map<String, Value>,
    );
    let deployments: Vec<DeploymentRef<'_>> = std::iter::once((
        model.provider,
        model.upstream_model.as_str(),
        model.price,
        &model.params,
    ))
    .chain(
        model
            .fallbacks
            .iter()
            .map(|d| (d.provider, d.upstream_model.as_str(), d.price, &d.params)),
    )
    .collect();
    let mut next_deployment = 0;
    let reply = loop {
        let Some(&(provider_index, upstream_model, price, params)) =
            deployments.get(next_deployment)
        else {
            return Err(GatewayError::internal("a model without deployments"));
        };
        next_deployment += 1;
        let provider = &config.providers[provider_index];
        usage_ctx.provider.clone_from(&provider.name);
        usage_ctx.price = price.or_else(|| pricing::builtin_price(upstream_model));
        // The deployment's request defaults, for this attempt only; a
        // failure here is accounted and settled like a failed call.
        let with_defaults = if params.is_empty() {
            Ok(None)
        } else {
            operation.with_defaults(params).map(Some)
        };
        let result = match &with_defaults {
            Ok(owned) => {
                let attempt = owned
                    .as_ref()
                    .map_or(operation, OwnedOperation::as_operation);
                call_provider(shared, provider, upstream_model, route, attempt, request_id).await
            }
            Err(error) => Err(error.clone()),
        };
        // Before any byte reached the client, an unavailable deployment
        // hands the request to the next one.
        let unavailable = match &result {
            Err(error) => error.origin() == ErrorOrigin::Upstream,
            Ok(ProviderReply::Complete { response, .. }) => {
                matches!(response.status().as_u16(), 429 | 503)
            }
            Ok(ProviderReply::Stream { .. }) => false,
        };
        if unavailable && next_deployment < deployments.len() {
            tracing::warn!(model = %model.name, provider = %provider.name, "deployment unavailable; falling back to the next");
            record_usage(&usage_ctx, Usage::new(0, 0), "none", "fell_back");
            continue;
        }
        match result {
            Ok(reply) => break reply,
            Err(error) => {
                record_usage(
                    &usage_ctx,
                    Usage::new(0, 0),
                    "none",
                    upstream_outcome(&error),
                );
                quota::settle(platform, &grants, Usage::default(), None).await;
                return Err(error);
            }
        }
    };

    let mut response = match reply {
        ProviderReply::Complete { response, usage } => {
            let accounted = if response.status().is_success() {
                let (usage, source) = match usage {
                    Some(usage) => (usage, "reported"),
                    None => (Usage::new(usage_ctx.prompt_estimate, 0), "estimated"),
                };
                record_usage(&usage_ctx, usage, source, "completed");
                usage
            } else {
                record_usage(&usage_ctx, Usage::new(0, 0), "none", "upstream_rejected");
                Usage::default()
            };
            quota::settle(platform, &grants, accounted, usage_ctx.price).await;
            response
        }
        ProviderReply::Stream { response } => {
            let (parts, body) = response.into_parts();
            let stream_price = usage_ctx.price;
            let accounted: Arc<Mutex<Option<Usage>>> = Arc::default();
            let slot = accounted.clone();
            let observed = ObservedSse::new(body, move |summary| {
                let (usage, source) = match summary.reported_usage {
                    Some(usage) => (usage, "reported"),
                    None => (
                        Usage::new(
                            usage_ctx.prompt_estimate,
                            summary.estimated_completion_tokens,
                        ),
                        "estimated",
                    ),
                };
                let outcome = match summary.outcome {
                    StreamOutcome::Completed => "completed",
                    StreamOutcome::ClientDisconnected => "client_disconnected",
                    StreamOutcome::UpstreamFailed => "upstream_failed",
                };
                record_usage(&usage_ctx, usage, source, outcome);
                *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(usage);
            });
            let body = if grants.is_empty() {
                observed.into_body()
            } else {
                Body::from_stream(SettleOnEnd {
                    inner: observed.into_body(),
                    shared: Arc::clone(shared),
                    grants,
                    usage: accounted,
                    price: stream_price,
                    pending: None,
                    settled: false,
                })
            };
            Response::from_parts(parts, body)
        }
    };
    if !token_snapshot.is_empty() {
        response.extensions_mut().insert(token_snapshot);
    }
    Ok(response)
}

/// One upstream call to `provider` for `upstream_model`.
async fn call_provider<P: Platform>(
    shared: &Arc<Shared<P>>,
    provider: &Provider,
    upstream_model: &str,
    route: &AiRoute,
    operation: Operation<'_>,
    request_id: &str,
) -> Result<ProviderReply, GatewayError> {
    let platform = &shared.platform;
    let (http, clock, timeout) = (platform.http(), platform.clock(), route.timeout);
    match (&provider.kind, operation) {
        (ProviderKind::Mock { stream_delay }, Operation::Chat(chat)) => {
            let mut id = [0u8; 12];
            platform.fill_random(&mut id);
            let created = clock.now_unix_ms() / 1000;
            Ok(mock_chat(
                shared.clock(),
                chat,
                *stream_delay,
                format!("chatcmpl-{}", hex(&id)),
                created,
            ))
        }
        (ProviderKind::Mock { .. }, Operation::Embeddings(request)) => {
            mock::mock_embeddings(request)
        }
        (ProviderKind::Gemini { base, api_key }, operation) => {
            let deployment = gemini::GeminiDeployment {
                base,
                api_key,
                upstream_model,
                timeout,
            };
            let result = match operation {
                Operation::Chat(chat) => {
                    gemini::gemini_chat(http, clock, deployment, chat, request_id).await
                }
                Operation::Embeddings(request) => {
                    gemini::gemini_embeddings(http, clock, deployment, request, request_id).await
                }
            };
            result
        }
        (
            ProviderKind::Bedrock {
                base,
                region,
                credentials,
            },
            operation,
        ) => {
            let deployment = bedrock::BedrockDeployment {
                base,
                region,
                credentials,
                upstream_model,
                timeout,
            };
            let result = match operation {
                Operation::Chat(chat) => {
                    bedrock::bedrock_chat(http, clock, deployment, chat, request_id).await
                }
                Operation::Embeddings(request) => {
                    bedrock::bedrock_embeddings(http, clock, deployment, request, request_id).await
                }
            };
            result
        }
        (
            ProviderKind::Anthropic {
                base,
                api_key,
                version,
            },
            Operation::Chat(chat),
        ) => {
            let deployment = anthropic::AnthropicDeployment {
                base,
                api_key,
                version,
                upstream_model,
                timeout,
            };
            let result = anthropic::anthropic_chat(http, clock, deployment, chat, request_id).await;
            result
        }
        (ProviderKind::Anthropic { .. }, Operation::Embeddings(request)) => {
            Err(GatewayError::invalid_request(
                format!(
                    "The model `{}` does not support embeddings (Anthropic has no embeddings API).",
                    request.model
                ),
                Some("model"),
            ))
        }
        (ProviderKind::OpenAi { base, api_key }, operation) => {
            let deployment = openai::OpenAiDeployment {
                base,
                api_key: api_key.as_ref(),
                upstream_model,
                timeout,
                flavor: openai::Flavor::OpenAi,
            };
            openai_call(http, clock, deployment, operation, request_id).await
        }
        (
            ProviderKind::Azure {
                base,
                api_key,
                api_version,
            },
            operation,
        ) => {
            let deployment = openai::OpenAiDeployment {
                base,
                api_key: Some(api_key),
                upstream_model,
                timeout,
                flavor: openai::Flavor::Azure { api_version },
            };
            openai_call(http, clock, deployment, operation, request_id).await
        }
    }
}

async fn openai_call(
    http: &impl crate::platform::HttpClient,
    clock: &impl Clock,
    deployment: openai::OpenAiDeployment<'_>,
    operation: Operation<'_>,
    request_id: &str,
) -> Result<ProviderReply, GatewayError> {
    match operation {
        Operation::Chat(chat) => {
            openai::openai_chat(http, clock, deployment, chat, request_id).await
        }
        Operation::Embeddings(request) => {
            openai::openai_embeddings(http, clock, deployment, request, request_id).await
        }
    }
}

/// Token limits of the applicable plans: reserve the estimated prompt plus
/// `max_completion` (or the plan's default reservation), and for spend
/// limits the cost of that at the primary deployment's price. Request limits scoped
/// per model are also counted here, where the model is known.
async fn reserve_tokens<P: Platform>(
    shared: &Arc<Shared<P>>,
    quota: &QuotaCall<'_>,
    max_completion: Option<u64>,
    model: &str,
    prompt_estimate: u64,
    price: Option<pricing::Price>,
) -> Result<(Vec<Grant>, RateLimitSnapshot), GatewayError> {
    if quota.plans.is_empty() {
        return Ok((Vec::new(), RateLimitSnapshot::default()));
    }
    let mut subject = quota.subject.clone();
    subject.model = Some(model.to_owned());
    quota::consume(
        &shared.platform,
        &shared.quota,
        &quota.plans,
        &subject,
        |plan, limit| {
            let completion = max_completion.unwrap_or(plan.reserve_completion_tokens);
            match limit.unit {
                Unit::Requests => (limit.scope == Scope::ConsumerModel).then_some(1),
                Unit::Tokens => Some(prompt_estimate + completion),
                Unit::PromptTokens => Some(prompt_estimate),
                Unit::CompletionTokens => Some(completion),
                // Fallbacks may cost more; settlement charges what was used.
                Unit::SpendMicroUsd => Some(quota::micro_usd(
                    price,
                    &Usage::new(prompt_estimate, completion),
                )),
            }
        },
    )
    .await
}

/// Relays a stream, then settles its token reservations before ending it;
/// if dropped first (client gone), settles in the background.
struct SettleOnEnd<P: Platform> {
    inner: Body,
    shared: Arc<Shared<P>>,
    grants: Vec<Grant>,
    usage: Arc<Mutex<Option<Usage>>>,
    /// The serving deployment's price, for spend limits.
    price: Option<pricing::Price>,
    pending: Option<BackgroundTask>,
    settled: bool,
}

impl<P: Platform> SettleOnEnd<P> {
    fn settle_task(&mut self) -> BackgroundTask {
        let grants = std::mem::take(&mut self.grants);
        let usage = self
            .usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        let shared = Arc::clone(&self.shared);
        let price = self.price;
        Box::pin(async move { quota::settle(&shared.platform, &grants, usage, price).await })
    }
}

impl<P: Platform> futures_util::Stream for SettleOnEnd<P> {
    type Item = Result<Bytes, crate::body::BodyError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            if let Some(task) = this.pending.as_mut() {
                return match task.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.pending = None;
                        this.settled = true;
                        Poll::Ready(None)
                    }
                    Poll::Pending => Poll::Pending,
                };
            }
            if this.settled {
                return Poll::Ready(None);
            }
            match std::pin::Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(None) => this.pending = Some(this.settle_task()),
                other => return other,
            }
        }
    }
}

impl<P: Platform> Drop for SettleOnEnd<P> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // Dropping the observed stream first records what was streamed.
        drop(std::mem::take(&mut self.inner));
        let task = self.pending.take().unwrap_or_else(|| self.settle_task());
        self.shared.platform.spawn(task);
    }
}

/// The `outcome` of a usage record for a call that failed before any reply.
fn upstream_outcome(err: &GatewayError) -> &'static str {
    match (err, err.origin()) {
        (GatewayError::UpstreamTimeout { .. }, _) => "upstream_timeout",
        // Refused before reaching the provider (a parameter it cannot take).
        (_, ErrorOrigin::Client) => "invalid_request",
        (_, ErrorOrigin::Internal) => "gateway_error",
        (_, ErrorOrigin::Upstream) => "upstream_failed",
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(body: &str) -> GatewayError {
        ChatRequest::parse(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn chat_request_errors_name_the_parameter() {
        assert!(matches!(parse_err("{"), GatewayError::InvalidJson(_)));
        assert!(matches!(
            parse_err("[]"),
            GatewayError::InvalidRequest { param: None, .. }
        ));
        assert!(matches!(
            parse_err(r#"{"messages":[]}"#),
            GatewayError::InvalidRequest {
                param: Some("model"),
                ..
            }
        ));
        assert!(matches!(
            parse_err(r#"{"model":"m"}"#),
            GatewayError::InvalidRequest {
                param: Some("messages"),
                ..
            }
        ));
        assert!(matches!(
            parse_err(r#"{"model":"m","messages":[{"content":"x"}]}"#),
            GatewayError::InvalidRequest {
                param: Some("messages"),
                ..
            }
        ));
        assert!(matches!(
            parse_err(r#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#),
            GatewayError::InvalidRequest {
                param: Some("stream"),
                ..
            }
        ));
        assert!(matches!(
            parse_err(r#"{"model":"m","messages":[{"role":"user"}],"max_tokens":0}"#),
            GatewayError::InvalidRequest {
                param: Some("max_tokens"),
                ..
            }
        ));
    }

    #[test]
    fn chat_request_reads_stream_options() {
        let chat = ChatRequest::parse(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":7}"#,
        )
        .unwrap();
        assert!(chat.stream && chat.include_usage);
        assert_eq!(chat.max_tokens, Some(7));
    }

    #[test]
    fn hex_encodes() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
