//! Converse response → OpenAI chat.completion; stop reason and usage mappings.

use serde_json::{json, Value};

use crate::ai::providers::chat_completion;
use crate::ai::usage::Usage;

pub fn bedrock_stop_reason_to_finish_reason(reason: &str) -> &'static str {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

/// Converse usage → OpenAI usage (prompt tokens include cache reads and
/// writes; cache reads are also `prompt_tokens_details.cached_tokens`).
pub fn bedrock_usage(usage: &Value) -> Usage {
    let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
    Usage::with_cache(
        n("inputTokens"),
        n("cacheReadInputTokens"),
        n("cacheWriteInputTokens"),
        n("outputTokens"),
    )
}

/// The pure response mapping: Converse response → OpenAI chat.completion.
pub fn bedrock_response_to_openai(
    response: &Value,
    public_model: &str,
    id: &str,
    created: u64,
) -> (Value, Usage) {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in response["output"]["message"]["content"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(tool) = block.get("toolUse") {
            tool_calls.push(json!({
                "id": tool["toolUseId"],
                "type": "function",
                "function": {"name": tool["name"], "arguments": tool.get("input").cloned().unwrap_or_else(|| json!({})).to_string()},
            }));
        }
    }
    let usage = bedrock_usage(&response["usage"]);
    let finish =
        bedrock_stop_reason_to_finish_reason(response["stopReason"].as_str().unwrap_or("end_turn"));
    let completion = chat_completion(id, created, public_model, text, tool_calls, finish, &usage);
    (completion, usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE_TEXT: &str =
        include_str!("../../../../../tests/fixtures/bedrock/response_text.json");
    const RESPONSE_TOOL_USE: &str =
        include_str!("../../../../../tests/fixtures/bedrock/response_tool_use.json");

    #[test]
    fn response_maps_text_and_cached_usage() {
        let response: Value = serde_json::from_str(RESPONSE_TEXT).unwrap();
        let (completion, usage) = bedrock_response_to_openai(&response, "claude", "chatcmpl-x", 5);
        assert_eq!(
            completion["choices"][0]["message"]["content"],
            "Hello! How can I help you today?"
        );
        assert_eq!(completion["choices"][0]["finish_reason"], "stop");
        assert_eq!(completion["model"], "claude");
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 1042,
                completion_tokens: 12,
                total_tokens: 1054,
                cached_tokens: 1024
            }
        );
        assert_eq!(
            completion["usage"]["prompt_tokens_details"]["cached_tokens"],
            1024
        );
    }

    #[test]
    fn response_maps_tool_use() {
        let response: Value = serde_json::from_str(RESPONSE_TOOL_USE).unwrap();
        let (completion, usage) = bedrock_response_to_openai(&response, "claude", "chatcmpl-x", 5);
        let choice = &completion["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["id"], "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
        assert_eq!(call["function"]["name"], "get_weather");
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(arguments, json!({"city": "Paris", "unit": "celsius"}));
        assert_eq!(usage, Usage::new(412, 48));
    }
}
