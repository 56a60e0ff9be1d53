//! Server-sent events: an incremental decoder for observing streams, and the
//! stream wrapper that relays an upstream SSE body chunk by chunk while it
//! reads usage out of it.
//!
//! The wrapper never holds a chunk back: each upstream chunk is yielded as
//! soon as it arrives, and parsing only looks at a copy of the bytes.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use serde_json::Value;

use super::usage::Usage;
use crate::body::observe::BodyEnd;
use crate::body::{Body, BodyError};
use crate::error::{ErrorShape, GatewayError};

/// An upstream SSE event larger than this ends the stream with an error:
/// the decoder does not buffer it, and the stream is not relayed past it.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;
/// The limit of the decoder that observes the gateway's own output: an
/// event re-encoded by a translator may be a little larger than the
/// upstream event it came from.
const MAX_OBSERVED_EVENT_BYTES: usize = MAX_EVENT_BYTES + 256 * 1024;

/// Splits a byte stream into SSE event payloads (the joined `data:` lines).
/// An event over its limit stops it: no later event is reported, and
/// [`SseDecoder::overflowed`] says so.
#[derive(Debug)]
pub struct SseDecoder {
    line: Vec<u8>,
    data: String,
    limit: usize,
    overflowed: bool,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::with_limit(MAX_EVENT_BYTES)
    }
}

impl SseDecoder {
    /// A decoder that stops at an event over `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            line: Vec::new(),
            data: String::new(),
            limit,
            overflowed: false,
        }
    }

    /// True once an event went over the limit (nothing more is decoded).
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Feeds `chunk`; calls `on_event` with each complete event's data.
    pub fn push(&mut self, chunk: &[u8], mut on_event: impl FnMut(&str)) {
        if self.overflowed {
            return;
        }
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..pos]);
            rest = &rest[pos + 1..];
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            if self.line.is_empty() {
                if !self.data.is_empty() {
                    on_event(&self.data);
                    self.data.clear();
                }
            } else if let Some(value) = self.line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
            }
            self.line.clear();
            if self.data.len() > self.limit {
                self.overflow();
                return;
            }
        }
        self.line.extend_from_slice(rest);
        if self.line.len() + self.data.len() > self.limit {
            self.overflow();
        }
    }

    fn overflow(&mut self) {
        self.overflowed = true;
        self.line = Vec::new();
        self.data = String::new();
    }
}

/// Rewrites an SSE stream event by event: the provider translators
/// (Anthropic, Gemini) and the OpenAI usage folding implement this and run
/// inside one [`SseRewrite`] stream.
pub trait EventRewriter: Unpin {
    /// True when the payloads are whole SSE frames (`event:` line and
    /// all), written as they are; else each is a `data:` payload.
    fn framed(&self) -> bool {
        false
    }

    /// The output `data:` payloads for one input event's data.
    fn on_event(&mut self, data: &str, out: &mut Vec<String>);

    /// The payloads to send after the input ended cleanly.
    fn on_end(&mut self, _out: &mut Vec<String>) {}

    /// True once no further input matters (the rest is not read).
    fn is_done(&self) -> bool {
        false
    }
}

/// Splits an upstream body into events for an [`EventRewriter`]: SSE by
/// default, the AWS event stream for Bedrock.
pub trait EventSource: Default + Unpin {
    /// Feeds `chunk`; calls `on_event` with each complete event's text. An
    /// error means the rest of the stream cannot be trusted.
    fn push(&mut self, chunk: &[u8], on_event: &mut dyn FnMut(&str)) -> Result<(), String>;
}

impl EventSource for SseDecoder {
    /// An event over the limit is an error: the events before it are
    /// relayed, then the stream ends with an error event.
    fn push(&mut self, chunk: &[u8], on_event: &mut dyn FnMut(&str)) -> Result<(), String> {
        SseDecoder::push(self, chunk, on_event);
        if self.overflowed {
            return Err(format!("an SSE event is larger than {} bytes", self.limit));
        }
        Ok(())
    }
}

/// An upstream body re-encoded as SSE by an [`EventRewriter`], relayed as
/// soon as each input chunk yields output. An input failure is passed on
/// after the output before it (the observing layer turns it into an error
/// event).
pub struct SseRewrite<R, S = SseDecoder> {
    upstream: Body,
    source: S,
    rewriter: R,
    pending: std::collections::VecDeque<Bytes>,
    failure: Option<BodyError>,
    ended: bool,
}

impl<R: EventRewriter> SseRewrite<R> {
    /// Rewrites an SSE body.
    pub fn new(upstream: Body, rewriter: R) -> Self {
        Self::with_source(upstream, rewriter)
    }
}

impl<R: EventRewriter, S: EventSource> SseRewrite<R, S> {
    /// Rewrites a body split into events by `S`.
    pub fn with_source(upstream: Body, rewriter: R) -> Self {
        Self {
            upstream,
            source: S::default(),
            rewriter,
            pending: std::collections::VecDeque::new(),
            failure: None,
            ended: false,
        }
    }

    fn queue(&mut self, payloads: Vec<String>) {
        let framed = self.rewriter.framed();
        self.pending.extend(payloads.into_iter().map(|p| {
            if framed {
                Bytes::from(p)
            } else {
                Bytes::from(format!("data: {p}\n\n"))
            }
        }));
    }
}

impl<R: EventRewriter, S: EventSource> Stream for SseRewrite<R, S> {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(bytes) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(bytes)));
            }
            if let Some(failure) = this.failure.take() {
                return Poll::Ready(Some(Err(failure)));
            }
            if this.ended || this.rewriter.is_done() {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.upstream).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    let mut payloads = Vec::new();
                    let rewriter = &mut this.rewriter;
                    let result = this
                        .source
                        .push(&chunk, &mut |data| rewriter.on_event(data, &mut payloads));
                    this.queue(payloads);
                    if let Err(error) = result {
                        this.ended = true;
                        this.failure = Some(BodyError(error));
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    let mut payloads = Vec::new();
                    this.rewriter.on_end(&mut payloads);
                    this.queue(payloads);
                }
            }
        }
    }
}

/// How an observed stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOutcome {
    /// The upstream finished (with `[DONE]`).
    Completed,
    /// The client went away before the end; the rest was never read.
    ClientDisconnected,
    /// The upstream failed or ended early; the client got an SSE error event.
    UpstreamFailed,
}

/// The event format of a relayed stream, for reading its usage: the
/// canonical OpenAI chunks, or a provider's own (a native pass-through).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StreamWire {
    /// `chat.completion.chunk`s, `usage` on a chunk, `[DONE]` last.
    #[default]
    OpenAi,
    /// OpenAI Responses events: usage in the terminal event's `response`
    /// (`response.completed` / `.incomplete`; `.failed` ends it failed).
    Responses,
    /// Anthropic Messages events: input usage in `message_start`, output
    /// (and cumulative input) in `message_delta`, `message_stop` last.
    Anthropic,
}

/// What was learned from a finished stream, for accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    pub outcome: StreamOutcome,
    /// Usage as the provider reported it, if it did.
    pub reported_usage: Option<Usage>,
    /// Completion tokens estimated from the streamed text (see
    /// [`estimate_tokens`]), for when no usage was reported.
    pub estimated_completion_tokens: u64,
    /// The prompt side of the usage, when the provider reported it before
    /// the stream ended without its full usage (Anthropic's
    /// `message_start`).
    pub reported_prompt: Option<Usage>,
    pub bytes: u64,
}

/// Reads an OpenAI-format SSE body as it passes (the usage, the streamed
/// text, whether `[DONE]` or an error event arrived) and decides how the
/// stream ends: **correct or loudly failed** — a stream cut by the upstream,
/// ended without `[DONE]` or holding an event too large to read gets a
/// final OpenAI error event.
#[derive(Debug)]
pub struct SseUsage {
    wire: StreamWire,
    decoder: SseDecoder,
    usage: Option<Usage>,
    /// Anthropic wire: the usage fields seen so far (`message_start`'s,
    /// updated by `message_delta`'s).
    anthropic_usage: serde_json::Map<String, Value>,
    completion_text_bytes: u64,
    saw_done: bool,
    /// An OpenAI-shaped error event went by (a translated provider error):
    /// the stream already ends explicitly.
    saw_error: bool,
    bytes: u64,
}

impl Default for SseUsage {
    fn default() -> Self {
        Self::new(StreamWire::OpenAi)
    }
}

impl SseUsage {
    /// An observer of a stream in `wire`'s format.
    pub fn new(wire: StreamWire) -> Self {
        Self {
            wire,
            anthropic_usage: serde_json::Map::new(),
            decoder: SseDecoder::with_limit(MAX_OBSERVED_EVENT_BYTES),
            usage: None,
            completion_text_bytes: 0,
            saw_done: false,
            saw_error: false,
            bytes: 0,
        }
    }

    /// Reads one chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        if self.wire != StreamWire::OpenAi {
            let mut events = Vec::new();
            self.decoder
                .push(chunk, |data| events.push(data.to_owned()));
            for data in events {
                if self.wire == StreamWire::Anthropic {
                    self.on_anthropic_event(&data);
                } else {
                    self.on_responses_event(&data);
                }
            }
            return;
        }
        let (usage, text, done, failed) = (
            &mut self.usage,
            &mut self.completion_text_bytes,
            &mut self.saw_done,
            &mut self.saw_error,
        );
        self.decoder.push(chunk, |data| {
            if data == "[DONE]" {
                *done = true;
                return;
            }
            let Ok(event) = serde_json::from_str::<Value>(data) else {
                return;
            };
            if event.get("error").is_some_and(Value::is_object) {
                *failed = true;
            }
            if let Some(reported) = event.get("usage").and_then(Usage::from_openai) {
                *usage = Some(reported);
            }
            if let Some(choices) = event.get("choices").and_then(Value::as_array) {
                for choice in choices {
                    // A legacy completion's chunk carries `text`.
                    if let Some(text_part) = choice.get("text").and_then(Value::as_str) {
                        *text += text_part.len() as u64;
                    }
                    let delta = &choice["delta"];
                    if let Some(content) = delta.get("content").and_then(Value::as_str) {
                        *text += content.len() as u64;
                    }
                    if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                        for call in calls {
                            if let Some(args) =
                                call["function"].get("arguments").and_then(Value::as_str)
                            {
                                *text += args.len() as u64;
                            }
                        }
                    }
                }
            }
        });
    }

    /// One Anthropic stream event (<https://docs.anthropic.com/en/api/messages-streaming>).
    fn on_anthropic_event(&mut self, data: &str) {
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            return;
        };
        let merge = |fields: &mut serde_json::Map<String, Value>, usage: &Value| {
            if let Some(usage) = usage.as_object() {
                for (key, value) in usage {
                    if value.is_u64() {
                        fields.insert(key.clone(), value.clone());
                    }
                }
            }
        };
        match event["type"].as_str().unwrap_or_default() {
            "message_start" => merge(&mut self.anthropic_usage, &event["message"]["usage"]),
            "message_delta" => {
                merge(&mut self.anthropic_usage, &event["usage"]);
                self.usage = Some(Usage::from_anthropic(&Value::Object(
                    self.anthropic_usage.clone(),
                )));
            }
            "message_stop" => self.saw_done = true,
            "error" => self.saw_error = true,
            "content_block_delta" => {
                let delta = &event["delta"];
                for key in ["text", "partial_json", "thinking"] {
                    if let Some(text) = delta[key].as_str() {
                        self.completion_text_bytes += text.len() as u64;
                    }
                }
            }
            _ => {}
        }
    }

    /// One Responses stream event (<https://platform.openai.com/docs/api-reference/responses-streaming>).
    fn on_responses_event(&mut self, data: &str) {
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            return;
        };
        let kind = event["type"].as_str().unwrap_or_default();
        match kind {
            "response.completed" | "response.incomplete" | "response.failed" => {
                if let Some(usage) = Usage::from_responses(&event["response"]["usage"]) {
                    self.usage = Some(usage);
                }
                if kind == "response.failed" {
                    self.saw_error = true;
                } else {
                    self.saw_done = true;
                }
            }
            "error" => self.saw_error = true,
            _ if kind.ends_with(".delta") => {
                if let Some(delta) = event["delta"].as_str() {
                    self.completion_text_bytes += delta.len() as u64;
                }
            }
            _ => {}
        }
    }

    fn error_event(&self, error: &GatewayError) -> Bytes {
        match self.wire {
            // The Responses renderer outside the observer turns an OpenAI
            // error event into `response.failed`.
            StreamWire::OpenAi | StreamWire::Responses => error_event(error),
            StreamWire::Anthropic => {
                let json = error.to_json(ErrorShape::Anthropic, "");
                Bytes::from(format!("event: error\ndata: {json}\n\n"))
            }
        }
    }

    /// How a stream that ended this way is accounted, and the error event
    /// to send last when it did not end correctly.
    pub fn end(&self, end: BodyEnd<'_>) -> (StreamOutcome, Option<Bytes>) {
        match end {
            BodyEnd::Failed(err) => {
                tracing::warn!(error = %err, "upstream stream failed mid-way");
                let error = GatewayError::UpstreamInvalid {
                    detail: err.to_string(),
                };
                (
                    StreamOutcome::UpstreamFailed,
                    Some(self.error_event(&error)),
                )
            }
            // What followed an unreadable event was not seen: the stream
            // cannot be vouched for (nor its usage read).
            BodyEnd::Completed if self.decoder.overflowed() => {
                tracing::warn!("a streamed event was too large to observe");
                let error = GatewayError::UpstreamInvalid {
                    detail: "an SSE event too large to observe".into(),
                };
                (
                    StreamOutcome::UpstreamFailed,
                    Some(self.error_event(&error)),
                )
            }
            BodyEnd::Completed if self.saw_done => (StreamOutcome::Completed, None),
            BodyEnd::Completed if self.saw_error => (StreamOutcome::UpstreamFailed, None),
            BodyEnd::Completed => {
                tracing::warn!("upstream stream ended without [DONE]");
                let error = GatewayError::UpstreamInvalid {
                    detail: "stream ended without its last event".into(),
                };
                (
                    StreamOutcome::UpstreamFailed,
                    Some(self.error_event(&error)),
                )
            }
        }
    }

    /// What was learned, for accounting.
    pub fn summary(&self, outcome: StreamOutcome) -> StreamSummary {
        StreamSummary {
            outcome,
            reported_usage: self.usage,
            estimated_completion_tokens: self.completion_text_bytes.div_ceil(4),
            reported_prompt: (!self.anthropic_usage.is_empty()).then(|| {
                let usage = Usage::from_anthropic(&Value::Object(self.anthropic_usage.clone()));
                Usage {
                    completion_tokens: 0,
                    total_tokens: usage.prompt_tokens,
                    ..usage
                }
            }),
            bytes: self.bytes,
        }
    }
}

/// The SSE event sent when a stream fails after its first byte, so clients
/// see an error instead of a silently truncated answer.
pub fn error_event(error: &GatewayError) -> Bytes {
    let json = error.to_json(ErrorShape::OpenAi, "");
    Bytes::from(format!("data: {json}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::observe::{EndAction, Observed, Observer};
    use futures_executor::block_on;
    use futures_util::{stream, StreamExt};
    use std::sync::{Arc, Mutex};

    #[test]
    fn decoder_handles_split_lines_and_crlf() {
        let mut decoder = SseDecoder::default();
        let mut events = Vec::new();
        decoder.push(b"data: {\"a\"", |e| events.push(e.to_owned()));
        decoder.push(b":1}\r\n\r\nevent: x\ndata: [DO", |e| {
            events.push(e.to_owned())
        });
        decoder.push(b"NE]\n\n", |e| events.push(e.to_owned()));
        assert_eq!(events, vec!["{\"a\":1}", "[DONE]"]);
    }

    /// Relays a body through an [`SseUsage`] the way the AI accounting
    /// observer does, reporting the summary once.
    struct ObservedSse {
        sse: SseUsage,
        slot: Arc<Mutex<Option<StreamSummary>>>,
    }

    impl Observer for ObservedSse {
        fn on_chunk(&mut self, chunk: &Bytes) {
            self.sse.push(chunk);
        }
        fn on_end(&mut self, end: BodyEnd<'_>) -> EndAction {
            let (outcome, trailer) = self.sse.end(end);
            *self.slot.lock().unwrap() = Some(self.sse.summary(outcome));
            EndAction {
                trailer,
                task: None,
            }
        }
        fn on_drop(&mut self) {
            *self.slot.lock().unwrap() = Some(self.sse.summary(StreamOutcome::ClientDisconnected));
        }
    }

    impl ObservedSse {
        fn new(inner: Body, slot: Arc<Mutex<Option<StreamSummary>>>) -> Observed<ObservedSse> {
            let sse = SseUsage::default();
            Observed::new(inner, ObservedSse { sse, slot })
        }
    }

    type Slot = Arc<Mutex<Option<StreamSummary>>>;

    fn summary_slot() -> (Slot, Slot) {
        let slot = Arc::new(Mutex::new(None));
        (slot.clone(), slot)
    }

    fn body(chunks: Vec<Result<&'static str, &'static str>>) -> Body {
        Body::from_stream(stream::iter(chunks.into_iter().map(|c| {
            c.map(|s| Bytes::from_static(s.as_bytes()))
                .map_err(|e| BodyError(e.into()))
        })))
    }

    #[test]
    fn usage_is_read_and_reported_once_at_the_end() {
        let (slot, on_finish) = summary_slot();
        let inner = body(vec![
            Ok("data: {\"choices\":[{\"delta\":{\"content\":\"Hello world!\"}}]}\n\n"),
            Ok("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\ndata: [DONE]\n\n"),
        ]);
        let chunks: Vec<_> = block_on(ObservedSse::new(inner, on_finish).collect::<Vec<_>>());
        assert_eq!(chunks.len(), 2);
        let summary = slot.lock().unwrap().clone().unwrap();
        assert_eq!(summary.outcome, StreamOutcome::Completed);
        assert_eq!(summary.reported_usage, Some(Usage::new(3, 2)));
        assert_eq!(summary.estimated_completion_tokens, 3);
    }

    #[test]
    fn failure_mid_stream_becomes_an_error_event() {
        let (slot, on_finish) = summary_slot();
        let inner = body(vec![
            Ok("data: {\"choices\":[]}\n\n"),
            Err("connection reset"),
        ]);
        let chunks: Vec<_> = block_on(ObservedSse::new(inner, on_finish).collect::<Vec<_>>());
        let last = String::from_utf8(chunks.last().unwrap().as_ref().unwrap().to_vec()).unwrap();
        assert!(last.starts_with("data: {\"error\""), "{last}");
        assert!(
            !last.contains("connection reset"),
            "internal detail leaked: {last}"
        );
        assert_eq!(
            slot.lock().unwrap().as_ref().unwrap().outcome,
            StreamOutcome::UpstreamFailed
        );
    }

    #[test]
    fn early_end_without_done_is_an_error_event() {
        let (slot, on_finish) = summary_slot();
        let inner = body(vec![Ok("data: {\"choices\":[]}\n\n")]);
        let chunks: Vec<_> = block_on(ObservedSse::new(inner, on_finish).collect::<Vec<_>>());
        assert_eq!(chunks.len(), 2);
        assert_eq!(
            slot.lock().unwrap().as_ref().unwrap().outcome,
            StreamOutcome::UpstreamFailed
        );
    }

    #[test]
    fn dropping_mid_stream_reports_client_disconnect() {
        let (slot, on_finish) = summary_slot();
        let inner = body(vec![
            Ok("data: {\"choices\":[{\"delta\":{\"content\":\"abcdefgh\"}}]}\n\n"),
            Ok("data: [DONE]\n\n"),
        ]);
        let mut observed = ObservedSse::new(inner, on_finish);
        let first = block_on(observed.next());
        assert!(first.is_some());
        drop(observed);
        let summary = slot.lock().unwrap().clone().unwrap();
        assert_eq!(summary.outcome, StreamOutcome::ClientDisconnected);
        assert_eq!(summary.estimated_completion_tokens, 2);
    }

    #[test]
    fn an_event_over_the_limit_stops_the_decoder() {
        let mut decoder = SseDecoder::with_limit(16);
        let mut events = Vec::new();
        decoder.push(b"data: small\n\ndata: 0123456789", |e| {
            events.push(e.to_owned())
        });
        assert!(!decoder.overflowed());
        decoder.push(b"0123456789\n\ndata: after\n\n", |e| {
            events.push(e.to_owned())
        });
        assert!(decoder.overflowed());
        assert_eq!(events, vec!["small"], "nothing after the large event");
        // As an event source, the overflow is an error.
        let mut source = SseDecoder::with_limit(16);
        let result = EventSource::push(&mut source, b"data: 01234567890123456789", &mut |_| {});
        assert!(result.is_err());
    }

    /// Relays every event and ends with `[DONE]`, as the translators do.
    struct Relay;

    impl EventRewriter for Relay {
        fn on_event(&mut self, data: &str, out: &mut Vec<String>) {
            out.push(data.to_owned());
        }
        fn on_end(&mut self, out: &mut Vec<String>) {
            out.push("[DONE]".into());
        }
    }

    #[test]
    fn an_upstream_event_over_the_limit_ends_the_stream_with_an_error_event() {
        let huge = format!(
            "data: {{\"x\":\"{}\"}}\n\n",
            "a".repeat(MAX_EVENT_BYTES + 1)
        );
        let huge: &'static str = Box::leak(huge.into_boxed_str());
        let upstream = body(vec![
            Ok("data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n"),
            Ok(huge),
            Ok("data: {\"choices\":[{\"delta\":{\"content\":\" there\"}}]}\n\n"),
        ]);
        let rewritten = Body::from_stream(SseRewrite::new(upstream, Relay));
        let (slot, on_finish) = summary_slot();
        let chunks: Vec<_> = block_on(ObservedSse::new(rewritten, on_finish).collect::<Vec<_>>());
        let text: String = chunks
            .iter()
            .map(|c| String::from_utf8_lossy(c.as_ref().unwrap()).into_owned())
            .collect();
        assert!(text.contains("Hi"), "{text}");
        assert!(
            !text.contains("there"),
            "nothing is relayed past the large event"
        );
        assert!(
            !text.contains("[DONE]"),
            "not a silent, complete-looking end: {text}"
        );
        let last = text.trim_end().rsplit("\n\n").next().unwrap();
        assert!(last.starts_with("data: {\"error\""), "{last}");
        let summary = slot.lock().unwrap().clone().unwrap();
        assert_eq!(summary.outcome, StreamOutcome::UpstreamFailed);
    }

    #[test]
    fn an_observed_event_over_the_limit_is_an_upstream_failure() {
        let huge = format!(
            "data: {{\"x\":\"{}\"}}\n\ndata: [DONE]\n\n",
            "a".repeat(MAX_OBSERVED_EVENT_BYTES + 1)
        );
        let mut sse = SseUsage::default();
        sse.push(huge.as_bytes());
        let (outcome, trailer) = sse.end(BodyEnd::Completed);
        assert_eq!(outcome, StreamOutcome::UpstreamFailed);
        assert!(trailer.is_some_and(|t| t.starts_with(b"data: {\"error\"")));
    }
}
