//! Gemini `streamGenerateContent` responses translated into OpenAI chunks.

use serde_json::{json, Value};

use super::response::{candidate_parts, finish_of, gemini_usage};
use crate::ai::providers::ChunkWriter;
use crate::ai::sse::EventRewriter;
use crate::ai::usage::Usage;

/// Gemini stream responses → OpenAI chunk payloads.
pub struct GeminiStreamTranslator {
    writer: ChunkWriter,
    started: bool,
    calls: usize,
    /// The last `usageMetadata` seen (Gemini repeats it, growing).
    usage: Option<Usage>,
    finish: Option<&'static str>,
}

impl GeminiStreamTranslator {
    pub fn new(public_model: &str, created: u64, include_usage: bool) -> Self {
        Self {
            writer: ChunkWriter::new(
                "chatcmpl-gemini".into(),
                public_model,
                created,
                include_usage,
            ),
            started: false,
            calls: 0,
            usage: None,
            finish: None,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        self.writer.chunk(delta, finish)
    }

    /// OpenAI payloads for one Gemini stream response.
    pub fn on_response(&mut self, response: &Value) -> Vec<String> {
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
        if let Some(metadata) = response.get("usageMetadata") {
            self.usage = Some(gemini_usage(metadata));
        }
        let (text, calls) = candidate_parts(response, self.calls);
        if !text.is_empty() {
            out.push(self.chunk(json!({"content": text}), None));
        }
        if !calls.is_empty() {
            self.calls += calls.len();
            out.push(self.chunk(json!({"tool_calls": calls}), None));
        }
        if let Some(finish) = finish_of(response, self.calls > 0) {
            self.finish = Some(finish);
        }
        out
    }

    /// Final chunks once the upstream stream ended: finish, usage (none if
    /// Gemini sent no `usageMetadata`: the gateway then estimates), `[DONE]`.
    pub fn finish(&mut self) -> Vec<String> {
        self.writer
            .finish(self.finish.unwrap_or("stop"), self.usage.as_ref())
    }

    /// Whether a finish reason arrived (a stream that ends without one was cut).
    pub fn has_finished(&self) -> bool {
        self.finish.is_some()
    }
}

impl EventRewriter for GeminiStreamTranslator {
    fn on_event(&mut self, data: &str, out: &mut Vec<String>) {
        if let Ok(response) = serde_json::from_str::<Value>(data) {
            out.extend(self.on_response(&response));
        }
    }

    /// A stream without a finish reason was cut: no `[DONE]`, so the client
    /// gets the gateway's error event instead.
    fn on_end(&mut self, out: &mut Vec<String>) {
        if self.has_finished() {
            out.extend(self.finish());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::sse::SseDecoder;

    const STREAM_TEXT: &str = include_str!("../../../../../tests/fixtures/gemini/stream_text.sse");

    #[test]
    fn stream_translates_text_finish_and_usage() {
        let mut translator = GeminiStreamTranslator::new("gemini", 1, true);
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        decoder.push(STREAM_TEXT.as_bytes(), |data| {
            out.extend(translator.on_response(&serde_json::from_str(data).unwrap()))
        });
        out.extend(translator.finish());
        assert_eq!(out.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<Value> = out[..out.len() - 1]
            .iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect();
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "The weather in Paris is mild.");
        assert_eq!(
            chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );
        assert_eq!(chunks[chunks.len() - 1]["usage"]["total_tokens"], 17);
    }
}
