//! Response observers: code that sees a response body go by — chunk by
//! chunk for a stream, once for a complete body — and its end, without ever
//! holding a chunk back.
//!
//! Usage accounting and quota settlement are observers today; cache fill,
//! output guardrails and telemetry plug in the same way. Observers compose
//! statically (`(A, B)`, `Option<O>`), so attaching several costs one
//! stream wrapper, not a boxed object per observer.
//!
//! Contract:
//! - [`Observer::on_chunk`] sees every chunk the client will receive, in
//!   order, before it is yielded.
//! - Exactly one of [`Observer::on_end`] (the body ended or failed) and
//!   [`Observer::on_drop`] (the client went away first) is called.
//! - `on_end` may return a trailer (bytes sent last, e.g. an SSE error event
//!   that replaces a failure) and a task that is awaited before the client
//!   sees the end of the body (settlement, so it finishes inside a Lambda
//!   invocation).
//! - `on_drop` cannot await: an observer hands unfinished work to the
//!   platform itself (a `quota::Reservation` settles itself when dropped).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

use super::{Body, BodyError};
use crate::util::{BackgroundTask, MaybeSend};

/// How the observed body ended.
#[derive(Debug, Clone, Copy)]
pub enum BodyEnd<'a> {
    /// All of it was delivered.
    Completed,
    /// The source failed after part of it was delivered.
    Failed(&'a BodyError),
}

/// What an observer wants done at the end of the body.
#[derive(Default)]
pub struct EndAction {
    /// Sent after the last chunk. When the body failed and an observer
    /// gives a trailer, the trailer replaces the failure.
    pub trailer: Option<Bytes>,
    /// Awaited before the end of the body is signalled.
    pub task: Option<BackgroundTask>,
}

impl EndAction {
    fn join(self, other: EndAction) -> EndAction {
        let trailer = match (self.trailer, other.trailer) {
            (Some(a), Some(b)) => Some(Bytes::from([a, b].concat())),
            (a, b) => a.or(b),
        };
        let task = match (self.task, other.task) {
            (Some(a), Some(b)) => Some(Box::pin(async move {
                a.await;
                b.await;
            }) as BackgroundTask),
            (a, b) => a.or(b),
        };
        EndAction { trailer, task }
    }
}

/// Sees a response body and its end; see the module docs.
pub trait Observer: MaybeSend + Unpin + 'static {
    fn on_chunk(&mut self, _chunk: &Bytes) {}
    fn on_end(&mut self, end: BodyEnd<'_>) -> EndAction;
    fn on_drop(&mut self) {}
}

impl<A: Observer, B: Observer> Observer for (A, B) {
    fn on_chunk(&mut self, chunk: &Bytes) {
        self.0.on_chunk(chunk);
        self.1.on_chunk(chunk);
    }

    fn on_end(&mut self, end: BodyEnd<'_>) -> EndAction {
        self.0.on_end(end).join(self.1.on_end(end))
    }

    fn on_drop(&mut self) {
        self.0.on_drop();
        self.1.on_drop();
    }
}

impl<O: Observer> Observer for Option<O> {
    fn on_chunk(&mut self, chunk: &Bytes) {
        if let Some(o) = self {
            o.on_chunk(chunk);
        }
    }

    fn on_end(&mut self, end: BodyEnd<'_>) -> EndAction {
        self.as_mut()
            .map_or_else(EndAction::default, |o| o.on_end(end))
    }

    fn on_drop(&mut self) {
        if let Some(o) = self {
            o.on_drop();
        }
    }
}

/// Attaches `observer` to `body`. A complete body is observed now (its end
/// task awaited here); a stream is wrapped and observed as it is relayed.
pub async fn observe<O: Observer>(body: Body, mut observer: O) -> Body {
    if let Some(bytes) = body.as_full() {
        let bytes = Bytes::copy_from_slice(bytes);
        if !bytes.is_empty() {
            observer.on_chunk(&bytes);
        }
        let action = observer.on_end(BodyEnd::Completed);
        if let Some(task) = action.task {
            task.await;
        }
        return match action.trailer {
            Some(trailer) => Body::full([bytes, trailer].concat()),
            None => body,
        };
    }
    Body::from_stream(Observed::new(body, observer))
}

enum State {
    Relaying,
    /// The inner body ended; the trailer, then the failure (if not
    /// replaced), are sent after the task.
    Finishing {
        trailer: Option<Bytes>,
        task: Option<BackgroundTask>,
        failure: Option<BodyError>,
    },
    Done,
}

/// A stream relayed through an [`Observer`].
pub struct Observed<O: Observer> {
    inner: Body,
    observer: O,
    state: State,
}

impl<O: Observer> Observed<O> {
    /// Relays the stream `inner` through `observer` (see [`observe`], which
    /// also handles complete bodies).
    pub fn new(inner: Body, observer: O) -> Self {
        Self {
            inner,
            observer,
            state: State::Relaying,
        }
    }
}

impl<O: Observer> Stream for Observed<O> {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Finishing {
                    trailer,
                    task,
                    failure,
                } => {
                    if let Some(trailer) = trailer.take() {
                        return Poll::Ready(Some(Ok(trailer)));
                    }
                    if let Some(running) = task {
                        match running.as_mut().poll(cx) {
                            Poll::Ready(()) => *task = None,
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                    let failure = failure.take();
                    this.state = State::Done;
                    return Poll::Ready(failure.map(Err));
                }
                State::Relaying => match Pin::new(&mut this.inner).poll_next(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(chunk))) => {
                        this.observer.on_chunk(&chunk);
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                    Poll::Ready(Some(Err(error))) => {
                        let action = this.observer.on_end(BodyEnd::Failed(&error));
                        let failure = action.trailer.is_none().then_some(error);
                        this.state = State::Finishing {
                            trailer: action.trailer,
                            task: action.task,
                            failure,
                        };
                    }
                    Poll::Ready(None) => {
                        let action = this.observer.on_end(BodyEnd::Completed);
                        this.state = State::Finishing {
                            trailer: action.trailer,
                            task: action.task,
                            failure: None,
                        };
                    }
                },
            }
        }
    }
}

impl<O: Observer> Drop for Observed<O> {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Relaying => {
                // Drop the source first: nothing more will be read.
                drop(std::mem::take(&mut self.inner));
                self.observer.on_drop();
            }
            // The end was observed; unfinished end work goes on in the
            // background only if the observer arranged it (see module docs).
            State::Finishing { .. } | State::Done => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_executor::block_on;
    use futures_util::{stream, StreamExt};

    use super::*;

    /// Records what it saw into a shared log.
    struct Recorder {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
        trailer: Option<&'static str>,
    }

    impl Observer for Recorder {
        fn on_chunk(&mut self, chunk: &Bytes) {
            let text = String::from_utf8_lossy(chunk).into_owned();
            self.log
                .lock()
                .unwrap()
                .push(format!("{}:chunk:{text}", self.name));
        }

        fn on_end(&mut self, end: BodyEnd<'_>) -> EndAction {
            let what = match end {
                BodyEnd::Completed => "completed",
                BodyEnd::Failed(_) => "failed",
            };
            self.log
                .lock()
                .unwrap()
                .push(format!("{}:{what}", self.name));
            let log = Arc::clone(&self.log);
            let name = self.name;
            EndAction {
                trailer: self.trailer.map(|t| Bytes::from_static(t.as_bytes())),
                task: Some(Box::pin(async move {
                    log.lock().unwrap().push(format!("{name}:task"));
                })),
            }
        }

        fn on_drop(&mut self) {
            self.log
                .lock()
                .unwrap()
                .push(format!("{}:dropped", self.name));
        }
    }

    fn recorder(name: &'static str, log: &Arc<Mutex<Vec<String>>>) -> Recorder {
        Recorder {
            name,
            log: Arc::clone(log),
            trailer: None,
        }
    }

    fn streamed(chunks: Vec<Result<&'static str, &'static str>>) -> Body {
        Body::from_stream(stream::iter(chunks.into_iter().map(|c| {
            c.map(|s| Bytes::from_static(s.as_bytes()))
                .map_err(|e| BodyError(e.into()))
        })))
    }

    fn collect(body: Body) -> Vec<Result<String, String>> {
        block_on(
            body.map(|r| {
                r.map(|b| String::from_utf8_lossy(&b).into_owned())
                    .map_err(|e| e.0)
            })
            .collect(),
        )
    }

    #[test]
    fn composed_observers_see_every_chunk_then_finish_before_the_end() {
        let log = Arc::default();
        let observers = (recorder("a", &log), Some(recorder("b", &log)));
        let body = block_on(observe(streamed(vec![Ok("x"), Ok("y")]), observers));
        assert_eq!(collect(body), vec![Ok("x".into()), Ok("y".into())]);
        assert_eq!(
            *log.lock().unwrap(),
            [
                "a:chunk:x",
                "b:chunk:x",
                "a:chunk:y",
                "b:chunk:y",
                "a:completed",
                "b:completed",
                "a:task",
                "b:task"
            ]
        );
    }

    #[test]
    fn a_trailer_replaces_a_failure_and_without_one_the_failure_passes() {
        let log = Arc::default();
        let mut loud = recorder("a", &log);
        loud.trailer = Some("error-event");
        let body = block_on(observe(streamed(vec![Ok("x"), Err("cut")]), loud));
        assert_eq!(
            collect(body),
            vec![Ok("x".into()), Ok("error-event".into())]
        );

        let quiet = recorder("b", &log);
        let body = block_on(observe(streamed(vec![Ok("x"), Err("cut")]), quiet));
        assert_eq!(collect(body), vec![Ok("x".into()), Err("cut".into())]);
    }

    #[test]
    fn a_dropped_stream_reports_on_drop_not_on_end() {
        let log = Arc::default();
        let mut body = block_on(observe(
            streamed(vec![Ok("x"), Ok("y")]),
            recorder("a", &log),
        ));
        assert!(block_on(body.next()).is_some());
        drop(body);
        assert_eq!(*log.lock().unwrap(), ["a:chunk:x", "a:dropped"]);
    }

    #[test]
    fn a_complete_body_is_observed_at_once_and_its_task_awaited() {
        let log = Arc::default();
        let body = block_on(observe(Body::full("whole"), recorder("a", &log)));
        assert_eq!(body.as_full(), Some(&b"whole"[..]));
        assert_eq!(
            *log.lock().unwrap(),
            ["a:chunk:whole", "a:completed", "a:task"]
        );
    }
}
