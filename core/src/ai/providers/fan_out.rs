//! Upstream calls fanned out for one request (the embeddings batches of
//! Bedrock and Gemini): a bounded number in flight, answers in call order,
//! and a failure that stops the rest without losing what was paid for.
//!
//! At the first failure no further call starts. The calls already started
//! are awaited, not cancelled: the provider bills a call it received whether
//! or not anyone reads the answer, and only the answer says what it cost.
//! Calls pushed but never polled were never sent and are dropped.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::CallStop;

/// How a fan-out ended.
pub(crate) enum FanOut<T> {
    /// Every call succeeded: the answers, in call order.
    Done(Vec<T>),
    /// A call failed: the first failure, and the answers of the calls that
    /// succeeded (started before the failure was known), in call order.
    Stopped(CallStop, Vec<T>),
}

/// One call, numbered, that remembers whether it was ever polled (started).
struct Call<F> {
    index: usize,
    started: bool,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for Call<F> {
    type Output = (usize, F::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.started = true;
        let index = self.index;
        self.future.as_mut().poll(cx).map(|output| (index, output))
    }
}

/// Runs `calls` with at most `in_flight` at a time; see the module docs.
pub(crate) async fn fan_out<T, F>(calls: Vec<F>, in_flight: usize) -> FanOut<T>
where
    F: Future<Output = Result<T, CallStop>>,
{
    let mut answers: Vec<Option<T>> = std::iter::repeat_with(|| None).take(calls.len()).collect();
    let mut pending = calls.into_iter().enumerate();
    let mut running = FuturesUnordered::new();
    let mut stop = None;
    loop {
        while stop.is_none() && running.len() < in_flight.max(1) {
            let Some((index, future)) = pending.next() else {
                break;
            };
            running.push(Call {
                index,
                started: false,
                future: Box::pin(future),
            });
        }
        let Some((index, result)) = running.next().await else {
            break;
        };
        match result {
            Ok(answer) => answers[index] = Some(answer),
            Err(failure) => {
                if stop.is_none() {
                    stop = Some(failure);
                    // Never sent: nothing to pay for, nothing to wait for.
                    running = running.into_iter().filter(|call| call.started).collect();
                } else {
                    // Only the first failure reaches the client; the others
                    // (not charged) are at least visible.
                    match &failure {
                        CallStop::Failed(error) => {
                            tracing::warn!(call = index, error = %error, detail = error.detail().unwrap_or(""), "a further fanned-out call failed");
                        }
                        CallStop::Rejected(reply) => {
                            tracing::warn!(call = index, status = %reply.status(), "a further fanned-out call was refused");
                        }
                    }
                }
            }
        }
    }
    let answers = answers.into_iter().flatten().collect();
    match stop {
        None => FanOut::Done(answers),
        Some(stop) => FanOut::Stopped(stop, answers),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_executor::block_on;

    use super::*;
    use crate::error::GatewayError;

    /// Pending once, then ready (woken at once, unlike `pending!`).
    async fn yield_now() {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if yielded {
                return Poll::Ready(());
            }
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await;
    }

    fn failed() -> CallStop {
        CallStop::Failed(GatewayError::UpstreamInvalid { detail: "x".into() })
    }

    #[test]
    fn answers_come_back_in_call_order() {
        let calls: Vec<_> = (0..10u32)
            .map(|i| async move {
                // Later calls finish first.
                for _ in 0..(10 - i) {
                    yield_now().await;
                }
                Ok::<_, CallStop>(i)
            })
            .collect();
        let FanOut::Done(answers) = block_on(fan_out(calls, 4)) else {
            panic!("expected every call to succeed")
        };
        assert_eq!(answers, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn a_failure_starts_nothing_more_and_keeps_what_started() {
        let started = AtomicUsize::new(0);
        let started = &started;
        // Three in flight; call 1 fails while call 2 still runs.
        let calls: Vec<_> = (0..10u32)
            .map(|i| async move {
                started.fetch_add(1, Ordering::SeqCst);
                yield_now().await;
                if i == 1 {
                    return Err(failed());
                }
                if i == 2 {
                    yield_now().await;
                }
                Ok(i)
            })
            .collect();
        let FanOut::Stopped(CallStop::Failed(_), answers) = block_on(fan_out(calls, 3)) else {
            panic!("expected a stop")
        };
        assert_eq!(answers, vec![0, 2], "the calls already started are awaited");
        assert_eq!(started.load(Ordering::SeqCst), 3, "nothing starts after");
    }
}
