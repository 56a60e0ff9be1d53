//! An upstream stream that goes quiet is ended, not waited on: after
//! `idle` without a chunk the body fails, so the stream observer writes the
//! error event and settles the reservation (an upstream that sends headers
//! and stalls must not hold a sandbox, or its reservation, forever). The
//! same happens at the runtime's deadline (a Lambda invocation's), so a
//! long stream is settled before the runtime kills it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::body::{Body, BodyError};
use crate::platform::{Clock, Platform, PlatformClock};
use crate::util::BackgroundTask;

/// `body`, failing once `idle` passes without a chunk, or once `deadline`
/// (from now) has passed.
pub fn with_idle_timeout<P: Platform>(
    body: Body,
    platform: &Arc<P>,
    idle: Duration,
    deadline: Option<Duration>,
) -> Body {
    let clock = PlatformClock::new(Arc::clone(platform));
    let deadline = deadline.map(|left| Box::pin(clock.sleep(left)) as BackgroundTask);
    Body::from_stream(IdleTimeout {
        body,
        clock,
        idle,
        sleep: None,
        deadline,
        done: false,
    })
}

struct IdleTimeout<P> {
    body: Body,
    clock: PlatformClock<P>,
    idle: Duration,
    /// Started when the body first has nothing to give; reset by a chunk.
    sleep: Option<BackgroundTask>,
    deadline: Option<BackgroundTask>,
    done: bool,
}

impl<P: Platform> Stream for IdleTimeout<P> {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                this.done = true;
                return Poll::Ready(Some(Err(BodyError(
                    "the runtime's deadline is near; the stream was ended".into(),
                ))));
            }
        }
        match this.body.poll_next_unpin(cx) {
            Poll::Ready(Some(item)) => {
                this.sleep = None;
                return Poll::Ready(Some(item));
            }
            Poll::Ready(None) => {
                this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        let (clock, idle) = (&this.clock, this.idle);
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(clock.sleep(idle)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.done = true;
                Poll::Ready(Some(Err(BodyError(format!(
                    "the upstream sent nothing for {} ms",
                    idle.as_millis()
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
