//! ConverseStream: the binary event stream as JSON events, translated into OpenAI chunks.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::response::{bedrock_stop_reason_to_finish_reason, bedrock_usage};
use crate::ai::providers::{stream_error_event, ChunkWriter};
use crate::ai::sse::{EventRewriter, EventSource};
use crate::ai::usage::Usage;
use crate::aws::event_stream::EventStreamDecoder;

/// ConverseStream's binary event stream as JSON events in the union form
/// of the API reference: `{"<eventType>": payload}` for events and
/// `{"exception": {"type": ..., "message": ...}}` for exceptions.
#[derive(Debug, Default)]
pub struct ConverseEvents {
    decoder: EventStreamDecoder,
}

impl EventSource for ConverseEvents {
    fn push(&mut self, chunk: &[u8], on_event: &mut dyn FnMut(&str)) -> Result<(), String> {
        self.decoder
            .push(chunk, |message| {
                let payload = String::from_utf8_lossy(&message.payload);
                let payload = if payload.trim().is_empty() {
                    "{}".into()
                } else {
                    payload
                };
                match message.header(":message-type") {
                    Some("event") | None => {
                        let kind = message.header(":event-type").unwrap_or("unknown");
                        on_event(&format!("{{{}:{payload}}}", Value::from(kind)));
                    }
                    Some(_) => {
                        let kind = message
                            .header(":exception-type")
                            .or_else(|| message.header(":error-code"))
                            .unwrap_or("error");
                        let text = serde_json::from_str::<Value>(&payload)
                            .ok()
                            .and_then(|p| p["message"].as_str().map(str::to_owned))
                            .or_else(|| message.header(":error-message").map(str::to_owned))
                            .unwrap_or_default();
                        on_event(
                            &json!({"exception": {"type": kind, "message": text}}).to_string(),
                        );
                    }
                }
            })
            .map_err(|e| e.to_string())
    }
}

/// Translates ConverseStream events into OpenAI chunk payloads.
pub struct BedrockStreamTranslator {
    writer: ChunkWriter,
    usage: Option<Usage>,
    finish: Option<&'static str>,
    /// Converse content block index → OpenAI tool call index.
    tools: HashMap<u64, usize>,
    failed: bool,
}

impl BedrockStreamTranslator {
    pub fn new(id: &str, public_model: &str, created: u64, include_usage: bool) -> Self {
        Self {
            writer: ChunkWriter::new(id.to_owned(), public_model, created, include_usage),
            usage: None,
            finish: None,
            tools: HashMap::new(),
            failed: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        self.writer.chunk(delta, finish)
    }

    /// The OpenAI payloads for one event (in the union form).
    pub fn on_event(&mut self, event: &Value) -> Vec<String> {
        let Some((kind, payload)) = event.as_object().and_then(|o| o.iter().next()) else {
            return Vec::new();
        };
        match kind.as_str() {
            "messageStart" => vec![self.chunk(json!({"role": "assistant", "content": ""}), None)],
            "contentBlockStart" => {
                let Some(tool) = payload["start"].get("toolUse") else {
                    return Vec::new();
                };
                let index = self.tools.len();
                self.tools
                    .insert(payload["contentBlockIndex"].as_u64().unwrap_or(0), index);
                let call = json!({"index": index, "id": tool["toolUseId"], "type": "function", "function": {"name": tool["name"], "arguments": ""}});
                vec![self.chunk(json!({"tool_calls": [call]}), None)]
            }
            "contentBlockDelta" => {
                let delta = &payload["delta"];
                if let Some(text) = delta.get("text").and_then(Value::as_str) {
                    return vec![self.chunk(json!({"content": text}), None)];
                }
                let Some(partial) = delta["toolUse"]["input"].as_str() else {
                    return Vec::new();
                };
                let block = payload["contentBlockIndex"].as_u64().unwrap_or(0);
                match self.tools.get(&block) {
                    Some(&index) if !partial.is_empty() => vec![self.chunk(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": partial}}]}),
                        None,
                    )],
                    _ => Vec::new(),
                }
            }
            "messageStop" => {
                self.finish = Some(bedrock_stop_reason_to_finish_reason(
                    payload["stopReason"].as_str().unwrap_or("end_turn"),
                ));
                Vec::new()
            }
            "metadata" => {
                if let Some(usage) = payload.get("usage") {
                    self.usage = Some(bedrock_usage(usage));
                }
                Vec::new()
            }
            "exception" => {
                self.failed = true;
                let kind = payload["type"].as_str().unwrap_or("error");
                let message = payload["message"].as_str().unwrap_or("upstream error");
                vec![stream_error_event(kind, message)]
            }
            _ => Vec::new(),
        }
    }

    /// Final chunks once the stream ended: finish reason, usage (none
    /// without a `metadata` event: the gateway then estimates), `[DONE]`.
    fn finish_events(&self) -> Vec<String> {
        self.writer
            .finish(self.finish.unwrap_or("stop"), self.usage.as_ref())
    }
}

impl EventRewriter for BedrockStreamTranslator {
    fn on_event(&mut self, data: &str, out: &mut Vec<String>) {
        if let Ok(event) = serde_json::from_str::<Value>(data) {
            out.extend(BedrockStreamTranslator::on_event(self, &event));
        }
    }

    /// Without `messageStop` the stream was cut: no `[DONE]`, so the client
    /// gets the gateway's error event instead.
    fn on_end(&mut self, out: &mut Vec<String>) {
        if self.finish.is_some() && !self.failed {
            out.extend(self.finish_events());
        }
    }

    fn is_done(&self) -> bool {
        self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::sse::SseRewrite;
    use crate::aws::event_stream::encode_message;
    use crate::body::{Body, BodyError};
    use bytes::Bytes;
    use futures_executor::block_on;
    use futures_util::StreamExt;

    const STREAM_TOOL_USE: &str =
        include_str!("../../../../../tests/fixtures/bedrock/stream_tool_use.events.json");
    const STREAM_TEXT: &[u8] =
        include_bytes!("../../../../../tests/fixtures/bedrock/stream_text.eventstream");
    const STREAM_EXCEPTION: &[u8] =
        include_bytes!("../../../../../tests/fixtures/bedrock/stream_exception.eventstream");

    /// Runs `bytes`, split into `chunk`-byte pieces, through the stream
    /// translation; returns the SSE payloads and the stream's failure.
    fn translate(bytes: &[u8], chunk: usize, include_usage: bool) -> (Vec<String>, Option<String>) {
        let pieces: Vec<Result<Bytes, BodyError>> = bytes
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let upstream = Body::from_stream(futures_util::stream::iter(pieces));
        let mut stream = SseRewrite::<_, ConverseEvents>::with_source(
            upstream,
            BedrockStreamTranslator::new("chatcmpl-b", "claude", 1, include_usage),
        );
        let mut payloads = Vec::new();
        let mut failure = None;
        block_on(async {
            while let Some(item) = stream.next().await {
                match item {
                    Ok(bytes) => {
                        let text = String::from_utf8(bytes.to_vec()).unwrap();
                        payloads.push(text.strip_prefix("data: ").unwrap().trim_end().to_owned());
                    }
                    Err(e) => failure = Some(e.0),
                }
            }
        });
        (payloads, failure)
    }

    fn parse(payloads: &[String]) -> Vec<Value> {
        payloads
            .iter()
            .filter(|p| *p != "[DONE]")
            .map(|p| serde_json::from_str(p).unwrap())
            .collect()
    }

    fn text_of(chunks: &[Value]) -> String {
        chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect()
    }

    #[test]
    fn stream_of_text_is_translated_whatever_the_chunking() {
        for chunk in [1, 7, 64, STREAM_TEXT.len()] {
            let (payloads, failure) = translate(STREAM_TEXT, chunk, false);
            assert_eq!(failure, None);
            assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
            let chunks = parse(&payloads);
            assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
            assert_eq!(text_of(&chunks), "Hello world", "chunk size {chunk}");
            let last = chunks.last().unwrap();
            assert_eq!(last["choices"][0]["finish_reason"], "stop");
            assert_eq!(last["usage"]["prompt_tokens"], 12);
            assert_eq!(last["usage"]["completion_tokens"], 2);
        }
    }

    #[test]
    fn stream_of_tool_use_reassembles_arguments_and_reports_usage_last() {
        let events: Vec<Value> = serde_json::from_str(STREAM_TOOL_USE).unwrap();
        let mut bytes = Vec::new();
        for event in &events {
            bytes.extend(encode_message(
                &[
                    (":event-type", event["event"].as_str().unwrap()),
                    (":content-type", "application/json"),
                    (":message-type", "event"),
                ],
                event["payload"].to_string().as_bytes(),
            ));
        }
        let (payloads, failure) = translate(&bytes, 50, true);
        assert_eq!(failure, None);
        let chunks = parse(&payloads);
        assert_eq!(text_of(&chunks), "Let me check the weather.");
        let calls: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
            .collect();
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        assert_eq!(calls[0]["index"], 0);
        assert!(calls[0]["id"].as_str().unwrap().starts_with("tooluse_"));
        let arguments: String = calls
            .iter()
            .filter_map(|c| c["function"]["arguments"].as_str())
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&arguments).unwrap(),
            json!({"city": "Paris"})
        );
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        let usage = &chunks[chunks.len() - 1];
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["prompt_tokens"], 512);
        assert_eq!(
            usage["usage"]["prompt_tokens_details"]["cached_tokens"],
            100
        );
    }

    #[test]
    fn a_stream_without_metadata_reports_no_usage_so_the_gateway_estimates() {
        let mut bytes = Vec::new();
        for (kind, payload) in [
            ("messageStart", json!({"role": "assistant"})),
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
            ),
            ("messageStop", json!({"stopReason": "end_turn"})),
        ] {
            bytes.extend(encode_message(
                &[(":event-type", kind), (":message-type", "event")],
                payload.to_string().as_bytes(),
            ));
        }
        for include_usage in [false, true] {
            let (payloads, failure) = translate(&bytes, 64, include_usage);
            assert_eq!(failure, None);
            assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
            assert!(
                parse(&payloads).iter().all(|c| c.get("usage").is_none()),
                "no made-up zero usage: {payloads:?}"
            );
        }
    }

    #[test]
    fn exception_mid_stream_ends_with_an_openai_error_event() {
        let (payloads, failure) = translate(STREAM_EXCEPTION, 13, false);
        assert_eq!(failure, None);
        let chunks = parse(&payloads);
        assert_eq!(text_of(&chunks), "Partial");
        let error = chunks.last().unwrap();
        assert_eq!(error["error"]["code"], "throttlingException");
        assert!(error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Too many tokens"));
        assert!(!payloads.iter().any(|p| p == "[DONE]"));
    }

    #[test]
    fn corrupted_or_cut_streams_fail_explicitly() {
        let mut corrupted = STREAM_TEXT.to_vec();
        let at = corrupted.len() / 2;
        corrupted[at] ^= 0x40;
        let (_, failure) = translate(&corrupted, 64, false);
        assert!(failure.unwrap().contains("checksum"));
        // Cut before messageStop: no [DONE], the observing layer reports it.
        let (payloads, failure) = translate(&STREAM_TEXT[..STREAM_TEXT.len() / 2], 64, false);
        assert_eq!(failure, None);
        assert!(!payloads.iter().any(|p| p == "[DONE]"));
    }

    #[test]
    fn a_frame_over_the_event_stream_limit_fails_the_stream() {
        // A prelude announcing a 17 MiB message (the limit is 16 MiB):
        // refused when read, not buffered.
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(17u32 * 1024 * 1024).to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        let (_, failure) = translate(&bytes, 64, false);
        assert!(failure.is_some(), "an explicit failure, not a silent end");
    }
}
