//! `QuotaCounter`: the Durable Object behind `DurableObjectQuotaStore`.
//!
//! One object per counter key. The object is single-threaded and its
//! in-memory copy of the counter is authoritative once loaded: a request
//! reads, decides and updates it without an `await` in between, so
//! concurrent requests cannot interleave inside a decision; the write to
//! storage follows, and the output gate holds the reply until it is durable.
//! An alarm at the window's expiry deletes the object's storage.

use std::cell::{Cell, RefCell};

use serde::{Deserialize, Serialize};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

const COUNTER_KEY: &str = "counter";
/// Alarms are set no further out than this: a counter whose window ends
/// later is simply kept until then, checked again at each alarm.
const MAX_ALARM_DELAY_MS: u64 = 366 * 24 * 3600 * 1000;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum QuotaRequest {
    Consume {
        amount: u64,
        limit: u64,
        expires_at_unix_ms: u64,
    },
    Refund {
        amount: u64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct QuotaReply {
    pub admitted: bool,
    pub used: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Counter {
    used: u64,
    expires_at_unix_ms: u64,
}

#[durable_object]
pub struct QuotaCounter {
    state: State,
    counter: RefCell<Option<Counter>>,
    alarm_at: Cell<u64>,
}

impl QuotaCounter {
    /// Loads the counter from storage on the first request after the
    /// object starts; afterwards memory is the source of truth.
    async fn load(&self) -> Result<()> {
        if self.counter.borrow().is_some() {
            return Ok(());
        }
        // Stored as JSON text: u64 values must not pass through JS numbers.
        let stored: Option<String> = self.state.storage().get(COUNTER_KEY).await?;
        let stored: Option<Counter> = stored.and_then(|text| serde_json::from_str(&text).ok());
        // Another request may have loaded it while this one awaited.
        let mut counter = self.counter.borrow_mut();
        if counter.is_none() {
            *counter = Some(stored.unwrap_or_default());
        }
        Ok(())
    }

    /// The decision, synchronous on purpose (see the module docs). Returns
    /// the counter to store, `None` when nothing changed (a zero-amount
    /// read, a refusal, a refund of an empty counter): those write nothing.
    fn apply(&self, request: &QuotaRequest, now_unix_ms: u64) -> (QuotaReply, Option<Counter>) {
        let mut slot = self.counter.borrow_mut();
        let counter = slot.get_or_insert_with(Counter::default);
        if counter.expires_at_unix_ms != 0 && counter.expires_at_unix_ms <= now_unix_ms {
            *counter = Counter::default();
        }
        let before = *counter;
        let reply = match *request {
            QuotaRequest::Consume {
                amount,
                limit,
                expires_at_unix_ms,
            } => {
                // Past u64::MAX is over any limit (saturating would admit it).
                let after = counter.used.checked_add(amount).filter(|&a| a <= limit);
                if let (Some(after), true) = (after, amount > 0) {
                    counter.used = after;
                    counter.expires_at_unix_ms = counter.expires_at_unix_ms.max(expires_at_unix_ms);
                }
                QuotaReply {
                    admitted: after.is_some(),
                    used: counter.used,
                }
            }
            QuotaRequest::Refund { amount } => {
                counter.used = counter.used.saturating_sub(amount);
                QuotaReply {
                    admitted: true,
                    used: counter.used,
                }
            }
        };
        let changed = *counter != before;
        (reply, changed.then_some(*counter))
    }
}

impl DurableObject for QuotaCounter {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            counter: RefCell::new(None),
            alarm_at: Cell::new(0),
        }
    }

    async fn fetch(&self, mut request: Request) -> Result<Response> {
        // Parsed with serde_json, not `Request::json` (JSON.parse): counters
        // and timestamps are u64 and must not pass through f64.
        let text = request.text().await?;
        let quota_request: QuotaRequest = match serde_json::from_str(&text) {
            Ok(r) => r,
            Err(e) => return Response::error(format!("bad quota request: {e}"), 400),
        };
        self.load().await?;
        let now = worker::Date::now().as_millis();
        let (reply, changed) = self.apply(&quota_request, now);
        if let Some(counter) = changed {
            let storage = self.state.storage();
            let text = serde_json::to_string(&counter)
                .map_err(|e| worker::Error::RustError(e.to_string()))?;
            storage.put(COUNTER_KEY, text).await?;
            let alarm_at = counter
                .expires_at_unix_ms
                .min(now.saturating_add(MAX_ALARM_DELAY_MS));
            if alarm_at > self.alarm_at.get() {
                self.alarm_at.set(alarm_at);
                storage
                    .set_alarm(i64::try_from(alarm_at).unwrap_or(i64::MAX))
                    .await?;
            }
        }
        let body =
            serde_json::to_string(&reply).map_err(|e| worker::Error::RustError(e.to_string()))?;
        Response::ok(body)
    }

    async fn alarm(&self) -> Result<Response> {
        self.load().await?;
        let now = worker::Date::now().as_millis();
        let expires_at = self.counter.borrow().map_or(0, |c| c.expires_at_unix_ms);
        if expires_at <= now {
            *self.counter.borrow_mut() = None;
            self.alarm_at.set(0);
            self.state.storage().delete_all().await?;
        } else {
            // The window outlives the longest alarm delay: check again later.
            let next = expires_at.min(now.saturating_add(MAX_ALARM_DELAY_MS));
            self.alarm_at.set(next);
            self.state
                .storage()
                .set_alarm(i64::try_from(next).unwrap_or(i64::MAX))
                .await?;
        }
        Response::empty()
    }
}
