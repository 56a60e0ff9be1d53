//! Background work (settling a reservation after the client left) that the
//! runtime must not cut short: Workers stop an isolate's pending promises
//! once a request's response is done unless `ctx.waitUntil` holds them.
//!
//! Tasks are spawned isolate-wide (the core's `Platform::spawn` knows no
//! request), so each request that may leave work behind — a streamed
//! response, or a handler that spawned something — hands `waitUntil` a
//! future that waits for its response body to finish and then for the
//! isolate's background tasks to drain. A request may thus wait on another
//! request's settlement; those are store calls with timeouts, so short.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use gateway_core::body::BodyError;
use gateway_core::platform::BackgroundTask;
use gateway_core::Body;

thread_local! {
    static PENDING: Cell<usize> = const { Cell::new(0) };
    static IDLE_WAKERS: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
}

/// Runs `task` on the isolate's event loop, counted until it finishes.
pub fn spawn(task: BackgroundTask) {
    PENDING.set(PENDING.get() + 1);
    worker::wasm_bindgen_futures::spawn_local(async move {
        task.await;
        PENDING.set(PENDING.get() - 1);
        if PENDING.get() == 0 {
            IDLE_WAKERS.with_borrow_mut(|wakers| wakers.drain(..).for_each(Waker::wake));
        }
    });
}

/// True when background tasks are running.
pub fn busy() -> bool {
    PENDING.get() > 0
}

/// Resolves once no background task is running.
pub async fn idle() {
    poll_fn(|cx: &mut TaskContext<'_>| {
        if PENDING.get() == 0 {
            Poll::Ready(())
        } else {
            IDLE_WAKERS.with_borrow_mut(|wakers| wakers.push(cx.waker().clone()));
            Poll::Pending
        }
    })
    .await;
}

/// `body`, plus a future that resolves when the body ends or is dropped
/// (the client left): the moment its observers have spawned what they
/// spawn.
pub fn watch_end(body: Body) -> (Body, impl std::future::Future<Output = ()>) {
    let state = Rc::new(EndState::default());
    let ended = {
        let state = Rc::clone(&state);
        poll_fn(move |cx: &mut TaskContext<'_>| {
            if state.ended.get() {
                Poll::Ready(())
            } else {
                state.waker.replace(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
    };
    let watched = Watched {
        body: Some(body),
        state,
    };
    (Body::from_stream(watched), ended)
}

#[derive(Default)]
struct EndState {
    ended: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl EndState {
    fn end(&self) {
        self.ended.set(true);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

struct Watched {
    /// `None` once dropped (see `Drop`).
    body: Option<Body>,
    state: Rc<EndState>,
}

impl Stream for Watched {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(None);
        };
        let next = body.poll_next_unpin(cx);
        if let Poll::Ready(None) = next {
            self.state.end();
        }
        next
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        // The body first: its observers spawn their settlement as it drops,
        // before the waiter looks for running tasks.
        drop(self.body.take());
        self.state.end();
    }
}
