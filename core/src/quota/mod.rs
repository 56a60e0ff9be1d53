//! Phase 4: quotas, rate limits and token budgets.
//!
//! A plan has limits; a limit counts one unit (requests, tokens, prompt or
//! completion tokens) per window for one scope (consumer, consumer+route,
//! consumer+model, client IP). The consumer's plan and the route's plan
//! both apply.
//!
//! Exactness comes from the store: every check is one atomic
//! [`QuotaStore::consume`] on a counter whose key names the window, so
//! instances never multiply a limit and concurrent requests never overshoot
//! it. Request limits consume 1 up front. Token limits **reserve** the worst
//! case before the upstream call (estimated prompt + `max_tokens`, or the
//! plan's `reserve_completion_tokens`) and **settle** when the response or
//! stream ends — also when the client disconnects or the upstream fails —
//! refunding what was not used (or adding what was used beyond the
//! reservation).
//!
//! Algorithms:
//! - `fixed_window`: counters per calendar window (`floor(now / window)`).
//!   Error bound: a client can get up to 2× the limit across one window
//!   boundary (the end of one window and the start of the next).
//! - `sliding_window` (default): the fixed-window counter plus the previous
//!   window's final count weighted by how much of it still overlaps the
//!   sliding window (`limit - ceil(prev × remaining_fraction)` is what the
//!   current window may take). It assumes the previous window's requests
//!   were evenly spread; the previous count is read once per window and
//!   instance and cached, so a check stays one store round trip.
//!
//! Store cost per request: one `consume` per applicable limit (plus one read
//! of the previous window per sliding limit, key and instance, once per
//! window); one refund or top-up per token limit at settlement. A plan
//! with `lease:` admits its request and token limits from blocks of quota
//! each instance takes with one such consume (see [`lease`]): a fraction of
//! a store call per request, at the price of a bounded skew. Each call is
//! bounded by the plan's `store_timeout`; on a store failure the plan's
//! `on_store_error` decides: `fail_open` admits (logged, counted),
//! `fail_closed` answers 503.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

mod config;
mod lease;
mod reservation;

pub use self::lease::{LeasePolicy, Leases};
pub use self::reservation::Reservation;
use crate::error::GatewayError;
use crate::platform::{with_timeout, Clock, Platform, QuotaStore, StoreError};

/// Token limits over windows this long or longer are budgets (429
/// `insufficient_quota`); shorter ones are rate limits (`rate_limit_exceeded`).
pub const BUDGET_WINDOW_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Consumer,
    ConsumerRoute,
    ConsumerModel,
    Ip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Requests,
    Tokens,
    PromptTokens,
    CompletionTokens,
    /// Cost in millionths of a US dollar, from the model's price.
    SpendMicroUsd,
}

impl Unit {
    /// Counted as a reservation, settled to the real amount at the end.
    pub fn is_settled(self) -> bool {
        self != Self::Requests
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
            Self::PromptTokens => "prompt_tokens",
            Self::CompletionTokens => "completion_tokens",
            Self::SpendMicroUsd => "spend_usd",
        }
    }
}

impl Scope {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consumer => "consumer",
            Self::ConsumerRoute => "consumer_route",
            Self::ConsumerModel => "consumer_model",
            Self::Ip => "ip",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    FixedWindow,
    SlidingWindow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    Open,
    Closed,
}

#[derive(Debug, Clone)]
pub struct Limit {
    pub name: String,
    pub scope: Scope,
    pub unit: Unit,
    pub window_ms: u64,
    pub max: u64,
    pub algorithm: Algorithm,
    /// `ip` scope: IPv6 clients are counted per prefix of this length (a
    /// /64 is one customer's network; one client can rotate through all of
    /// it). IPv4 clients are counted per address.
    pub ipv6_prefix: u8,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub limits: Vec<Limit>,
    pub on_store_error: FailMode,
    pub store_timeout: Duration,
    pub reserve_completion_tokens: u64,
    /// Quota leases for the plan's request and token limits (`None`: every
    /// request consumes from the counter).
    pub lease: Option<LeasePolicy>,
}

/// What a request is, for scope keys.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    pub consumer: Option<String>,
    pub route: String,
    pub model: Option<String>,
    pub ip: Option<IpAddr>,
}

/// A window of `window_ms` containing `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub index: u64,
    pub start_ms: u64,
    pub reset_ms: u64,
}

/// `window_ms` 0 counts as 1. The reset saturates at `u64::MAX` instead of
/// overflowing when `now_ms` is in the last window before it (found by the
/// property tests in `tests/tests/quota_window_props.rs`).
pub fn window(now_ms: u64, window_ms: u64) -> Window {
    let window_ms = window_ms.max(1);
    let index = now_ms / window_ms;
    let start_ms = index * window_ms;
    Window {
        index,
        start_ms,
        reset_ms: start_ms.saturating_add(window_ms),
    }
}

/// How much of `max` the current window may use under the sliding
/// algorithm, given the previous window's final count.
pub fn sliding_allowance(max: u64, previous_used: u64, now_ms: u64, window: Window) -> u64 {
    let length = window.reset_ms - window.start_ms;
    let remaining = window.reset_ms.saturating_sub(now_ms);
    // ceil(previous_used * remaining / length), in integers.
    let carried =
        (u128::from(previous_used) * u128::from(remaining)).div_ceil(u128::from(length.max(1)));
    max.saturating_sub(u64::try_from(carried).unwrap_or(u64::MAX))
}

/// The counter key of `limit` for `subject` in window `index`; `None` when
/// the scope does not apply (no model on a consumer+model limit).
pub fn counter_key(plan: &str, limit: &Limit, subject: &Subject, index: u64) -> Option<String> {
    let consumer = subject.consumer.as_deref().unwrap_or("-");
    let scope = match limit.scope {
        Scope::Consumer => format!("c:{consumer}"),
        Scope::ConsumerRoute => format!("c:{consumer}/r:{}", subject.route),
        Scope::ConsumerModel => format!("c:{consumer}/m:{}", subject.model.as_deref()?),
        // Without a client address (the runtime gave none) every request
        // shares the `unknown` counter.
        Scope::Ip => format!(
            "ip:{}",
            subject.ip.map_or_else(
                || "unknown".to_owned(),
                |ip| ip_counter_id(ip, limit.ipv6_prefix)
            )
        ),
    };
    Some(format!("quota/{plan}/{}/{scope}/{index}", limit.name))
}

/// The address an `ip` counter is about: an IPv4 address (also when mapped
/// into IPv6) as is, an IPv6 address as its `prefix`-bit network.
fn ip_counter_id(ip: IpAddr, prefix: u8) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let bits = u128::from(v6);
                let prefix = u32::from(prefix.clamp(1, 128));
                let mask = u128::MAX << (128 - prefix);
                format!("{}/{prefix}", std::net::Ipv6Addr::from(bits & mask))
            }
        },
    }
}

/// One admitted consumption, to settle or roll back.
#[derive(Debug, Clone)]
pub struct Grant {
    pub plan: String,
    pub limit: String,
    pub unit: Unit,
    pub key: String,
    pub amount: u64,
    pub used: u64,
    pub max: u64,
    pub reset_ms: u64,
    pub expires_at_ms: u64,
    pub store_timeout: Duration,
    /// The instance's leases when the limit is leased: a refund or an
    /// overrun settles against the live lease of `key` first.
    pub leases: Option<Arc<Leases>>,
}

/// Rate-limit state for response headers: the most constrained limit of
/// each kind (requests, tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitStatus {
    pub max: u64,
    pub remaining: u64,
    pub reset_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitSnapshot {
    pub requests: Option<LimitStatus>,
    pub tokens: Option<LimitStatus>,
}

impl RateLimitSnapshot {
    fn note(&mut self, unit: Unit, status: LimitStatus) {
        // Spend is not a rate limit: no `RateLimit-*` header carries it.
        if unit == Unit::SpendMicroUsd {
            return;
        }
        let slot = if unit.is_settled() {
            &mut self.tokens
        } else {
            &mut self.requests
        };
        if slot.is_none_or(|s| status.remaining < s.remaining) {
            *slot = Some(status);
        }
    }

    pub fn merge(&mut self, other: RateLimitSnapshot) {
        if let Some(s) = other.requests {
            self.note(Unit::Requests, s);
        }
        if let Some(s) = other.tokens {
            self.note(Unit::Tokens, s);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none()
    }
}

/// Per-instance quota state: previous-window counts for sliding limits,
/// the quota leases, and the store-failure counter.
#[derive(Default)]
pub struct QuotaState {
    previous: Mutex<HashMap<String, (u64, u64)>>,
    pub leases: Arc<Leases>,
    pub store_failures: AtomicU64,
}

impl QuotaState {
    fn cached_previous(&self, key: &str, now_ms: u64) -> Option<u64> {
        let map = self.previous.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(key)
            .filter(|(_, until)| *until > now_ms)
            .map(|(n, _)| *n)
    }

    fn remember_previous(&self, key: String, used: u64, until_ms: u64, now_ms: u64) {
        let mut map = self.previous.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() > 10_000 {
            map.retain(|_, (_, until)| *until > now_ms);
            // Still full (many live keys, e.g. one per client IP): start
            // over; entries are only a cache of a store read.
            if map.len() > 10_000 {
                map.clear();
            }
        }
        map.insert(key, (used, until_ms));
    }
}

async fn store_call<T>(
    clock: &impl Clock,
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    with_timeout(clock, timeout, call).await.unwrap_or_else(|| {
        Err(StoreError(format!(
            "timed out after {} ms",
            timeout.as_millis()
        )))
    })
}

fn note_store_failure(state: &QuotaState, plan: &Plan, error: &StoreError) {
    let failures = state.store_failures.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::warn!(plan = %plan.name, %error, store_failures = failures, mode = ?plan.on_store_error, "quota store failed");
}

/// What a request really used, in each settled unit: the one input of
/// settlement. The AI accounting computes it from the provider's usage and
/// the serving deployment's price (`ai::accounting::actual`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actual {
    pub tokens: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub micro_usd: u64,
}

impl Actual {
    /// Both amounts together (several upstream attempts of one request).
    #[must_use]
    pub fn plus(self, other: Self) -> Self {
        Self {
            tokens: self.tokens.saturating_add(other.tokens),
            prompt_tokens: self.prompt_tokens.saturating_add(other.prompt_tokens),
            completion_tokens: self
                .completion_tokens
                .saturating_add(other.completion_tokens),
            micro_usd: self.micro_usd.saturating_add(other.micro_usd),
        }
    }
}

/// Consumes every limit of `plans` that `amount_for` prices (`None` skips a
/// limit). All or nothing: a refusal refunds what was already granted.
/// The state of each limit checked (also of the one that refused) is noted
/// in `snapshot`, for the rate-limit response headers.
pub(crate) async fn consume<P: Platform>(
    platform: &Arc<P>,
    state: &QuotaState,
    plans: &[&Plan],
    subject: &Subject,
    snapshot: &mut RateLimitSnapshot,
    amount_for: impl Fn(&Plan, &Limit) -> Option<u64>,
) -> Result<Vec<Grant>, GatewayError> {
    let clock = platform.clock();
    let store = platform.quota();
    let mut grants: Vec<Grant> = Vec::new();
    for plan in plans {
        for limit in &plan.limits {
            let Some(amount) = amount_for(plan, limit) else {
                continue;
            };
            let now = clock.now_unix_ms();
            let current = window(now, limit.window_ms);
            let Some(key) = counter_key(&plan.name, limit, subject, current.index) else {
                continue;
            };
            // Kept one extra window so the sliding algorithm can read it.
            let expires_at_ms = current.reset_ms.saturating_add(limit.window_ms);
            let mut max = limit.max;
            if limit.algorithm == Algorithm::SlidingWindow && current.index > 0 {
                if let Some(previous_key) =
                    counter_key(&plan.name, limit, subject, current.index - 1)
                {
                    let previous = match state.cached_previous(&previous_key, now) {
                        Some(n) => Ok(n),
                        // A zero-amount consume reads the counter atomically.
                        None => store_call(
                            clock,
                            plan.store_timeout,
                            store.consume(&previous_key, 0, u64::MAX, current.reset_ms),
                        )
                        .await
                        .map(|c| {
                            state.remember_previous(
                                previous_key.clone(),
                                c.used,
                                current.reset_ms,
                                now,
                            );
                            c.used
                        }),
                    };
                    match previous {
                        Ok(previous) => max = sliding_allowance(limit.max, previous, now, current),
                        Err(error) => {
                            note_store_failure(state, plan, &error);
                            if plan.on_store_error == FailMode::Closed {
                                rollback(&**platform, &grants).await;
                                return Err(GatewayError::QuotaUnavailable);
                            }
                        }
                    }
                }
            }
            let lease = plan.lease.as_ref().filter(|l| l.covers(limit.unit));
            let result = match lease {
                None => store_call(
                    clock,
                    plan.store_timeout,
                    store.consume(&key, amount, max, expires_at_ms),
                )
                .await
                .map(|c| c.admitted.then(|| max.saturating_sub(c.used))),
                Some(policy) => {
                    let ask = lease::Ask {
                        key: &key,
                        amount,
                        max,
                        counter_expires_at_ms: expires_at_ms,
                        window_reset_ms: current.reset_ms,
                        cap: policy.cap(limit),
                        store_timeout: plan.store_timeout,
                    };
                    lease::admit(platform, &state.leases, policy, &ask).await
                }
            };
            match result {
                Ok(Some(remaining)) => {
                    snapshot.note(
                        limit.unit,
                        LimitStatus {
                            max: limit.max,
                            remaining,
                            reset_ms: current.reset_ms,
                        },
                    );
                    grants.push(Grant {
                        plan: plan.name.clone(),
                        limit: limit.name.clone(),
                        unit: limit.unit,
                        key,
                        amount,
                        used: max.saturating_sub(remaining),
                        max,
                        reset_ms: current.reset_ms,
                        expires_at_ms,
                        store_timeout: plan.store_timeout,
                        leases: lease.map(|_| Arc::clone(&state.leases)),
                    });
                }
                Ok(None) => {
                    rollback(&**platform, &grants).await;
                    let retry_after_s = current.reset_ms.saturating_sub(now).div_ceil(1000).max(1);
                    snapshot.note(
                        limit.unit,
                        LimitStatus {
                            max: limit.max,
                            remaining: 0,
                            reset_ms: current.reset_ms,
                        },
                    );
                    return Err(GatewayError::RateLimited {
                        limit: format!("{}/{}", plan.name, limit.name),
                        retry_after_s,
                        budget: limit.unit == Unit::SpendMicroUsd
                            || (limit.unit.is_settled() && limit.window_ms >= BUDGET_WINDOW_MS),
                    });
                }
                Err(error) => {
                    note_store_failure(state, plan, &error);
                    if plan.on_store_error == FailMode::Closed {
                        rollback(&**platform, &grants).await;
                        return Err(GatewayError::QuotaUnavailable);
                    }
                }
            }
        }
    }
    Ok(grants)
}

/// Gives back everything in `grants` (a later limit refused the request).
pub(crate) async fn rollback<P: Platform>(platform: &P, grants: &[Grant]) {
    for grant in grants {
        give_back(platform, grant, grant.amount, "quota rollback").await;
    }
}

/// Returns `amount` of `grant` to its live lease when it has one, the rest
/// to its counter.
async fn give_back<P: Platform>(platform: &P, grant: &Grant, amount: u64, what: &str) {
    let now = platform.clock().now_unix_ms();
    let to_counter = match &grant.leases {
        Some(leases) => leases.give_back(&grant.key, amount, now),
        None => amount,
    };
    if to_counter == 0 {
        return;
    }
    let result = store_call(
        platform.clock(),
        grant.store_timeout,
        platform.quota().refund(&grant.key, to_counter),
    )
    .await;
    if let Err(error) = result {
        tracing::warn!(key = %grant.key, amount = to_counter, %error, "{what} failed");
    }
}

/// Settles token reservations against what was `used`: refunds the unused
/// part, or records what was used beyond the reservation. Called only by
/// [`Reservation`], which makes sure it happens once.
async fn settle<P: Platform>(platform: &P, grants: &[Grant], used: Actual) {
    for grant in grants {
        settle_one(platform, grant, used).await;
    }
}

/// Settles one grant (request limits are final: nothing to do). A leased
/// limit settles against its live lease first: a refund goes into it, an
/// overrun comes out of it when it holds enough.
async fn settle_one<P: Platform>(platform: &P, grant: &Grant, used: Actual) {
    let actual = match grant.unit {
        Unit::Tokens => used.tokens,
        Unit::PromptTokens => used.prompt_tokens,
        Unit::CompletionTokens => used.completion_tokens,
        Unit::SpendMicroUsd => used.micro_usd,
        Unit::Requests => return,
    };
    let clock = platform.clock();
    if actual < grant.amount {
        give_back(platform, grant, grant.amount - actual, "quota settlement").await;
    } else if actual > grant.amount {
        let extra = actual - grant.amount;
        let from_lease = grant
            .leases
            .as_ref()
            .is_some_and(|l| l.take_extra(&grant.key, extra, clock.now_unix_ms()));
        if !from_lease {
            let result = store_call(
                clock,
                grant.store_timeout,
                platform
                    .quota()
                    .consume(&grant.key, extra, u64::MAX, grant.expires_at_ms),
            )
            .await;
            if let Err(error) = result {
                tracing::warn!(key = %grant.key, reserved = grant.amount, actual, %error, "quota settlement failed");
                return;
            }
        }
    }
    tracing::debug!(key = %grant.key, reserved = grant.amount, actual, "quota settled");
}

/// Ends every quota lease of the instance and refunds what they held to
/// their counters; returns how many units went back. For an instance that
/// is about to stop (the native server's drain), and tests.
pub(crate) async fn return_leases<P: Platform>(platform: &P, state: &QuotaState) -> u64 {
    lease::return_all(platform, &state.leases).await
}

/// Current counters of the `scope` limits of `plan` for `subject` (admin
/// usage view): one read per limit.
pub(crate) async fn current_usage<P: Platform>(
    platform: &P,
    plan: &Plan,
    subject: &Subject,
    scope: Scope,
) -> Vec<serde_json::Value> {
    let now = platform.clock().now_unix_ms();
    let mut out = Vec::new();
    for limit in plan.limits.iter().filter(|l| l.scope == scope) {
        let current = window(now, limit.window_ms);
        let Some(key) = counter_key(&plan.name, limit, subject, current.index) else {
            continue;
        };
        let used = store_call(
            platform.clock(),
            plan.store_timeout,
            platform.quota().consume(
                &key,
                0,
                u64::MAX,
                current.reset_ms.saturating_add(limit.window_ms),
            ),
        )
        .await
        .map(|c| c.used);
        out.push(serde_json::json!({
            "plan": plan.name,
            "limit": limit.name,
            "unit": limit.unit.as_str(),
            "scope": limit.scope.as_str(),
            "route": (scope == Scope::ConsumerRoute).then_some(&subject.route),
            "model": subject.model.as_ref().filter(|_| scope == Scope::ConsumerModel),
            "max": limit.max,
            "used": used.as_ref().ok(),
            "error": used.as_ref().err().map(ToString::to_string),
            "window_ms": limit.window_ms,
            "reset_at_ms": current.reset_ms,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned() {
        assert_eq!(
            window(125_000, 60_000),
            Window {
                index: 2,
                start_ms: 120_000,
                reset_ms: 180_000
            }
        );
        assert_eq!(window(0, 1000).reset_ms, 1000);
    }

    #[test]
    fn sliding_allowance_carries_the_previous_window() {
        let w = window(120_000, 60_000);
        // At the very start of a window the whole previous count still counts.
        assert_eq!(sliding_allowance(100, 60, 120_000, w), 40);
        // Half way through, half of it.
        assert_eq!(sliding_allowance(100, 60, 150_000, w), 70);
        // At the end, none.
        assert_eq!(sliding_allowance(100, 60, 179_999, w), 99);
        assert_eq!(sliding_allowance(10, 1000, 120_000, w), 0);
    }

    #[test]
    fn keys_name_scope_and_window() {
        let limit = Limit {
            name: "rpm".into(),
            scope: Scope::ConsumerModel,
            unit: Unit::Requests,
            window_ms: 60_000,
            max: 1,
            algorithm: Algorithm::FixedWindow,
            ipv6_prefix: 64,
        };
        let mut subject = Subject {
            consumer: Some("a".into()),
            route: "r".into(),
            model: None,
            ip: None,
        };
        assert_eq!(counter_key("free", &limit, &subject, 7), None);
        subject.model = Some("m".into());
        assert_eq!(
            counter_key("free", &limit, &subject, 7).unwrap(),
            "quota/free/rpm/c:a/m:m/7"
        );
    }

    #[test]
    fn ip_counters_cover_an_ipv6_prefix() {
        let mut limit = Limit {
            name: "ip".into(),
            scope: Scope::Ip,
            unit: Unit::Requests,
            window_ms: 60_000,
            max: 1,
            algorithm: Algorithm::FixedWindow,
            ipv6_prefix: 64,
        };
        let key = |ip: &str, limit: &Limit| {
            let subject = Subject {
                consumer: None,
                route: "r".into(),
                model: None,
                ip: Some(ip.parse().unwrap()),
            };
            counter_key("p", limit, &subject, 1).unwrap()
        };
        // Two addresses of one /64 share a counter; another /64 does not.
        assert_eq!(
            key("2001:db8:1:2::1", &limit),
            key("2001:db8:1:2:ffff::9", &limit)
        );
        assert_eq!(
            key("2001:db8:1:2::1", &limit),
            "quota/p/ip/ip:2001:db8:1:2::/64/1"
        );
        assert_ne!(
            key("2001:db8:1:2::1", &limit),
            key("2001:db8:1:3::1", &limit)
        );
        // IPv4, also mapped into IPv6, is per address.
        assert_eq!(key("198.51.100.7", &limit), "quota/p/ip/ip:198.51.100.7/1");
        assert_eq!(
            key("::ffff:198.51.100.7", &limit),
            key("198.51.100.7", &limit)
        );
        limit.ipv6_prefix = 128;
        assert_ne!(
            key("2001:db8:1:2::1", &limit),
            key("2001:db8:1:2::2", &limit)
        );
    }
}
