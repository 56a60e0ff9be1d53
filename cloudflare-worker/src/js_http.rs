//! JS `Request`/`Response` ⇄ `http` types, cheaper than `worker`'s own
//! conversions for the common case.
//!
//! `worker` turns every body into a Rust stream over a `ReadableStream`
//! reader (`wasm-streams`), which calls `releaseLock()` when the stream
//! ends; workerd builds a `TypeError` for every release (as the Streams
//! spec says), capturing a stack trace through the wasm frames: with two
//! bodies per proxied request that was about 7% of the Worker's CPU under
//! `scripts/bench --emulators` (`perf` on workerd). Here:
//! - a body with a `Content-Length` up to [`EAGER_BODY_BYTES`] (and not an
//!   event stream) is read with one `arrayBuffer()` call;
//! - any other body is read by [`ByteStream`], which lets go of a finished
//!   stream's reader without releasing it (nothing is left to unlock) and
//!   cancels an unfinished one, so memory stays bounded by the route's and
//!   the provider reader's own limits.
//!
//! Header names or values that `http` refuses (a hostile upstream's) are
//! dropped, where `worker`'s conversion panics.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::{FutureExt as _, Stream};
use gateway_core::BodyError;
use http::{HeaderMap, HeaderName, HeaderValue};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys};

/// Bodies up to this size with a `Content-Length` are read at once.
pub const EAGER_BODY_BYTES: u64 = 1024 * 1024;

/// The headers of a JS `Request` or `Response`.
pub fn header_map(headers: &web_sys::Headers) -> HeaderMap {
    let mut map = HeaderMap::new();
    let Ok(Some(entries)) = js_sys::try_iter(headers) else {
        return map;
    };
    for entry in entries.flatten() {
        let pair: js_sys::Array = entry.unchecked_into();
        let (Some(name), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// A JS body as the gateway reads it.
pub enum JsBody {
    /// Read at once.
    Full(Bytes),
    /// Read chunk by chunk.
    Stream(ByteStream),
}

/// The body of a JS request or response with these `headers`: `None` when
/// it has none; read with one `arrayBuffer()` call (`array_buffer`) when it
/// is sized, small and not a server-sent event stream (whose chunks must
/// flow as they come); else its `stream`. The error is the rejection of
/// `arrayBuffer()` (the body was cut).
pub async fn read_body(
    headers: &HeaderMap,
    stream: Option<web_sys::ReadableStream>,
    array_buffer: impl FnOnce() -> Result<js_sys::Promise, JsValue>,
) -> Result<Option<JsBody>, JsValue> {
    let Some(stream) = stream else {
        return Ok(None);
    };
    let small = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|length| length <= EAGER_BODY_BYTES);
    let event_stream = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    if !small || event_stream {
        return Ok(Some(JsBody::Stream(ByteStream::new(&stream))));
    }
    let buffer = JsFuture::from(array_buffer()?).await?;
    Ok(Some(JsBody::Full(Bytes::from(
        js_sys::Uint8Array::new(&buffer).to_vec(),
    ))))
}

/// A JS `ReadableStream` of bytes, read chunk by chunk.
pub struct ByteStream {
    reader: Option<web_sys::ReadableStreamDefaultReader>,
    pending: Option<JsFuture>,
}

impl ByteStream {
    pub fn new(stream: &web_sys::ReadableStream) -> Self {
        Self {
            reader: Some(stream.get_reader().unchecked_into()),
            pending: None,
        }
    }
}

fn field(object: &JsValue, name: &str) -> JsValue {
    js_sys::Reflect::get(object, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

impl Stream for ByteStream {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(reader) = &this.reader else {
            return Poll::Ready(None);
        };
        let pending = this
            .pending
            .get_or_insert_with(|| JsFuture::from(reader.read()));
        let result = ready!(pending.poll_unpin(cx));
        this.pending = None;
        let result = match result {
            Ok(result) => result,
            Err(error) => {
                // An errored stream has no lock worth releasing either.
                this.reader = None;
                return Poll::Ready(Some(Err(BodyError(format!("body stream: {error:?}")))));
            }
        };
        if field(&result, "done").is_truthy() {
            this.reader = None;
            return Poll::Ready(None);
        }
        let chunk = match field(&result, "value").dyn_into::<js_sys::Uint8Array>() {
            Ok(chunk) => chunk,
            Err(_) => {
                this.cancel();
                return Poll::Ready(Some(Err(BodyError(
                    "body stream: a chunk is not bytes".into(),
                ))));
            }
        };
        Poll::Ready(Some(Ok(Bytes::from(chunk.to_vec()))))
    }
}

impl ByteStream {
    /// Cancels an unfinished stream (an upstream response: the upstream
    /// is told; the rejection, if any, is nobody's concern).
    fn cancel(&mut self) {
        self.pending = None;
        if let Some(reader) = self.reader.take() {
            let _ = reader.cancel();
        }
    }
}

impl Drop for ByteStream {
    fn drop(&mut self) {
        self.cancel();
    }
}
