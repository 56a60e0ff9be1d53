//! Token and cost accounting: what a request is expected to use (for its
//! reservation), what it did use (from the provider's report, else
//! estimated), the `gateway::usage` log event, and the settlement of the
//! request's [`Reservation`] — for complete replies and, through a body
//! observer, for streams (also when the client disconnects or the upstream
//! fails mid-way).
//!
//! This is the one place that decides what is charged: [`actual`].

use bytes::Bytes;

use super::pricing::{deployment_price, Price};
use super::request::Operation;
use super::sse::{SseUsage, StreamOutcome, StreamSummary, StreamWire};
use super::usage::Usage;
use crate::body::observe::{BodyEnd, EndAction, Observer};
use crate::error::{ErrorOrigin, GatewayError};
use crate::platform::Platform;
use crate::quota::{Actual, Limit, Plan, Reservation, Scope, Unit};

/// What a request really used, in every settled unit, at `price` (the
/// serving deployment's).
pub fn actual(usage: &Usage, price: Option<Price>) -> Actual {
    Actual {
        tokens: usage.total_tokens,
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        micro_usd: micro_usd(price, usage),
    }
}

/// The cost of `usage` in millionths of a dollar, rounded up (0 unpriced);
/// float noise below a billionth of a micro-dollar is not rounded up.
pub fn micro_usd(price: Option<Price>, usage: &Usage) -> u64 {
    price.map_or(0, |price| {
        (price.cost_micro_usd(usage) - 1e-9).ceil().max(0.0) as u64
    })
}

/// The amount `limit` of `plan` reserves for `operation` before the
/// upstream call: the estimated prompt plus `max_tokens` (or the plan's
/// default reservation), and for spend limits the cost of that at `price`
/// (the primary deployment's; settlement charges the serving one's).
/// Request limits scoped per model are counted here, where the model is
/// known; other request limits were counted by the limit phase.
pub fn reservation_amount(
    operation: Operation<'_>,
    prompt_estimate: u64,
    price: Option<Price>,
    plan: &Plan,
    limit: &Limit,
) -> Option<u64> {
    let completion = operation
        .completion_reservation()
        .unwrap_or(plan.reserve_completion_tokens);
    match limit.unit {
        Unit::Requests => (limit.scope == Scope::ConsumerModel).then_some(1),
        Unit::Tokens => Some(prompt_estimate.saturating_add(completion)),
        Unit::PromptTokens => Some(prompt_estimate),
        Unit::CompletionTokens => Some(completion),
        Unit::SpendMicroUsd => Some(micro_usd(price, &Usage::new(prompt_estimate, completion))),
    }
}

/// Who a usage record is about; updated per attempt (the deployment that
/// serves may be a fallback).
#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub request_id: String,
    pub route: String,
    pub model: String,
    pub provider: String,
    pub operation: &'static str,
    pub prompt_estimate: u64,
    /// The completion tokens reserved (the cap the upstream was given, for
    /// all choices); what is charged when the provider reports no usage.
    pub completion_reservation: u64,
    pub price: Option<Price>,
    /// Images an image generation returned (logged as `images`).
    pub images: Option<u64>,
}

impl UsageRecord {
    /// A record for `operation` on the public `model`, without a deployment
    /// yet: the router points it at each one it tries ([`Self::deployment`])
    /// before anything is logged.
    pub fn new(
        request_id: String,
        route: String,
        model: String,
        operation: Operation<'_>,
        prompt_estimate: u64,
    ) -> Self {
        Self {
            request_id,
            route,
            model,
            provider: String::new(),
            operation: operation.name(),
            prompt_estimate,
            completion_reservation: operation.completion_reservation().unwrap_or(0),
            price: None,
            images: None,
        }
    }

    /// Points the record at the deployment being tried.
    pub fn deployment(&mut self, provider: &str, upstream_model: &str, price: Option<Price>) {
        provider.clone_into(&mut self.provider);
        self.price = deployment_price(price, upstream_model);
    }

    /// Logs one `gateway::usage` event.
    pub fn log(&self, usage: Usage, source: &'static str, outcome: &'static str) {
        // Unpriced models log a cost of -1 (unknown), never a silent 0.
        let cost_usd = self.price.map_or(-1.0, |price| price.cost_usd(&usage));
        tracing::info!(
            target: "gateway::usage",
            request_id = %self.request_id,
            route = %self.route,
            model = %self.model,
            provider = %self.provider,
            operation = self.operation,
            prompt_tokens = usage.prompt_tokens,
            completion_tokens = usage.completion_tokens,
            total_tokens = usage.total_tokens,
            cached_tokens = usage.cached_tokens,
            usage_source = source,
            cost_usd,
            images = self.images,
            outcome,
            "usage"
        );
    }

    /// Accounts a complete reply: the provider's usage if it reported
    /// some, else the whole reservation (the provider billed something we
    /// cannot see; the cap bounds it); nothing for a refused request.
    pub fn complete(&self, success: bool, reported: Option<Usage>) -> Actual {
        let usage = if success {
            let (usage, source) = match reported {
                Some(usage) => (usage, "reported"),
                None => (
                    Usage::new(self.prompt_estimate, self.completion_reservation),
                    "reserved",
                ),
            };
            self.log(usage, source, "completed");
            usage
        } else {
            self.log(Usage::new(0, 0), "none", "upstream_rejected");
            Usage::default()
        };
        actual(&usage, self.price)
    }

    /// Accounts a fan-out that failed after some of its calls succeeded
    /// (embeddings): the provider billed those, so they are charged, as
    /// reported or (for a provider that reports none) estimated.
    pub fn partial_failure(&self, billed: Usage, reported: bool) -> Actual {
        let source = if reported { "reported" } else { "estimated" };
        self.log(billed, source, "partial_failure");
        actual(&billed, self.price)
    }

    /// Accounts a finished stream: the provider's usage, else what was
    /// streamed or the reservation, whichever is more (the provider may have
    /// generated more than reached the gateway).
    fn stream(&self, summary: &StreamSummary) -> Actual {
        let (usage, source) = match summary.reported_usage {
            Some(usage) => (usage, "reported"),
            None => {
                let completion = summary
                    .estimated_completion_tokens
                    .max(self.completion_reservation);
                // The prompt as the provider counted it, when it said so
                // before the stream ended (Anthropic's `message_start`).
                let usage = match summary.reported_prompt {
                    Some(prompt) => Usage {
                        completion_tokens: completion,
                        total_tokens: prompt.prompt_tokens.saturating_add(completion),
                        ..prompt
                    },
                    None => Usage::new(self.prompt_estimate, completion),
                };
                (usage, "estimated")
            }
        };
        let outcome = match summary.outcome {
            StreamOutcome::Completed => "completed",
            StreamOutcome::ClientDisconnected => "client_disconnected",
            StreamOutcome::UpstreamFailed => "upstream_failed",
        };
        self.log(usage, source, outcome);
        actual(&usage, self.price)
    }
}

/// The `outcome` of a usage record for a call that failed before any reply.
pub fn upstream_outcome(err: &GatewayError) -> &'static str {
    match (err, err.origin()) {
        (GatewayError::UpstreamTimeout { .. }, _) => "upstream_timeout",
        // Refused before reaching the provider (a parameter it cannot take).
        (_, ErrorOrigin::Client) => "invalid_request",
        (_, ErrorOrigin::Internal) => "gateway_error",
        (_, ErrorOrigin::Upstream) => "upstream_failed",
    }
}

/// The observer on a streamed AI reply: reads usage out of the SSE events
/// (canonical OpenAI chunks, or a native provider's own) as they pass, ends a failed or truncated stream with an explicit
/// error event, logs the usage and settles the reservation before the
/// client sees the end (or in the background if the client left).
pub struct StreamAccounting<P: Platform> {
    sse: SseUsage,
    record: UsageRecord,
    reservation: Option<Reservation<P>>,
}

impl<P: Platform> StreamAccounting<P> {
    pub fn new(record: UsageRecord, reservation: Reservation<P>, wire: StreamWire) -> Self {
        Self {
            sse: SseUsage::new(wire),
            record,
            reservation: (!reservation.is_empty()).then_some(reservation),
        }
    }
}

impl<P: Platform> Observer for StreamAccounting<P> {
    fn on_chunk(&mut self, chunk: &Bytes) {
        self.sse.push(chunk);
    }

    fn on_end(&mut self, end: BodyEnd<'_>) -> EndAction {
        let (outcome, trailer) = self.sse.end(end);
        let used = self.record.stream(&self.sse.summary(outcome));
        EndAction {
            trailer,
            task: self
                .reservation
                .take()
                .map(|r| Box::pin(r.settle(used)) as crate::platform::BackgroundTask),
        }
    }

    fn on_drop(&mut self) {
        let summary = self.sse.summary(StreamOutcome::ClientDisconnected);
        let used = self.record.stream(&summary);
        if let Some(mut reservation) = self.reservation.take() {
            // Dropped here: settles itself in the background.
            reservation.record(used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_usd_rounds_up_fractions_but_not_float_noise() {
        let price = Price {
            input: 0.15,
            cached_input: 0.075,
            output: 0.6,
        };
        // 11 × 0.15 + 15 × 0.6 = 10.65 micro-USD → 11.
        assert_eq!(micro_usd(Some(price), &Usage::new(11, 15)), 11);
        let whole = Price {
            input: 1.0,
            cached_input: 0.5,
            output: 2.0,
        };
        assert_eq!(micro_usd(Some(whole), &Usage::new(11, 15)), 41);
        let noisy = Price {
            input: 0.07,
            cached_input: 0.07,
            output: 0.07,
        };
        // 100 × 0.07 is 7.000000000000001 in f64: still 7, not 8.
        assert_eq!(micro_usd(Some(noisy), &Usage::new(100, 0)), 7);
        assert_eq!(micro_usd(None, &Usage::new(10, 20)), 0);
    }
}
