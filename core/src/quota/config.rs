//! The quota domain's part of the config: plans and their limits.

use std::time::Duration;

use super::{Algorithm, FailMode, LeasePolicy, Limit, Plan, Scope, Unit};
use crate::schema::raw::{RawLease, RawLimit, RawPlan};
use crate::schema::validate::Validator;

/// The longest limit window: a year and a day covers yearly budgets.
const MAX_WINDOW_S: u64 = 366 * 24 * 3600;

/// Lease defaults and bounds (see `quota::lease`).
const DEFAULT_LEASE_FRACTION: f64 = 0.1;
const DEFAULT_LEASE_TTL_MS: u64 = 1_000;
/// A lease may serve for at most an hour: longer only keeps quota away
/// from the other instances.
const MAX_LEASE_TTL_MS: u64 = 3_600_000;

impl Validator<'_> {
    pub(crate) fn plan(&mut self, path: &str, name: String, raw: RawPlan) -> Option<Plan> {
        let on_store_error = match raw.on_store_error.as_deref() {
            None | Some("fail_closed") => FailMode::Closed,
            Some("fail_open") => FailMode::Open,
            Some(other) => {
                self.issue(
                    format!("{path}.on_store_error"),
                    format!("`{other}`: use fail_open or fail_closed"),
                );
                FailMode::Closed
            }
        };
        let store_timeout = self.timeout(
            &format!("{path}.store_timeout_ms"),
            raw.store_timeout_ms,
            Duration::from_millis(1000),
        );
        let mut limits: Vec<Limit> = Vec::new();
        for (i, raw_limit) in raw.limits.into_iter().enumerate() {
            let limit_path = format!("{path}.limits[{i}]");
            let name = raw_limit
                .name
                .clone()
                .unwrap_or_else(|| format!("limit-{i}"));
            if limits.iter().any(|l| l.name == name) {
                self.issue(
                    format!("{limit_path}.name"),
                    format!("duplicate limit `{name}`"),
                );
                continue;
            }
            if let Some(limit) = self.limit(&limit_path, name, raw_limit) {
                limits.push(limit);
            }
        }
        let lease = raw
            .lease
            .and_then(|raw| self.lease(&format!("{path}.lease"), raw, &limits));
        Some(Plan {
            name,
            limits,
            on_store_error,
            store_timeout,
            reserve_completion_tokens: raw.reserve_completion_tokens.unwrap_or(4096),
            lease,
        })
    }

    /// `plans.<name>.lease`: the share, caps and life of quota leases.
    fn lease(&mut self, path: &str, raw: RawLease, limits: &[Limit]) -> Option<LeasePolicy> {
        let issues = self.issues.len();
        let fraction = raw.fraction.unwrap_or(DEFAULT_LEASE_FRACTION);
        if !(fraction.is_finite() && fraction > 0.0 && fraction <= 1.0) {
            self.issue(
                format!("{path}.fraction"),
                "must be a number greater than 0 and at most 1 (the share of what remains in the window one lease takes)",
            );
        }
        let ttl_ms = raw.ttl_ms.unwrap_or(DEFAULT_LEASE_TTL_MS);
        if ttl_ms == 0 || ttl_ms > MAX_LEASE_TTL_MS {
            self.issue(
                format!("{path}.ttl_ms"),
                format!("must be 1 to {MAX_LEASE_TTL_MS} (one hour)"),
            );
        }
        let leased = |pick: fn(Unit) -> bool| limits.iter().any(|l| pick(l.unit));
        let requests = |u: Unit| u == Unit::Requests;
        let tokens = |u: Unit| u.is_settled() && u != Unit::SpendMicroUsd;
        for (field, value, pick, what) in [
            (
                "max_requests",
                raw.max_requests,
                requests as fn(Unit) -> bool,
                "`requests`",
            ),
            ("max_tokens", raw.max_tokens, tokens, "token"),
        ] {
            match value {
                Some(0) => self.issue(format!("{path}.{field}"), "must be greater than 0"),
                Some(_) if !leased(pick) => self.issue(
                    format!("{path}.{field}"),
                    format!("the plan has no {what} limit for it to cap"),
                ),
                _ => {}
            }
        }
        if !leased(|u| u != Unit::SpendMicroUsd) {
            self.issue(
                path,
                "the plan has no request or token limit to lease (spend limits are never leased)",
            );
        }
        (self.issues.len() == issues).then_some(LeasePolicy {
            fraction,
            max_requests: raw.max_requests,
            max_tokens: raw.max_tokens,
            ttl_ms,
        })
    }

    pub(crate) fn limit(&mut self, path: &str, name: String, raw: RawLimit) -> Option<Limit> {
        let spend_micro_usd = match raw.spend_usd {
            Some(usd) if usd.is_finite() && usd >= 0.000_001 => {
                Some((usd * 1_000_000.0).round() as u64)
            }
            Some(_) => {
                self.issue(
                    format!("{path}.spend_usd"),
                    "must be a positive number of US dollars, at least 0.000001 (one micro-dollar)",
                );
                return None;
            }
            None => None,
        };
        let units: Vec<(Unit, u64)> = [
            (Unit::Requests, raw.requests),
            (Unit::Tokens, raw.tokens),
            (Unit::PromptTokens, raw.prompt_tokens),
            (Unit::CompletionTokens, raw.completion_tokens),
            (Unit::SpendMicroUsd, spend_micro_usd),
        ]
        .into_iter()
        .filter_map(|(unit, max)| max.map(|m| (unit, m)))
        .collect();
        let [(unit, max)] = units.as_slice() else {
            self.issue(
                path,
                "set exactly one of `requests`, `tokens`, `prompt_tokens`, `completion_tokens`, `spend_usd`",
            );
            return None;
        };
        if raw.window_s == 0 {
            self.issue(format!("{path}.window_s"), "must be greater than 0");
            return None;
        }
        if raw.window_s > MAX_WINDOW_S {
            self.issue(
                format!("{path}.window_s"),
                format!("must be at most {MAX_WINDOW_S} (366 days)"),
            );
            return None;
        }
        let scope = match raw.scope.as_deref().unwrap_or("consumer") {
            "consumer" => Scope::Consumer,
            "consumer_route" => Scope::ConsumerRoute,
            "consumer_model" => Scope::ConsumerModel,
            "ip" => Scope::Ip,
            other => {
                self.issue(
                    format!("{path}.scope"),
                    format!("`{other}`: use consumer, consumer_route, consumer_model or ip"),
                );
                return None;
            }
        };
        let algorithm = match raw.algorithm.as_deref().unwrap_or("sliding_window") {
            "sliding_window" => Algorithm::SlidingWindow,
            "fixed_window" => Algorithm::FixedWindow,
            other => {
                self.issue(
                    format!("{path}.algorithm"),
                    format!("`{other}`: use sliding_window or fixed_window"),
                );
                return None;
            }
        };
        let ipv6_prefix = match (raw.ipv6_prefix, scope) {
            (None, _) => 64,
            (Some(bits @ 1..=128), Scope::Ip) => bits,
            (Some(_), Scope::Ip) => {
                self.issue(format!("{path}.ipv6_prefix"), "must be 1 to 128");
                return None;
            }
            (Some(_), _) => {
                self.issue(format!("{path}.ipv6_prefix"), "only applies to `scope: ip`");
                return None;
            }
        };
        Some(Limit {
            name,
            scope,
            unit: *unit,
            window_ms: raw.window_s.saturating_mul(1000),
            max: *max,
            algorithm,
            ipv6_prefix,
        })
    }
}
