//! [`Reservation`]: the token and spend limits a request holds while its
//! upstream call runs, and the one way they are settled.
//!
//! The limit phase creates it (one atomic consume per limit, the worst
//! case: estimated prompt + the completion cap); whoever learns what the
//! request really used records it ([`Reservation::record`]) and settles
//! ([`Reservation::settle`], which consumes the value, so it happens at most
//! once). A reservation dropped unsettled — a cancelled handler, a stream
//! the client abandoned — settles itself through the platform's background
//! task with the last recorded usage; with nothing recorded it keeps the
//! full reservation charged (the upstream may have billed it), which the
//! window's end releases.

use std::sync::Arc;

use super::{settle, settle_one, Actual, Grant};
use crate::platform::Platform;

/// Token and spend limits held by one request; settles exactly once.
pub struct Reservation<P: Platform> {
    platform: Arc<P>,
    grants: Vec<Grant>,
    recorded: Option<Actual>,
}

impl<P: Platform> Reservation<P> {
    /// Holds `grants` (only settled units matter: request limits are final).
    pub fn new(platform: Arc<P>, mut grants: Vec<Grant>) -> Self {
        grants.retain(|g| g.unit.is_settled());
        Self {
            platform,
            grants,
            recorded: None,
        }
    }

    /// True when no limit needs settling.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// Notes what the request used so far; a later call replaces it. Used
    /// when the reservation is dropped unsettled.
    pub fn record(&mut self, used: Actual) {
        self.recorded = Some(used);
    }

    /// Settles against `used`: refunds what was not used, charges what was
    /// used beyond the reservation. If this future is dropped half-way (the
    /// client left while the store was slow), the grants not yet settled
    /// settle in the background, with `used`.
    pub async fn settle(mut self, used: Actual) {
        self.recorded = Some(used);
        while let Some(grant) = self.grants.pop() {
            settle_one(&*self.platform, &grant, used).await;
        }
    }
}

impl<P: Platform> Drop for Reservation<P> {
    fn drop(&mut self) {
        if self.grants.is_empty() {
            return;
        }
        let grants = std::mem::take(&mut self.grants);
        match self.recorded {
            Some(used) => {
                let platform = Arc::clone(&self.platform);
                self.platform.spawn(Box::pin(async move {
                    settle(&*platform, &grants, used).await;
                }));
            }
            None => {
                tracing::warn!(
                    limits = grants.len(),
                    "reservation dropped before any usage was known; the full reservation stays charged"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_executor::block_on;

    use super::*;
    use crate::platform::QuotaStore;
    use crate::quota::Unit;
    use crate::testing::{FakeHttp, FakeReply, TestPlatform};

    const KEY: &str = "q:test:tokens";

    /// A platform whose counter `KEY` already holds a 100-token reservation,
    /// and the grant for it.
    fn reserved() -> (Arc<TestPlatform>, Grant) {
        let platform = Arc::new(TestPlatform::new(FakeHttp::new(|_| FakeReply::Hang)));
        let consumed = block_on(platform.quota().consume(KEY, 100, 1000, u64::MAX)).unwrap();
        assert!(consumed.admitted);
        let grant = Grant {
            plan: "p".into(),
            limit: "tokens".into(),
            unit: Unit::Tokens,
            key: KEY.into(),
            amount: 100,
            used: 100,
            max: 1000,
            reset_ms: u64::MAX,
            expires_at_ms: u64::MAX,
            store_timeout: Duration::from_secs(1),
            leases: None,
        };
        (platform, grant)
    }

    fn counter(platform: &TestPlatform) -> u64 {
        block_on(platform.quota().consume(KEY, 0, u64::MAX, u64::MAX))
            .unwrap()
            .used
    }

    fn used(tokens: u64) -> Actual {
        Actual {
            tokens,
            ..Actual::default()
        }
    }

    #[test]
    fn settling_refunds_the_unused_part_and_charges_overruns() {
        let (platform, grant) = reserved();
        let reservation = Reservation::new(Arc::clone(&platform), vec![grant.clone()]);
        block_on(reservation.settle(used(30)));
        assert_eq!(counter(&platform), 30);
        // Nothing is left to settle when it is dropped afterwards.
        assert_eq!(platform.run_background(), 0);

        assert!(
            block_on(platform.quota().consume(KEY, 100, 1000, u64::MAX))
                .unwrap()
                .admitted
        );
        let over = Reservation::new(Arc::clone(&platform), vec![grant]);
        block_on(over.settle(used(250)));
        // 30 from before, then a 100 reservation that really used 250.
        assert_eq!(counter(&platform), 30 + 250);
    }

    #[test]
    fn dropped_with_recorded_usage_settles_in_the_background() {
        let (platform, grant) = reserved();
        let mut reservation = Reservation::new(Arc::clone(&platform), vec![grant]);
        reservation.record(used(10));
        reservation.record(used(40));
        drop(reservation);
        assert_eq!(counter(&platform), 100, "not settled before the task runs");
        assert_eq!(platform.run_background(), 1);
        assert_eq!(counter(&platform), 40, "the last recorded usage is charged");
    }

    #[test]
    fn dropped_without_usage_keeps_the_reservation_charged() {
        let (platform, grant) = reserved();
        drop(Reservation::new(Arc::clone(&platform), vec![grant]));
        assert_eq!(platform.run_background(), 0);
        assert_eq!(counter(&platform), 100);
    }

    #[test]
    fn request_limits_are_not_held() {
        let (platform, mut grant) = reserved();
        grant.unit = Unit::Requests;
        let reservation = Reservation::new(Arc::clone(&platform), vec![grant]);
        assert!(reservation.is_empty());
        block_on(reservation.settle(used(0)));
        assert_eq!(counter(&platform), 100);
    }
}
