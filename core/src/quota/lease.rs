//! Quota leases: an instance takes a block of a counter's quota with one
//! atomic store call and admits requests from it locally, so a busy
//! consumer's counter sees one store call per block instead of one per
//! request (a DynamoDB partition takes about 1,000 writes/s, a Durable
//! Object about 1,000 requests/s).
//!
//! Opt-in per plan (`lease:` — [`LeasePolicy`]); it covers the plan's
//! request and token limits (`requests`, `tokens`, `prompt_tokens`,
//! `completion_tokens`), never spend limits.
//!
//! **How a lease is taken.** A request that finds too little in its
//! instance's lease for the counter key (which names the window) asks the
//! store for a block: `fraction` of what the instance last saw remaining
//! in the window (rounded up, at least what the request needs, at most
//! [`LeasePolicy::cap`]) — one [`QuotaStore::consume`] with the limit as
//! its condition, the same atomic call an unleased request makes. When
//! the store refuses because others took more than the instance knew, the
//! reply carries the counter, and the block is recomputed from it (at most
//! three calls; the last asks for exactly what the request needs, so a
//! refusal then is the same refusal an unleased request would get). The
//! block shrinks as the limit nears: near the end, blocks are single units.
//!
//! **How a lease ends.** A lease serves until `ttl_ms` after it was first
//! taken or the end of its window, whichever comes first; top-ups within
//! its life share that end. At its end the unused part goes back to the
//! counter (a refund) in the background of the next request that checks a
//! leased limit on the instance (any plan, any key), or at once through
//! `Gateway::return_leases` (the native server calls it when it drains).
//! An instance that is frozen or gone (a Lambda instance reclaimed, a
//! Worker isolate evicted) never returns its lease: that part is lost
//! capacity for the rest of the window — never overspending — at most
//! [`LeasePolicy::cap`] per limit and instance.
//!
//! **Exactness.** Every unit a lease hands out was first consumed from the
//! window's counter by a conditional consume, so the sum admitted in a
//! window never exceeds the limit, as without leases. Token reservations
//! drawn from a lease settle into it while it lives (a refund fills it up
//! to its cap, the rest goes to the counter; an overrun is taken from it
//! when it holds enough, else charged to the counter as without leases),
//! so once every lease is returned the counter equals what was used.
//!
//! **Skew (the price).** The counter is charged when a block is taken,
//! not when the requests it admits arrive: it leads what was really
//! admitted by the quota held in leases, at most `cap` per limit and
//! instance (one refill at a time per lease; a request that finds its lease
//! being refilled consumes its own amount from the counter). So a
//! request can be refused while up to `(instances - 1) × cap` units sit
//! unused in other instances' leases; they come back when those leases
//! end. And a lease that saw its counter full (the store refused it, or
//! its block took the last of the window) refuses its instance's requests
//! of that size without a store call once it is dry, until it ends — even
//! if another instance returned quota, or a sliding window's allowance
//! grew, meanwhile: a refusal can be up to `ttl_ms` early. (Without this,
//! a sliding window held back by its carry-over, whose allowance grows a
//! unit at a time, would cost a store call per admitted request.) A lease never serves past its window, so no window admits a unit
//! counted in another. Under `sliding_window`, quota a lease returns after
//! an instance has read the previous window's final count still weighs in
//! that instance's carry-over: more conservative, never more. The
//! `RateLimit-Remaining` of a leased limit is the instance's view (what
//! the counter had left when it last asked, plus its lease).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{store_call, Limit, Unit};
use crate::platform::{Clock, Platform, QuotaStore, StoreError};

/// At most this many leases per instance (counter keys, e.g. one per client
/// IP); past it a request consumes from its counter directly.
const MAX_LEASES: usize = 10_000;

/// How many store calls one refill may make (see the module docs).
const REFILL_ATTEMPTS: usize = 3;

/// A plan's `lease:` settings, validated (`quota::config`).
#[derive(Debug, Clone, PartialEq)]
pub struct LeasePolicy {
    /// Share of what remains in the window one block takes, in (0, 1].
    pub fraction: f64,
    /// Largest block of a `requests` limit.
    pub max_requests: Option<u64>,
    /// Largest block of a token limit.
    pub max_tokens: Option<u64>,
    /// How long a lease serves after it was taken (never past its window).
    pub ttl_ms: u64,
}

impl LeasePolicy {
    /// Request and token limits are leased; spend limits never.
    pub fn covers(&self, unit: Unit) -> bool {
        unit != Unit::SpendMicroUsd
    }

    /// The most one lease of `limit` holds unused: `fraction` of the limit
    /// (rounded up), at most `max_requests` / `max_tokens`, at least 1.
    /// This is also what an instance that disappears can lose per window.
    pub fn cap(&self, limit: &Limit) -> u64 {
        let unit_cap = match limit.unit {
            Unit::Requests => self.max_requests,
            _ => self.max_tokens,
        };
        share(self.fraction, limit.max)
            .min(unit_cap.unwrap_or(u64::MAX))
            .max(1)
    }

    /// The block to take when `remaining` is left in the window.
    fn block(&self, remaining: u64, cap: u64) -> u64 {
        share(self.fraction, remaining).min(cap).max(1)
    }
}

/// `ceil(fraction × of)`. f64 is exact enough for a block size (it rounds
/// only above 2^53), and `ceil` keeps any non-zero remainder at least 1.
fn share(fraction: f64, of: u64) -> u64 {
    let product = (fraction * of as f64).ceil();
    if product >= u64::MAX as f64 {
        u64::MAX
    } else {
        product as u64
    }
}

/// One counter's lease on this instance.
#[derive(Debug)]
struct Lease {
    /// Units consumed from the counter and not yet handed to a request.
    held: u64,
    /// The counter as the store last reported it (0 before any reply).
    seen_used: u64,
    /// Whether `seen_used` came from the store during this lease.
    known: bool,
    /// The smallest amount the store refused during this lease
    /// (`u64::MAX`: none). Requests this large are refused locally until
    /// the lease ends, also when a sliding window's allowance has grown a
    /// little since: they ask again with the next lease, in one block.
    refused_at: u64,
    /// When the lease ends: its first block's time + `ttl_ms`, or the end
    /// of its window, whichever is first.
    ends_at_ms: u64,
    cap: u64,
    /// A request is asking the store for a block.
    refilling: bool,
    store_timeout: Duration,
}

impl Lease {
    /// This instance's view of what is left: room in the counter plus the
    /// lease.
    fn remaining(&self, max: u64) -> u64 {
        max.saturating_sub(self.seen_used).saturating_add(self.held)
    }
}

/// Unused quota going back to its counter.
#[derive(Debug)]
pub(crate) struct Returned {
    key: String,
    amount: u64,
    store_timeout: Duration,
}

#[derive(Debug, Default)]
struct Table {
    leases: HashMap<String, Lease>,
    /// The earliest `ends_at_ms` of any lease (0: check at the next call).
    next_end_ms: u64,
}

impl Table {
    /// Ends every lease whose time is up (not those being refilled: the
    /// refill ends them).
    fn sweep(&mut self, now_ms: u64) -> Vec<Returned> {
        if now_ms < self.next_end_ms {
            return Vec::new();
        }
        let mut returned = Vec::new();
        let mut next = u64::MAX;
        self.leases.retain(|key, lease| {
            if lease.ends_at_ms > now_ms || lease.refilling {
                next = next.min(lease.ends_at_ms.max(now_ms.saturating_add(1)));
                return true;
            }
            if lease.held > 0 {
                returned.push(Returned {
                    key: key.clone(),
                    amount: lease.held,
                    store_timeout: lease.store_timeout,
                });
            }
            false
        });
        self.next_end_ms = next;
        returned
    }

    /// The lease of `key` if it is live at `now_ms`.
    fn live(&mut self, key: &str, now_ms: u64) -> Option<&mut Lease> {
        self.leases
            .get_mut(key)
            .filter(|lease| lease.ends_at_ms > now_ms)
    }
}

/// What [`Leases::take`] decided.
#[derive(Debug, PartialEq, Eq)]
enum Take {
    /// Served from the lease; this instance's view of what is left.
    Served { remaining: u64 },
    /// The lease saw the counter too full for this request: refused
    /// without a store call.
    Refused,
    /// Ask the store for `block`; `pending` units were taken out of the
    /// lease for this request.
    Refill { pending: u64, block: u64 },
    /// Consume exactly the request's amount from the counter (another
    /// request is refilling this lease, or the table is full).
    Direct,
}

/// The leases of one instance (one `Gateway`), by counter key.
#[derive(Debug, Default)]
pub struct Leases {
    table: Mutex<Table>,
}

/// One request's ask of a leased limit.
pub(crate) struct Ask<'a> {
    pub key: &'a str,
    pub amount: u64,
    /// What the window may hold now (the limit, or the sliding allowance).
    pub max: u64,
    pub counter_expires_at_ms: u64,
    pub window_reset_ms: u64,
    pub cap: u64,
    pub store_timeout: Duration,
}

impl Leases {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every update below is a few assignments that cannot panic half-way.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many units the leases of this instance hold unused (tests,
    /// the skew bound).
    pub fn held(&self) -> u64 {
        self.lock().leases.values().map(|l| l.held).sum()
    }

    fn take(&self, policy: &LeasePolicy, ask: &Ask<'_>, now_ms: u64) -> (Take, Vec<Returned>) {
        let mut table = self.lock();
        let returned = table.sweep(now_ms);
        let ends_at_ms = now_ms
            .saturating_add(policy.ttl_ms)
            .min(ask.window_reset_ms);
        if !table.leases.contains_key(ask.key) {
            if table.leases.len() >= MAX_LEASES {
                return (Take::Direct, returned);
            }
            table.next_end_ms = table.next_end_ms.min(ends_at_ms);
        }
        let lease = table
            .leases
            .entry(ask.key.to_owned())
            .or_insert_with(|| Lease {
                held: 0,
                seen_used: 0,
                known: false,
                refused_at: u64::MAX,
                ends_at_ms,
                cap: ask.cap,
                refilling: false,
                store_timeout: ask.store_timeout,
            });
        if lease.ends_at_ms <= now_ms {
            // Ended while a refill was in flight; the refill returns it.
            return (Take::Direct, returned);
        }
        if lease.held >= ask.amount {
            lease.held -= ask.amount;
            let remaining = lease.remaining(ask.max);
            return (Take::Served { remaining }, returned);
        }
        let short = ask.amount - lease.held;
        let room = ask.max.saturating_sub(lease.seen_used);
        if short >= lease.refused_at || (lease.known && room < short) {
            return (Take::Refused, returned);
        }
        if lease.refilling {
            return (Take::Direct, returned);
        }
        lease.refilling = true;
        let pending = std::mem::take(&mut lease.held);
        let block = policy.block(room, ask.cap).max(short);
        (Take::Refill { pending, block }, returned)
    }

    /// Ends a refill: `granted` units came from the store (0 when it
    /// refused or failed), `seen_used` is the counter it reported,
    /// `refused` the amount it refused for lack of room. What is left
    /// (`pending + granted - served`) goes into the lease; what cannot (the
    /// lease ended meanwhile, or it would pass the cap) comes back to be
    /// refunded.
    #[allow(clippy::too_many_arguments)]
    fn finish_refill(
        &self,
        ask: &Ask<'_>,
        pending: u64,
        granted: u64,
        served: u64,
        seen_used: Option<u64>,
        refused: Option<u64>,
        now_ms: u64,
    ) -> (u64, Option<Returned>) {
        let left = pending.saturating_add(granted).saturating_sub(served);
        let mut table = self.lock();
        let Some(lease) = table.leases.get_mut(ask.key) else {
            return (0, leftover(ask, left));
        };
        lease.refilling = false;
        if let Some(used) = seen_used {
            lease.seen_used = used;
            lease.known = true;
        }
        if let Some(amount) = refused {
            lease.refused_at = lease.refused_at.min(amount);
        }
        if lease.ends_at_ms <= now_ms {
            let amount = left.saturating_add(std::mem::take(&mut lease.held));
            table.leases.remove(ask.key);
            return (0, leftover(ask, amount));
        }
        // Give-backs during the refill may have refilled it already: it
        // never holds more than its cap.
        let total = lease.held.saturating_add(left);
        lease.held = total.min(lease.cap);
        let remaining = lease.remaining(ask.max);
        (remaining, leftover(ask, total - lease.held))
    }

    /// Puts `amount` units of `key` back into its live lease, up to the
    /// lease's cap; returns what did not fit (to refund to the counter).
    pub(crate) fn give_back(&self, key: &str, amount: u64, now_ms: u64) -> u64 {
        let mut table = self.lock();
        let Some(lease) = table.live(key, now_ms) else {
            return amount;
        };
        let fits = amount.min(lease.cap.saturating_sub(lease.held));
        lease.held += fits;
        amount - fits
    }

    /// Takes `amount` units from the live lease of `key` if it holds them
    /// (a settlement that used more than it reserved).
    pub(crate) fn take_extra(&self, key: &str, amount: u64, now_ms: u64) -> bool {
        let mut table = self.lock();
        match table.live(key, now_ms) {
            Some(lease) if lease.held >= amount => {
                lease.held -= amount;
                true
            }
            _ => false,
        }
    }

    /// Ends every lease not being refilled; what they held is returned.
    fn end_all(&self) -> Vec<Returned> {
        let mut table = self.lock();
        table.next_end_ms = 0;
        let mut returned = Vec::new();
        table.leases.retain(|key, lease| {
            if lease.refilling {
                return true;
            }
            if lease.held > 0 {
                returned.push(Returned {
                    key: key.clone(),
                    amount: lease.held,
                    store_timeout: lease.store_timeout,
                });
            }
            false
        });
        returned
    }
}

fn leftover(ask: &Ask<'_>, amount: u64) -> Option<Returned> {
    (amount > 0).then(|| Returned {
        key: ask.key.to_owned(),
        amount,
        store_timeout: ask.store_timeout,
    })
}

/// Refunds what ended leases held.
pub(crate) async fn give_back_to_counters<P: Platform>(platform: &P, returned: Vec<Returned>) {
    for r in returned {
        let result = store_call(
            platform.clock(),
            r.store_timeout,
            platform.quota().refund(&r.key, r.amount),
        )
        .await;
        match result {
            Ok(_) => tracing::debug!(key = %r.key, amount = r.amount, "quota lease returned"),
            Err(error) => {
                tracing::warn!(key = %r.key, amount = r.amount, %error, "quota lease return failed; lost for the window")
            }
        }
    }
}

/// Hands `returned` to a background task (nothing when it is empty).
fn spawn_returns<P: Platform>(platform: &Arc<P>, returned: Vec<Returned>) {
    if returned.is_empty() {
        return;
    }
    let task_platform = Arc::clone(platform);
    platform.spawn(Box::pin(async move {
        give_back_to_counters(&*task_platform, returned).await;
    }));
}

/// Ends every lease of the instance and refunds what they held (an
/// instance that is about to stop).
pub(crate) async fn return_all<P: Platform>(platform: &P, leases: &Leases) -> u64 {
    let returned = leases.end_all();
    let total = returned.iter().map(|r| r.amount).sum();
    give_back_to_counters(platform, returned).await;
    total
}

/// Admits `ask.amount` of a leased limit: from the instance's lease, or by
/// refilling it from the store. `Ok(Some(remaining))` when admitted (this
/// instance's view of what is left), `Ok(None)` when the window is full.
pub(crate) async fn admit<P: Platform>(
    platform: &Arc<P>,
    leases: &Leases,
    policy: &LeasePolicy,
    ask: &Ask<'_>,
) -> Result<Option<u64>, StoreError> {
    let clock = platform.clock();
    let store = platform.quota();
    let (take, returned) = leases.take(policy, ask, clock.now_unix_ms());
    spawn_returns(platform, returned);
    let (pending, mut block) = match take {
        Take::Served { remaining } => return Ok(Some(remaining)),
        Take::Refused => return Ok(None),
        Take::Direct => {
            let consumed = store_call(
                clock,
                ask.store_timeout,
                store.consume(ask.key, ask.amount, ask.max, ask.counter_expires_at_ms),
            )
            .await?;
            return Ok(consumed
                .admitted
                .then(|| ask.max.saturating_sub(consumed.used)));
        }
        Take::Refill { pending, block } => (pending, block),
    };
    let short = ask.amount - pending;
    let mut seen_used = None;
    let mut outcome = Ok(None);
    for attempt in 1..=REFILL_ATTEMPTS {
        if attempt == REFILL_ATTEMPTS {
            block = short;
        }
        let result = store_call(
            clock,
            ask.store_timeout,
            store.consume(ask.key, block, ask.max, ask.counter_expires_at_ms),
        )
        .await;
        match result {
            Ok(consumed) if consumed.admitted => {
                // This block took the last of the window: the lease refuses
                // once it is dry, until it ends (a sliding window's
                // allowance grows a trickle at a time; the next lease takes
                // what grew in one block instead of a call per unit).
                let full = (consumed.used >= ask.max).then_some(1);
                let (remaining, lost) = leases.finish_refill(
                    ask,
                    pending,
                    block,
                    ask.amount,
                    Some(consumed.used),
                    full,
                    clock.now_unix_ms(),
                );
                spawn_returns(platform, lost.into_iter().collect());
                return Ok(Some(remaining));
            }
            Ok(consumed) => {
                seen_used = Some(consumed.used);
                let room = ask.max.saturating_sub(consumed.used);
                if room < short {
                    break;
                }
                block = policy.block(room, ask.cap).clamp(short, room);
            }
            Err(error) => {
                outcome = Err(error);
                break;
            }
        }
    }
    // Refused or failed: the units taken out for this request go back.
    let refused = matches!(outcome, Ok(None)).then_some(short);
    let (_, lost) =
        leases.finish_refill(ask, pending, 0, 0, seen_used, refused, clock.now_unix_ms());
    spawn_returns(platform, lost.into_iter().collect());
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LeasePolicy {
        LeasePolicy {
            fraction: 0.1,
            max_requests: Some(50),
            max_tokens: None,
            ttl_ms: 1_000,
        }
    }

    fn ask(amount: u64, max: u64) -> Ask<'static> {
        Ask {
            key: "k",
            amount,
            max,
            counter_expires_at_ms: u64::MAX,
            window_reset_ms: 60_000,
            cap: 50,
            store_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn blocks_shrink_with_what_remains_and_respect_the_cap() {
        let p = policy();
        assert_eq!(p.block(1_000, 50), 50);
        assert_eq!(p.block(200, 50), 20);
        assert_eq!(p.block(9, 50), 1);
        assert_eq!(p.block(0, 50), 1);
        assert_eq!(share(1.0, u64::MAX), u64::MAX);
        assert_eq!(share(0.5, 3), 2);
    }

    #[test]
    fn a_lease_serves_locally_until_it_is_empty_then_refills_once() {
        let leases = Leases::default();
        let p = policy();
        let (take, _) = leases.take(&p, &ask(1, 1_000), 0);
        assert_eq!(
            take,
            Take::Refill {
                pending: 0,
                block: 50
            }
        );
        // A concurrent request does not refill too.
        assert_eq!(leases.take(&p, &ask(1, 1_000), 0).0, Take::Direct);
        let (remaining, lost) = leases.finish_refill(&ask(1, 1_000), 0, 50, 1, Some(50), None, 0);
        assert!(lost.is_none());
        assert_eq!(remaining, 950 + 49);
        for left in (0..49).rev() {
            assert_eq!(
                leases.take(&p, &ask(1, 1_000), 10).0,
                Take::Served {
                    remaining: 950 + left
                }
            );
        }
        assert_eq!(leases.held(), 0);
        // Empty: the next request refills from what the store last said.
        assert_eq!(
            leases.take(&p, &ask(1, 1_000), 10).0,
            Take::Refill {
                pending: 0,
                block: 50
            }
        );
    }

    #[test]
    fn a_lease_that_saw_the_counter_full_refuses_until_it_ends() {
        let leases = Leases::default();
        let p = policy();
        let (Take::Refill { pending, .. }, _) = leases.take(&p, &ask(5, 100), 0) else {
            panic!("refill expected");
        };
        leases.finish_refill(&ask(5, 100), pending, 0, 0, Some(98), Some(5), 0);
        assert_eq!(leases.take(&p, &ask(5, 100), 500).0, Take::Refused);
        // Also when the window's allowance has grown since (sliding): it
        // asks again with its next lease.
        assert_eq!(leases.take(&p, &ask(5, 110), 500).0, Take::Refused);
        // A request that fits in what is left still goes to the store.
        assert!(matches!(
            leases.take(&p, &ask(2, 100), 500).0,
            Take::Refill { block: 2, .. }
        ));
        leases.finish_refill(&ask(2, 100), 0, 0, 0, Some(100), Some(2), 500);
        // After the lease's ttl it asks the store again.
        assert!(matches!(
            leases.take(&p, &ask(5, 100), 1_000).0,
            Take::Refill { .. }
        ));
    }

    #[test]
    fn ended_leases_are_returned_and_give_backs_stop_at_the_cap() {
        let leases = Leases::default();
        let p = policy();
        leases.take(&p, &ask(1, 1_000), 0);
        leases.finish_refill(&ask(1, 1_000), 0, 50, 1, Some(50), None, 0);
        // A refund fills the lease up to its cap; the rest is the counter's.
        assert_eq!(leases.give_back("k", 10, 0), 9);
        assert!(leases.take_extra("k", 30, 0));
        assert!(!leases.take_extra("k", 30, 0));
        assert_eq!(leases.held(), 20);
        // Its time is up: the next call to any key returns it.
        let mut table = leases.lock();
        let returned = table.sweep(1_000);
        assert_eq!(returned.len(), 1);
        assert_eq!(returned[0].amount, 20);
        assert!(table.leases.is_empty());
        drop(table);
        assert_eq!(leases.give_back("k", 10, 1_000), 10);
    }

    #[test]
    fn a_refill_never_leaves_more_than_the_cap_in_the_lease() {
        let leases = Leases::default();
        let p = policy();
        leases.take(&p, &ask(1, 1_000), 0);
        leases.finish_refill(&ask(1, 1_000), 0, 50, 1, Some(50), None, 0);
        // Empty the lease, start a refill, and let refunds fill it meanwhile.
        assert!(leases.take_extra("k", 49, 0));
        let (Take::Refill { pending, block }, _) = leases.take(&p, &ask(1, 1_000), 0) else {
            panic!("refill expected");
        };
        assert_eq!(leases.give_back("k", 40, 0), 0);
        let (_, excess) =
            leases.finish_refill(&ask(1, 1_000), pending, block, 1, Some(100), None, 0);
        assert_eq!(leases.held(), 50);
        // 40 given back + 49 left of the block: 39 over the cap go back.
        assert_eq!(excess.map(|r| r.amount), Some(39));
    }

    #[test]
    fn a_lease_never_outlives_its_window() {
        let leases = Leases::default();
        let p = policy();
        let mut late = ask(1, 1_000);
        late.window_reset_ms = 100;
        leases.take(&p, &late, 50);
        leases.finish_refill(&late, 0, 50, 1, Some(50), None, 60);
        assert_eq!(leases.held(), 49);
        assert!(!leases.take_extra("k", 1, 100));
        let returned = leases.lock().sweep(100);
        assert_eq!(returned[0].amount, 49);
    }
}
