//! The AI router: serves a parsed request from the model's deployments —
//! the primary, then each fallback in order while the one before is
//! unavailable (unreachable, timed out, 5xx, 429, 503) and no byte has
//! reached the client — and hands the reply to accounting: complete replies
//! are settled here, streams get the [`StreamAccounting`] observer.

use std::sync::Arc;

use http::Response;
use serde_json::{Map, Value};

use super::accounting::{upstream_outcome, StreamAccounting, UsageRecord};
use super::config::{AiRoute, Model, Provider, ProviderKind};
use super::dialects::{Dialect, Render};
use super::idle::with_idle_timeout;
use super::passthrough::{unsupported_on, GeneratedImages, PassthroughRequest};
use super::pricing::Price;
use super::providers::mock::{self, mock_chat};
use super::providers::openai_endpoints::openai_passthrough;
use super::providers::{anthropic, bedrock, gemini, openai, ProviderReply};
use super::request::{NativeRequest, Operation, OwnedOperation};
use super::usage::Usage;
use crate::body::observe::observe;
use crate::body::Body;
use crate::error::{ErrorOrigin, GatewayError};
use crate::platform::{with_timeout, Clock, Platform, PlatformClock};
use crate::quota::{Actual, Reservation};
use crate::util::{duration_ms, hex};

/// One deployment tried for a request, for the request context and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub provider: String,
    pub upstream_model: String,
    /// `served`, `fell_back` or the failure's usage outcome.
    pub outcome: &'static str,
}

/// Where and how to call: the platform, the providers, the route.
pub struct Upstreams<'a, P> {
    pub platform: &'a Arc<P>,
    pub providers: &'a [Provider],
    pub route: &'a AiRoute,
    pub request_id: &'a str,
    /// When the runtime stops the request (Unix ms), if it does.
    pub deadline_ms: Option<u64>,
    /// The client's dialect: a deployment that speaks it is called
    /// natively; other replies are rendered back into it.
    pub dialect: Dialect,
    /// The key-value store's deadline (dialects that keep state).
    pub store_timeout: std::time::Duration,
}

/// Time kept back before a runtime deadline: to write the error event and
/// settle the reservation (a few quota-store calls) before the runtime
/// kills the request.
const SETTLE_MARGIN_MS: u64 = 2_000;

impl<P: Platform> Upstreams<'_, P> {
    /// The time left for work that must end before the runtime's deadline
    /// (`None`: no deadline).
    fn before_deadline(&self) -> Option<std::time::Duration> {
        let now = self.platform.clock().now_unix_ms();
        self.deadline_ms.map(|deadline| {
            std::time::Duration::from_millis(
                deadline
                    .saturating_sub(now)
                    .saturating_sub(SETTLE_MARGIN_MS),
            )
        })
    }
}

/// Serves `operation` for `model`; see the module docs. Every attempt is
/// appended to `attempts`; `reservation` is settled exactly once (here for
/// complete replies and failures, by the stream observer for streams).
pub async fn serve<P: Platform>(
    upstreams: Upstreams<'_, P>,
    model: &Model,
    operation: Operation<'_>,
    mut record: UsageRecord,
    reservation: Reservation<P>,
    attempts: &mut Vec<Attempt>,
) -> Result<Response<Body>, GatewayError> {
    // The primary deployment, then the fallbacks, as plain data (nothing
    // borrowed by a closure lives across the awaits below).
    type DeploymentRef<'a> = (usize, &'a str, Option<Price>, &'a Map<String, Value>);
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
    // What earlier attempts were billed (a fan-out that failed part-way):
    // charged whichever deployment serves in the end.
    let mut billed = Actual::default();
    let reply = loop {
        let Some(&(provider_index, upstream_model, price, params)) =
            deployments.get(next_deployment)
        else {
            return Err(GatewayError::internal("a model without deployments"));
        };
        next_deployment += 1;
        let provider = &upstreams.providers[provider_index];
        record.deployment(&provider.name, upstream_model, price);
        let mut attempt = Attempt {
            provider: provider.name.clone(),
            upstream_model: upstream_model.to_owned(),
            outcome: "served",
        };
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
                // The whole call, the reply's body included: an upstream
                // that sends headers and then stalls times out too.
                let call = call_provider(
                    upstreams.platform,
                    provider,
                    upstream_model,
                    &upstreams,
                    attempt,
                );
                let timeout = upstreams
                    .before_deadline()
                    .map_or(upstreams.route.timeout, |left| {
                        left.min(upstreams.route.timeout)
                    });
                with_timeout(upstreams.platform.clock(), timeout, call)
                    .await
                    .unwrap_or(Err(GatewayError::UpstreamTimeout {
                        timeout_ms: duration_ms(timeout),
                    }))
            }
            Err(error) => Err(error.clone()),
        };
        // Before any byte reached the client, an unavailable deployment
        // hands the request to the next one.
        let unavailable = match &result {
            Err(error) => error.origin() == ErrorOrigin::Upstream,
            Ok(ProviderReply::Complete { response, .. }) => {
                matches!(response.status().as_u16(), 429 | 503 | 529)
            }
            Ok(ProviderReply::Stream { .. }) => false,
            Ok(ProviderReply::PartialFailure { failure, .. }) => match failure {
                Err(error) => error.origin() == ErrorOrigin::Upstream,
                Ok(response) => matches!(response.status().as_u16(), 429 | 503 | 529),
            },
        };
        if unavailable && next_deployment < deployments.len() {
            tracing::warn!(model = %model.name, provider = %provider.name, "deployment unavailable; falling back to the next");
            match &result {
                Ok(ProviderReply::PartialFailure {
                    billed: usage,
                    reported,
                    ..
                }) => billed = billed.plus(record.partial_failure(*usage, *reported)),
                _ => record.log(Usage::new(0, 0), "none", "fell_back"),
            }
            attempt.outcome = "fell_back";
            attempts.push(attempt);
            continue;
        }
        match result {
            Ok(reply) => {
                if matches!(reply, ProviderReply::PartialFailure { .. }) {
                    attempt.outcome = "partial_failure";
                }
                attempts.push(attempt);
                break (reply, &provider.kind);
            }
            Err(error) => {
                let outcome = upstream_outcome(&error);
                record.log(Usage::new(0, 0), "none", outcome);
                attempt.outcome = outcome;
                attempts.push(attempt);
                reservation.settle(billed).await;
                return Err(error);
            }
        }
    };

    // A reply is rendered into the client's dialect: translated, or (a
    // native one) finished with what the gateway adds.
    let (reply, kind) = reply;
    let dialect = upstreams.dialect;
    let render = (dialect != Dialect::OpenAiChat).then(|| Render {
        translated: !dialect.native_on(kind),
        public_model: operation.model(),
        prompt_estimate: record.prompt_estimate,
        native: match operation {
            Operation::Chat(chat) => chat.native.as_ref(),
            Operation::Embeddings(_) | Operation::Passthrough(_) => None,
        },
        platform: upstreams.platform,
        store_timeout: upstreams.store_timeout,
    });
    Ok(match reply {
        ProviderReply::Complete { response, usage } => {
            record.images = response.extensions().get::<GeneratedImages>().map(|n| n.0);
            let used = record.complete(response.status().is_success(), usage);
            reservation.settle(billed.plus(used)).await;
            // A complete reply relayed as a stream (binary audio): its gaps
            // are bounded like an SSE stream's.
            let response = if response.body().is_stream() {
                let (parts, body) = response.into_parts();
                let body = with_idle_timeout(
                    body,
                    upstreams.platform,
                    upstreams.route.stream_idle_timeout,
                    upstreams.before_deadline(),
                );
                Response::from_parts(parts, body)
            } else {
                response
            };
            match render {
                Some(render) => dialect.render_complete(response, render).await?,
                None => response,
            }
        }
        // `billed` is nothing here: only embeddings fan out, and they never
        // stream.
        ProviderReply::Stream { response } => {
            let (parts, body) = response.into_parts();
            let body = with_idle_timeout(
                body,
                upstreams.platform,
                upstreams.route.stream_idle_timeout,
                upstreams.before_deadline(),
            );
            let accounting = StreamAccounting::new(record, reservation, dialect.stream_wire(kind));
            let response = Response::from_parts(parts, observe(body, accounting).await);
            match render {
                Some(render) => dialect.render_stream(response, render),
                None => response,
            }
        }
        ProviderReply::PartialFailure {
            failure,
            billed: usage,
            reported,
        } => {
            let used = record.partial_failure(usage, reported);
            reservation.settle(billed.plus(used)).await;
            let failure = failure?;
            match render {
                Some(render) => dialect.render_complete(failure, render).await?,
                None => failure,
            }
        }
    })
}

/// `count_tokens` for `chat` on `model`: asked of the model's primary
/// deployment when it speaks the client's dialect (Anthropic), else the
/// gateway's estimate of the prompt (`prompt_estimate`, what it reserves
/// with). Nothing is reserved or charged: no tokens are generated.
pub async fn count_tokens<P: Platform>(
    upstreams: Upstreams<'_, P>,
    model: &Model,
    chat: &super::ChatRequest,
    prompt_estimate: u64,
) -> Result<Response<Body>, GatewayError> {
    let provider = &upstreams.providers[model.provider];
    let native = native_request(upstreams.dialect, &provider.kind, Operation::Chat(chat));
    match (&provider.kind, native) {
        (
            ProviderKind::Anthropic {
                base,
                api_key,
                version,
            },
            Some(NativeRequest::AnthropicMessages(native)),
        ) => {
            let deployment = anthropic::AnthropicDeployment {
                base,
                api_key,
                version,
                upstream_model: &model.upstream_model,
                timeout: upstreams.route.timeout,
            };
            let platform = upstreams.platform;
            anthropic::anthropic_count_tokens(
                platform.http(),
                platform.clock(),
                deployment,
                native,
                upstreams.request_id,
            )
            .await
        }
        _ => Ok(super::dialects::anthropic::count_tokens_estimate(
            prompt_estimate,
        )),
    }
}

/// One upstream call to `provider` for `upstream_model`.
async fn call_provider<P: Platform>(
    platform: &Arc<P>,
    provider: &Provider,
    upstream_model: &str,
    upstreams: &Upstreams<'_, P>,
    operation: Operation<'_>,
) -> Result<ProviderReply, GatewayError> {
    let (route, request_id) = (upstreams.route, upstreams.request_id);
    let (http, clock, timeout) = (platform.http(), platform.clock(), route.timeout);
    match (&provider.kind, operation) {
        (ProviderKind::Mock { stream_delay }, Operation::Chat(chat)) => {
            let mut id = [0u8; 12];
            platform.fill_random(&mut id);
            let created = clock.now_unix_ms() / 1000;
            Ok(mock_chat(
                PlatformClock::new(Arc::clone(platform)),
                chat,
                upstream_model,
                *stream_delay,
                format!("chatcmpl-{}", hex(&id)),
                created,
            ))
        }
        (ProviderKind::Mock { .. }, Operation::Embeddings(request)) => {
            mock::mock_embeddings(request)
        }
        (
            kind @ (ProviderKind::Mock { .. } | ProviderKind::Anthropic { .. }),
            Operation::Passthrough(request),
        ) => Err(passthrough_unsupported(request, kind)),
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
                Operation::Passthrough(request) => {
                    Err(passthrough_unsupported(request, &provider.kind))
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
                Operation::Passthrough(request) => {
                    Err(passthrough_unsupported(request, &provider.kind))
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
            let native = native_request(upstreams.dialect, &provider.kind, operation);
            let result = match native {
                Some(NativeRequest::AnthropicMessages(native)) => {
                    anthropic::anthropic_messages_native(
                        http, clock, deployment, chat, native, request_id,
                    )
                    .await
                }
                _ => anthropic::anthropic_chat(http, clock, deployment, chat, request_id).await,
            };
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
        (ProviderKind::OpenAi { base, api_key, .. }, operation) => {
            let deployment = openai::OpenAiDeployment {
                base,
                api_key: api_key.as_ref(),
                upstream_model,
                timeout,
                flavor: openai::Flavor::OpenAi,
            };
            let native = native_request(upstreams.dialect, &provider.kind, operation);
            openai_call(http, clock, deployment, operation, native, request_id).await
        }
        (
            ProviderKind::Azure {
                base,
                api_key,
                api_version,
                ..
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
            let native = native_request(upstreams.dialect, &provider.kind, operation);
            openai_call(http, clock, deployment, operation, native, request_id).await
        }
    }
}

/// The request in the client's dialect when the provider speaks it itself.
fn native_request<'a>(
    dialect: Dialect,
    kind: &ProviderKind,
    operation: Operation<'a>,
) -> Option<&'a NativeRequest> {
    match operation {
        Operation::Chat(chat) => chat.native.as_deref().filter(|_| dialect.native_on(kind)),
        Operation::Embeddings(_) | Operation::Passthrough(_) => None,
    }
}

async fn openai_call(
    http: &impl crate::platform::HttpClient,
    clock: &impl Clock,
    deployment: openai::OpenAiDeployment<'_>,
    operation: Operation<'_>,
    native: Option<&NativeRequest>,
    request_id: &str,
) -> Result<ProviderReply, GatewayError> {
    match (operation, native) {
        (Operation::Chat(chat), Some(NativeRequest::OpenAiResponses(responses))) => {
            openai::openai_responses_native(http, clock, deployment, chat, responses, request_id)
                .await
        }
        (Operation::Chat(chat), _) => {
            openai::openai_chat(http, clock, deployment, chat, request_id).await
        }
        (Operation::Embeddings(request), _) => {
            openai::openai_embeddings(http, clock, deployment, request, request_id).await
        }
        (Operation::Passthrough(request), _) => {
            openai_passthrough(http, clock, deployment, request, request_id).await
        }
    }
}

/// The 400 for a passed-through OpenAI endpoint (`ai::passthrough`) on a
/// deployment of `kind`, which does not have it.
fn passthrough_unsupported(request: &PassthroughRequest, kind: &ProviderKind) -> GatewayError {
    let provider = match kind {
        ProviderKind::Anthropic { .. } => "an Anthropic",
        ProviderKind::Gemini { .. } => "a Gemini",
        ProviderKind::Bedrock { .. } => "a Bedrock",
        ProviderKind::Mock { .. } => "a mock",
        ProviderKind::Azure { .. } => "an Azure OpenAI",
        ProviderKind::OpenAi { .. } => "an OpenAI-compatible",
    };
    unsupported_on(request, provider)
}
