//! Gemini response → OpenAI chat.completion; finish reason, usage and candidate parts.

use serde_json::{json, Value};

use crate::ai::providers::chat_completion;
use crate::ai::usage::Usage;

pub fn gemini_finish_reason_to_finish_reason(reason: &str) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ => "stop",
    }
}

pub fn gemini_usage(metadata: &Value) -> Usage {
    let n = |k: &str| metadata.get(k).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        cached_tokens: n("cachedContentTokenCount"),
        ..Usage::new(
            n("promptTokenCount"),
            n("candidatesTokenCount").saturating_add(n("thoughtsTokenCount")),
        )
    }
}

/// Text and function calls of the first candidate; call ids are made up
/// (`call_<n>`) since Gemini has none.
pub(super) fn candidate_parts(response: &Value, first_call_index: usize) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in response["candidates"][0]["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(t) = part.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(call) = part.get("functionCall") {
            let index = first_call_index + calls.len();
            calls.push(json!({
                "index": index,
                "id": format!("call_{index}"),
                "type": "function",
                "function": {"name": call["name"], "arguments": call.get("args").cloned().unwrap_or_else(|| json!({})).to_string()},
            }));
        }
    }
    (text, calls)
}

pub(super) fn finish_of(response: &Value, has_calls: bool) -> Option<&'static str> {
    if response["promptFeedback"]["blockReason"].is_string() {
        return Some("content_filter");
    }
    let reason = response["candidates"][0]["finishReason"].as_str()?;
    Some(if has_calls && reason == "STOP" {
        "tool_calls"
    } else {
        gemini_finish_reason_to_finish_reason(reason)
    })
}

/// The pure response mapping: Gemini response → OpenAI chat.completion.
pub fn gemini_response_to_openai(
    response: &Value,
    public_model: &str,
    created: u64,
) -> (Value, Usage) {
    let (text, calls) = candidate_parts(response, 0);
    let usage = gemini_usage(&response["usageMetadata"]);
    let finish = finish_of(response, !calls.is_empty()).unwrap_or("stop");
    // A complete message's tool calls carry no stream `index`.
    let calls: Vec<Value> = calls
        .into_iter()
        .map(|mut c| {
            if let Some(o) = c.as_object_mut() {
                o.remove("index");
            }
            c
        })
        .collect();
    let id = format!(
        "chatcmpl-{}",
        response["responseId"].as_str().unwrap_or("gemini")
    );
    let completion = chat_completion(&id, created, public_model, text, calls, finish, &usage);
    (completion, usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE_FUNCTION_CALL: &str =
        include_str!("../../../../../tests/fixtures/gemini/response_function_call.json");
    const RESPONSE_BLOCKED: &str =
        include_str!("../../../../../tests/fixtures/gemini/response_blocked.json");

    #[test]
    fn response_maps_function_calls_and_cached_usage() {
        let response: Value = serde_json::from_str(RESPONSE_FUNCTION_CALL).unwrap();
        let (completion, usage) = gemini_response_to_openai(&response, "gemini", 1);
        let choice = &completion["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Checking the weather.");
        assert_eq!(
            choice["message"]["tool_calls"][0]["function"]["name"],
            "get_weather"
        );
        assert_eq!(choice["message"]["tool_calls"][0]["id"], "call_0");
        assert!(choice["message"]["tool_calls"][0].get("index").is_none());
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 120,
                completion_tokens: 15,
                total_tokens: 135,
                cached_tokens: 40
            }
        );
    }

    #[test]
    fn blocked_prompts_finish_with_content_filter() {
        let response: Value = serde_json::from_str(RESPONSE_BLOCKED).unwrap();
        let (completion, _) = gemini_response_to_openai(&response, "gemini", 1);
        assert_eq!(completion["choices"][0]["finish_reason"], "content_filter");
    }
}
