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

use super::{settle, Actual, Grant};
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
    /// used beyond the reservation.
    pub async fn settle(mut self, used: Actual) {
        let grants = std::mem::take(&mut self.grants);
        if !grants.is_empty() {
            settle(&*self.platform, &grants, used).await;
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
