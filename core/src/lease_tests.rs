//! Quota leases (`quota::lease`) simulated: several `Gateway` instances over
//! one shared quota store, many interleaved requests on a manual clock.
//! What they show: store calls per request fall far below 0.1 at a high
//! rate; the limit stays exact (admitted ≤ limit in every window, and
//! once the leases are returned the counters equal what was admitted or
//! used); the documented skew holds (the counter leads admissions by
//! exactly what leases hold, at most `cap` per instance; a refusal leaves
//! at most `(instances - 1) × cap` unadmitted); an instance that
//! disappears loses at most `cap` for the rest of its window; config
//! without `lease:` behaves as before (one store call per request).

use std::time::Duration;

use bytes::Bytes;
use futures_executor::block_on;
use http::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::platform::{Clock, QuotaStore};
use crate::testing::{FakeHttp, FakeReply, TestPlatform};
use crate::{Body, Config, Gateway};

/// Request limits: 6,000 per 10 s window; leases take 10 % of what remains,
/// at most 200 requests, for at most 1 s.
const LIMIT: u64 = 6_000;
const WINDOW_MS: u64 = 10_000;
const CAP: u64 = 200;
/// Token budget of the AI route.
const TOKEN_LIMIT: u64 = 40_000;

const CONFIG: &str = r#"
providers:
  mock: { kind: mock }
models:
  - { name: mock-gpt, provider: mock }
plans:
  leased:
    lease: { fraction: 0.1, max_requests: 200, ttl_ms: 1000 }
    limits:
      - { name: rps, window_s: 10, requests: 6000, algorithm: fixed_window }
  sliding:
    lease: { fraction: 0.1, max_requests: 200, ttl_ms: 1000 }
    limits:
      - { name: rps, window_s: 10, requests: 6000 }
  small:
    lease: { fraction: 0.5, ttl_ms: 60000 }
    limits:
      - { name: rps, window_s: 10, requests: 50, algorithm: fixed_window }
  unleased:
    limits:
      - { name: rps, window_s: 10, requests: 6000, algorithm: fixed_window }
  leased-tokens:
    reserve_completion_tokens: 30
    lease: { fraction: 0.1, ttl_ms: 1000 }
    limits:
      - { name: tph, window_s: 3600, tokens: 40000, algorithm: fixed_window }
  unleased-tokens:
    reserve_completion_tokens: 30
    limits:
      - { name: tph, window_s: 3600, tokens: 40000, algorithm: fixed_window }
routes:
  - name: leased
    match: { path_prefix: /leased }
    plan: leased
    proxy: { url: "http://rest.internal" }
  - name: sliding
    match: { path_prefix: /sliding }
    plan: sliding
    proxy: { url: "http://rest.internal" }
  - name: small
    match: { path_prefix: /small }
    plan: small
    proxy: { url: "http://rest.internal" }
  - name: unleased
    match: { path_prefix: /unleased }
    plan: unleased
    proxy: { url: "http://rest.internal" }
  - name: ai
    match: { path_prefix: /v1 }
    plan: leased-tokens
    ai: {}
  - name: ai-unleased
    match: { path_prefix: /plain/v1 }
    plan: unleased-tokens
    ai: {}
"#;

/// `n` gateway instances over one quota store and clock; the clock starts
/// at the beginning of a request window.
fn instances(n: usize) -> Vec<Gateway<TestPlatform>> {
    let config = || Config::from_yaml(CONFIG, |_| None).unwrap();
    let http = || FakeHttp::unrecorded(|_| FakeReply::Respond(Response::new(Body::from("ok"))));
    let first = TestPlatform::new(http());
    let now = first.clock.now_unix_ms();
    first
        .clock
        .advance(Duration::from_millis(WINDOW_MS - now % WINDOW_MS));
    let others: Vec<TestPlatform> = (1..n).map(|_| first.sharing_stores(http())).collect();
    std::iter::once(first)
        .chain(others)
        .map(|platform| Gateway::new(config(), platform))
        .collect()
}

/// Sends `request` to `gw`, reads the whole body, then runs the background
/// work it spawned (lease returns, as Lambda does before the invocation
/// ends). Returns the status and the body.
fn call(gw: &Gateway<TestPlatform>, request: Request<Bytes>) -> (StatusCode, Bytes) {
    let response = block_on(gw.handle(request));
    let status = response.status();
    let body = block_on(response.into_body().collect(usize::MAX)).unwrap();
    gw.platform().run_background();
    (status, body)
}

fn get(gw: &Gateway<TestPlatform>, path: &str) -> StatusCode {
    call(gw, Request::get(path).body(Bytes::new()).unwrap()).0
}

/// The shared counter of `key` (read without counting a call).
fn counter(gw: &Gateway<TestPlatform>, key: &str) -> u64 {
    block_on(
        gw.platform()
            .quota
            .inner
            .consume(key, 0, u64::MAX, u64::MAX),
    )
    .unwrap()
    .used
}

fn window_key(plan: &str, index: u64) -> String {
    format!("quota/{plan}/rps/c:-/{index}")
}

fn store_calls(gws: &[Gateway<TestPlatform>]) -> u64 {
    gws.iter().map(|g| g.platform().quota.calls()).sum()
}

fn held(gws: &[Gateway<TestPlatform>]) -> u64 {
    gws.iter().map(Gateway::leased_units).sum()
}

/// A deterministic pseudo-random sequence (which instance gets a request).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// What one simulated run saw.
struct Run {
    /// Admitted requests per window index.
    admitted: std::collections::BTreeMap<u64, u64>,
    requests: u64,
    calls: u64,
    /// The largest `limit - admitted` seen at a refusal.
    worst_refusal_gap: u64,
}

/// `requests` requests, one every `step` on the shared clock, spread over
/// the instances `alive(i)` allows; checks after every request that the
/// counter leads admissions by exactly what the leases hold.
fn simulate(
    gws: &[Gateway<TestPlatform>],
    plan: &str,
    requests: u64,
    step: Duration,
    alive: impl Fn(u64, usize) -> bool,
) -> Run {
    let clock = gws[0].platform().clock.clone();
    let mut rng = Lcg(7);
    let mut run = Run {
        admitted: Default::default(),
        requests: 0,
        calls: store_calls(gws),
        worst_refusal_gap: 0,
    };
    for n in 0..requests {
        let i = loop {
            let i = rng.next(gws.len());
            if alive(n, i) {
                break i;
            }
        };
        let index = clock.now_unix_ms() / WINDOW_MS;
        let status = get(&gws[i], &format!("/{plan}/x"));
        run.requests += 1;
        let admitted = run.admitted.entry(index).or_default();
        match status {
            StatusCode::OK => *admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                run.worst_refusal_gap = run.worst_refusal_gap.max(LIMIT - *admitted);
            }
            other => panic!("unexpected {other}"),
        }
        let admitted = *admitted;
        assert!(admitted <= LIMIT, "window {index} admitted {admitted}");
        // The counter never passes the limit, and leads admissions by at
        // most what the instances hold (a disappeared one included), at
        // most `cap` each.
        let count = counter(&gws[0], &window_key(plan, index));
        assert!(count <= LIMIT, "counter {count}");
        let (lead, holding) = (count - admitted, held(gws));
        assert!(
            lead <= holding,
            "counter leads by {lead}, leases hold {holding}"
        );
        assert!(holding <= gws.len() as u64 * CAP, "leases hold {holding}");
        clock.advance(step);
    }
    run.calls = store_calls(gws) - run.calls;
    run
}

#[test]
fn leases_cut_store_calls_below_a_tenth_and_keep_every_window_exact() {
    let gws = instances(4);
    // 25,000 requests at 1,000 per second: two full windows and half of a
    // third, each asking for 10,000 against a limit of 6,000.
    let run = simulate(&gws, "leased", 25_000, Duration::from_millis(1), |_, _| {
        true
    });
    let per_request = run.calls as f64 / run.requests as f64;
    println!(
        "leased: {} store calls for {} requests ({per_request:.4} per request), admitted {:?}, worst refusal gap {}",
        run.calls, run.requests, run.admitted, run.worst_refusal_gap
    );
    assert!(per_request < 0.1, "{per_request} store calls per request");
    let windows: Vec<(u64, u64)> = run.admitted.clone().into_iter().collect();
    assert_eq!(windows.len(), 3);
    for &(index, admitted) in &windows[..2] {
        // Demand exceeded the limit in every full window and every instance
        // kept serving: nothing was lost, the whole limit was admitted.
        assert_eq!(admitted, LIMIT, "window {index}");
    }
    // The second window is over and its leases went back (the first one's
    // counter has expired by now).
    let (index, admitted) = windows[1];
    assert_eq!(counter(&gws[0], &window_key("leased", index)), admitted);
    assert!(
        run.worst_refusal_gap <= 3 * CAP,
        "a refusal left {} unadmitted, more than (instances - 1) × cap",
        run.worst_refusal_gap
    );
    // The third window is live: returning every lease leaves the counter
    // at exactly what was admitted.
    let (current, admitted) = windows[2];
    assert!(held(&gws) > 0);
    let returned: u64 = gws.iter().map(|g| block_on(g.return_leases())).sum();
    assert!(returned > 0);
    assert_eq!(held(&gws), 0);
    assert_eq!(counter(&gws[0], &window_key("leased", current)), admitted);
}

#[test]
fn sliding_windows_stay_within_their_allowance_with_leases() {
    // The sliding allowance grows through a window; a lease taken early
    // must not let the window admit more than the allowance at any moment
    // (computed here from what the previous window really admitted).
    let gws = instances(3);
    let clock = gws[0].platform().clock.clone();
    let mut rng = Lcg(3);
    let mut admitted = std::collections::BTreeMap::<u64, u64>::new();
    let mut calls = store_calls(&gws);
    // Three windows at 1,000 requests per second: 10,000 asked per window.
    for _ in 0..30_000 {
        let now = clock.now_unix_ms();
        let index = now / WINDOW_MS;
        let status = get(&gws[rng.next(gws.len())], "/sliding/x");
        let current = admitted.entry(index).or_default();
        if status == StatusCode::OK {
            *current += 1;
        }
        let current = *current;
        let previous = admitted.get(&(index - 1)).copied().unwrap_or(0);
        let allowance = crate::quota::sliding_allowance(
            LIMIT,
            previous,
            now,
            crate::quota::window(now, WINDOW_MS),
        );
        assert!(
            current <= allowance,
            "window {index} admitted {current}, allowance {allowance} (previous {previous})"
        );
        clock.advance(Duration::from_millis(1));
    }
    calls = store_calls(&gws) - calls;
    println!("sliding: {calls} store calls for 30000 requests, admitted {admitted:?}");
    assert!((calls as f64) / 30_000.0 < 0.1);
    // The later windows were limited by the carry-over, and still filled.
    let counts: Vec<u64> = admitted.values().copied().collect();
    assert_eq!(counts[0], LIMIT);
    assert!(counts[1] < LIMIT && counts[1] > LIMIT / 2, "{counts:?}");
}

#[test]
fn without_a_lease_every_request_is_a_store_call() {
    let gws = instances(4);
    let run = simulate(&gws, "unleased", 3_000, Duration::from_millis(1), |_, _| {
        true
    });
    assert_eq!(run.calls, run.requests);
    assert_eq!(held(&gws), 0);
    let admitted: u64 = run.admitted.values().sum();
    assert_eq!(admitted, 3_000);
}

#[test]
fn leases_only_pay_off_when_an_instance_sees_several_requests_per_ttl() {
    // One request every 2 s, longer than the 1 s lease: each request takes
    // a lease and the next one returns it (the price of leasing a quiet
    // counter; the README says so).
    let gws = instances(2);
    let run = simulate(&gws, "leased", 20, Duration::from_secs(2), |_, _| true);
    let per_request = run.calls as f64 / run.requests as f64;
    assert!(
        (1.0..=2.0).contains(&per_request),
        "{per_request} store calls per request"
    );
}

#[test]
fn an_instance_that_disappears_loses_at_most_its_lease_for_the_window() {
    let gws = instances(4);
    // Instance 3 serves the first 1,000 requests, then is gone: its lease
    // is never returned.
    let run = simulate(&gws, "leased", 9_000, Duration::from_millis(1), |n, i| {
        i != 3 || n < 1_000
    });
    let lost = gws[3].leased_units();
    assert!(lost > 0 && lost <= CAP, "lost {lost}");
    let windows: Vec<(u64, u64)> = run.admitted.into_iter().collect();
    assert_eq!(windows.len(), 1, "{windows:?}");
    let (index, admitted) = windows[0];
    // The window is full: everything but the lost lease was admitted, and
    // the counter never went past the limit.
    assert_eq!(admitted + lost, LIMIT);
    for gw in &gws[..3] {
        block_on(gw.return_leases());
    }
    assert_eq!(
        counter(&gws[0], &window_key("leased", index)),
        admitted + lost
    );
}

#[test]
fn concurrent_requests_on_each_instance_never_exceed_the_limit() {
    // 4 instances × 100 threads against a limit of 50, leases of half of
    // what remains: concurrent refills on one instance, refusals, give-backs.
    let gws = instances(4);
    let admitted: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = gws
            .iter()
            .flat_map(|gw| (0..100).map(move |_| gw))
            .map(|gw| scope.spawn(move || get(gw, "/small/x")))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|s| *s == StatusCode::OK)
            .count()
    });
    let admitted = admitted as u64;
    let index = gws[0].platform().clock.now_unix_ms() / WINDOW_MS;
    let key = window_key("small", index);
    assert!(admitted <= 50, "admitted {admitted}");
    assert_eq!(counter(&gws[0], &key), admitted + held(&gws));
    for gw in &gws {
        block_on(gw.return_leases());
    }
    assert_eq!(counter(&gws[0], &key), admitted);
    // What the leases held is admitted again (one instance, one by one).
    let more = (0..60)
        .filter(|_| get(&gws[0], "/small/x") == StatusCode::OK)
        .count() as u64;
    assert_eq!(admitted + more, 50);
}

/// A chat through `path` on `gw`; the usage it reports (0 when refused).
fn chat(gw: &Gateway<TestPlatform>, path: &str, max_tokens: u64) -> (StatusCode, u64) {
    let body = json!({
        "model": "mock-gpt", "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Count my tokens please"}],
    });
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_string()))
        .unwrap();
    let (status, body) = call(gw, request);
    let used = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["usage"]["total_tokens"].as_u64())
        .unwrap_or(0);
    (status, used)
}

#[test]
fn token_reservations_draw_from_leases_and_the_counter_ends_at_real_usage() {
    let gws = instances(3);
    let key = "quota/leased-tokens/tph/c:-/".to_owned();
    let index = gws[0].platform().clock.now_unix_ms() / 3_600_000;
    let key = format!("{key}{index}");
    let clock = gws[0].platform().clock.clone();
    let mut rng = Lcg(11);
    let (mut used, mut admitted, mut refused) = (0, 0, 0);
    let calls_before = store_calls(&gws);
    let requests = 3_000;
    for n in 0..requests {
        let gw = &gws[rng.next(gws.len())];
        // Different completion caps, so reservations and refunds vary.
        match chat(gw, "/v1/chat/completions", 5 + n % 40) {
            (StatusCode::OK, tokens) => {
                assert!(tokens > 0);
                used += tokens;
                admitted += 1;
            }
            (StatusCode::TOO_MANY_REQUESTS, _) => refused += 1,
            (other, _) => panic!("unexpected {other}"),
        }
        assert!(used <= TOKEN_LIMIT, "admitted usage {used}");
        // The counter holds what was used plus what the leases hold.
        assert_eq!(counter(&gws[0], &key), used + held(&gws));
        clock.advance(Duration::from_millis(1));
    }
    let calls = store_calls(&gws) - calls_before;
    let per_request = calls as f64 / requests as f64;
    println!(
        "tokens: {calls} store calls for {requests} requests ({per_request:.4}), used {used} of {TOKEN_LIMIT}, {admitted} admitted, {refused} refused"
    );
    assert!(refused > 0, "the budget must run out");
    assert!(per_request < 0.1, "{per_request} store calls per request");
    assert!(
        used > TOKEN_LIMIT - 3 * 4_000,
        "refusals left more than (instances - 1) × cap unused: {used}"
    );
    for gw in &gws {
        block_on(gw.return_leases());
    }
    assert_eq!(counter(&gws[0], &key), used, "returned leases: real usage");

    // The same traffic without a lease: a store call to reserve, and one
    // to settle unless the reservation was exactly right.
    let plain = instances(1);
    let before = store_calls(&plain);
    for n in 0..50 {
        assert_eq!(
            chat(&plain[0], "/plain/v1/chat/completions", 5 + n % 40).0,
            StatusCode::OK
        );
    }
    assert!(store_calls(&plain) - before > 50);
}
