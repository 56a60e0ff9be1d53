//! Background work (settling a reservation after the client left) must
//! finish inside the invocation: once a Lambda invocation's response is
//! done the runtime asks for the next event and the sandbox may be frozen,
//! so a task still running then may run much later or never.
//!
//! Tasks are counted while they run; the handler waits for the count to
//! reach zero before a complete reply is returned, and before a streamed
//! body reports its end. (A body the runtime drops mid-way cannot be held;
//! its settlement is spawned and runs while the sandbox is thawed.)

use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use gateway_core::platform::BackgroundTask;
use gateway_core::Body;
use tokio::sync::Notify;

static PENDING: AtomicUsize = AtomicUsize::new(0);
static IDLE: Notify = Notify::const_new();

/// Runs `task` on the runtime, counted until it finishes.
pub fn spawn(task: BackgroundTask) {
    PENDING.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        task.await;
        if PENDING.fetch_sub(1, Ordering::SeqCst) == 1 {
            IDLE.notify_waiters();
        }
    });
}

/// Resolves once no background task is running.
pub async fn idle() {
    loop {
        let notified = IDLE.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if PENDING.load(Ordering::SeqCst) == 0 {
            return;
        }
        notified.await;
    }
}

/// The response, held until the background work it left behind is done:
/// now for a complete reply, at the end of the body for a stream.
pub async fn settled(response: http::Response<Body>) -> http::Response<Body> {
    if !response.body().is_stream() {
        idle().await;
        return response;
    }
    let (parts, body) = response.into_parts();
    let tail = futures_util::stream::once(idle()).filter_map(|()| async { None });
    http::Response::from_parts(parts, Body::from_stream(body.chain(tail)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_response_is_held_until_spawned_settlements_finish() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&done);
        spawn(Box::pin(async move {
            let _ = rx.await;
            flag.store(true, Ordering::SeqCst);
        }));
        let held = tokio::spawn(settled(http::Response::new(Body::from("ok"))));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!held.is_finished(), "returned before the settlement ran");
        tx.send(()).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(5), held)
            .await
            .unwrap()
            .unwrap();
        assert!(done.load(Ordering::SeqCst));
        assert_eq!(response.status(), 200);
    }
}
