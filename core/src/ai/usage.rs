//! Normalised token usage and the local token estimate used when a provider
//! does not report usage.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Token usage of one completion, as OpenAI reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Prompt tokens served from the provider's cache
    /// (`prompt_tokens_details.cached_tokens`).
    #[serde(default, skip_serializing)]
    pub cached_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            cached_tokens: 0,
        }
    }

    /// Usage of a provider that counts cache reads and writes apart from
    /// the other input tokens (Anthropic, Bedrock): OpenAI's prompt tokens
    /// include both; cache reads are also the cached tokens.
    pub fn with_cache(input: u64, cache_read: u64, cache_write: u64, output: u64) -> Self {
        Self {
            cached_tokens: cache_read,
            ..Self::new(
                input.saturating_add(cache_read).saturating_add(cache_write),
                output,
            )
        }
    }

    /// Reads an OpenAI Responses `usage` object (`input_tokens` includes
    /// the cached ones); `None` when it is not one.
    pub fn from_responses(usage: &Value) -> Option<Self> {
        let input = usage.get("input_tokens")?.as_u64()?;
        let output = usage.get("output_tokens")?.as_u64()?;
        Some(Self {
            cached_tokens: usage["input_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap_or(0),
            ..Self::new(input, output)
        })
    }

    /// The OpenAI `usage` object.
    pub fn to_openai_json(&self) -> Value {
        serde_json::json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        })
    }

    /// Reads an Anthropic `usage` object (`input_tokens` without cache
    /// reads and writes, which come apart); missing fields count 0.
    pub fn from_anthropic(usage: &Value) -> Self {
        let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
        Self::with_cache(
            n("input_tokens"),
            n("cache_read_input_tokens"),
            n("cache_creation_input_tokens"),
            n("output_tokens"),
        )
    }

    /// The Anthropic `usage` object: `input_tokens` excludes the cache
    /// reads (reported apart); cache writes are not known in the OpenAI
    /// form, so they count as input.
    pub fn to_anthropic_json(&self) -> Value {
        serde_json::json!({
            "input_tokens": self.prompt_tokens.saturating_sub(self.cached_tokens),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": self.cached_tokens,
            "output_tokens": self.completion_tokens,
        })
    }

    /// Reads an OpenAI `usage` object; `None` when absent or null.
    pub fn from_openai(value: &Value) -> Option<Self> {
        let object = value.as_object()?;
        let field = |name: &str| object.get(name).and_then(Value::as_u64);
        let prompt_tokens = field("prompt_tokens")?;
        let completion_tokens = field("completion_tokens").unwrap_or(0);
        Some(Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: field("total_tokens")
                .unwrap_or(prompt_tokens.saturating_add(completion_tokens)),
            cached_tokens: object
                .get("prompt_tokens_details")
                .and_then(|d| d.get("cached_tokens"))
                .and_then(Value::as_u64)
                .unwrap_or(0),
        })
    }
}

/// Approximate token count of `text`: one token per four bytes of UTF-8,
/// rounded up, the rule of thumb OpenAI documents for English text. Used for
/// the mock provider and when a stream carries no usage; never exact.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// Approximate prompt tokens of an OpenAI `messages` array: text content plus
/// 4 tokens of framing per message and 3 for the reply priming (the counting
/// rule from OpenAI's cookbook for chat models).
pub fn estimate_prompt_tokens(messages: &[Value]) -> u64 {
    messages
        .iter()
        .map(|m| {
            4 + m
                .get("content")
                .map_or(0, |c| estimate_tokens(&content_text(c)))
        })
        .fold(3, u64::saturating_add)
}

/// Tokens charged for one image input when its size is unknown: OpenAI's
/// price of a 1024×1024 image at high detail (85 base + 4 tiles × 170).
pub const IMAGE_TOKENS: u64 = 765;

/// Approximate prompt tokens of a whole Chat Completions request: the
/// messages (text, images, assistant tool calls), the `tools` list and a
/// `response_format` schema — everything a provider bills as input. The
/// parts without text are counted from their JSON size, 4 bytes a token.
pub fn estimate_chat_prompt_tokens(body: &serde_json::Map<String, Value>) -> u64 {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut tokens = estimate_prompt_tokens(messages);
    for message in messages {
        if let Some(Value::Array(parts)) = message.get("content") {
            let images = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("image_url"))
                .count() as u64;
            tokens = tokens.saturating_add(images.saturating_mul(IMAGE_TOKENS));
        }
        if let Some(calls) = message.get("tool_calls").filter(|c| !c.is_null()) {
            tokens = tokens.saturating_add(json_tokens(calls));
        }
    }
    for key in ["tools", "response_format"] {
        if let Some(value) = body.get(key).filter(|v| !v.is_null()) {
            tokens = tokens.saturating_add(json_tokens(value));
        }
    }
    tokens
}

/// Approximate tokens of a JSON value: its serialized size, 4 bytes a token.
fn json_tokens(value: &Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0.div_ceil(4)
}

/// The text of an OpenAI message `content`: a string, or the `text` parts of
/// a multi-part array joined with newlines.
pub fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_openai_usage_with_cached_tokens() {
        let usage = Usage::from_openai(&json!({
            "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4}
        }))
        .unwrap();
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 10,
                completion_tokens: 5,
                total_tokens: 15,
                cached_tokens: 4
            }
        );
        assert_eq!(Usage::from_openai(&Value::Null), None);
    }

    #[test]
    fn estimates_grow_with_text() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        let messages =
            vec![json!({"role": "user", "content": [{"type": "text", "text": "abcdefgh"}]})];
        assert_eq!(estimate_prompt_tokens(&messages), 4 + 2 + 3);
    }

    #[test]
    fn the_chat_estimate_counts_tools_schemas_images_and_tool_calls() {
        let body = |extra: Value| {
            let mut body = json!({"messages": [{"role": "user", "content": "abcd"}]});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            body.as_object().unwrap().clone()
        };
        let plain = estimate_chat_prompt_tokens(&body(json!({})));
        assert_eq!(plain, 4 + 1 + 3);
        let description = "x".repeat(4000);
        let tools =
            json!([{"type": "function", "function": {"name": "f", "description": description}}]);
        let with_tools = estimate_chat_prompt_tokens(&body(json!({"tools": tools})));
        assert!(with_tools >= plain + 1000, "{with_tools}");
        let schema = json!({"type": "json_schema", "json_schema": {"name": "s", "schema": {"description": description}}});
        let with_schema = estimate_chat_prompt_tokens(&body(json!({"response_format": schema})));
        assert!(with_schema >= plain + 1000, "{with_schema}");
        let image = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "abcd"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
        ]}]});
        assert_eq!(
            estimate_chat_prompt_tokens(image.as_object().unwrap()),
            plain + IMAGE_TOKENS
        );
        let calls = json!({"messages": [
            {"role": "user", "content": "abcd"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c", "type": "function",
                "function": {"name": "f", "arguments": description}}]}
        ]});
        assert!(estimate_chat_prompt_tokens(calls.as_object().unwrap()) >= plain + 1000);
    }
}
