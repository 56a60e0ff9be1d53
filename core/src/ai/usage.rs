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

    /// The OpenAI `usage` object.
    pub fn to_openai_json(&self) -> Value {
        serde_json::json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
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
            total_tokens: field("total_tokens").unwrap_or(prompt_tokens + completion_tokens),
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
    let content: u64 = messages
        .iter()
        .map(|m| {
            4 + m
                .get("content")
                .map_or(0, |c| estimate_tokens(&content_text(c)))
        })
        .sum();
    content + 3
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
}
