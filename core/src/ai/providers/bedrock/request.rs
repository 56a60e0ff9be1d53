//! OpenAI chat request → Converse body (system, turns, content blocks, inference, tools).

use serde_json::{json, Map, Value};

use super::refuse;
use crate::ai::providers::{
    push_turn, refuse_unsupported, stop_sequences, tool_call_input, tool_calls_of,
};
use crate::ai::usage::content_text;
use crate::ai::ChatRequest;
use crate::error::GatewayError;

/// OpenAI content → Converse content blocks (empty text is left out:
/// Converse refuses blank text blocks).
fn content_blocks(content: &Value) -> Result<Vec<Value>, GatewayError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(text) if text.is_empty() => Ok(Vec::new()),
        Value::String(text) => Ok(vec![json!({"text": text})]),
        Value::Array(parts) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = part["text"].as_str().unwrap_or_default();
                        if !text.is_empty() {
                            blocks.push(json!({"text": text}));
                        }
                    }
                    Some("image_url") => {
                        blocks.push(image_block(
                            part["image_url"]["url"].as_str().unwrap_or_default(),
                        )?);
                    }
                    other => {
                        return Err(refuse(&format!("content part type {other:?}"), "messages"))
                    }
                }
            }
            Ok(blocks)
        }
        _ => Err(GatewayError::invalid_request(
            "`content` must be a string or an array of parts.",
            Some("messages"),
        )),
    }
}

/// A `data:image/<format>;base64,` URL → a Converse image block.
fn image_block(url: &str) -> Result<Value, GatewayError> {
    let Some((media_type, data)) = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
    else {
        return Err(refuse("image URLs other than base64 data URLs", "messages"));
    };
    let format = match media_type {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => return Err(refuse(&format!("image type `{media_type}`"), "messages")),
    };
    Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
}

/// The pure request mapping: OpenAI chat request → Converse body.
pub fn bedrock_request(chat: &ChatRequest) -> Result<Value, GatewayError> {
    let body = &chat.body;
    refuse_unsupported(body, "Bedrock")?;
    if let Some(format) = body
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
    {
        if format != "text" {
            return Err(refuse(
                &format!("`response_format` `{format}`"),
                "response_format",
            ));
        }
    }
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for message in chat.messages() {
        match message["role"].as_str().unwrap_or_default() {
            "system" | "developer" => {
                let text = content_text(&message["content"]);
                if !text.is_empty() {
                    system.push(json!({"text": text}));
                }
            }
            "user" => push_turn(
                &mut messages,
                "content",
                "user",
                content_blocks(&message["content"])?,
            ),
            "assistant" => {
                let mut blocks = content_blocks(&message["content"])?;
                for call in tool_calls_of(message) {
                    let input = tool_call_input(call)?;
                    blocks.push(json!({"toolUse": {
                        "toolUseId": call["id"],
                        "name": call["function"]["name"],
                        "input": input,
                    }}));
                }
                push_turn(&mut messages, "content", "assistant", blocks);
            }
            "tool" => {
                let block = json!({"toolResult": {
                    "toolUseId": message["tool_call_id"],
                    "content": [{"text": content_text(&message["content"])}],
                }});
                push_turn(&mut messages, "content", "user", vec![block]);
            }
            other => {
                return Err(GatewayError::invalid_request(
                    format!("Unknown message role `{other}`."),
                    Some("messages"),
                ))
            }
        }
    }

    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let mut inference = Map::new();
    if let Some(max) = chat.max_tokens {
        inference.insert("maxTokens".into(), json!(max));
    }
    for (from, to) in [("temperature", "temperature"), ("top_p", "topP")] {
        if let Some(value) = body.get(from).filter(|v| !v.is_null()) {
            inference.insert(to.into(), value.clone());
        }
    }
    if let Some(stops) = stop_sequences(body) {
        inference.insert("stopSequences".into(), stops);
    }
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inference));
    }
    let choice = match body.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "auto" => Some(json!({"auto": {}})),
        Some(Value::String(s)) if s == "none" => Some(Value::Null),
        Some(Value::String(s)) if s == "required" => Some(json!({"any": {}})),
        Some(Value::Object(o)) => {
            Some(json!({"tool": {"name": o.get("function").and_then(|f| f.get("name"))}}))
        }
        Some(_) => {
            return Err(GatewayError::invalid_request(
                "Unknown `tool_choice`.",
                Some("tool_choice"),
            ))
        }
    };
    let tools = body.get("tools").and_then(Value::as_array);
    // Converse has no "none": tools are left out, unless the conversation
    // already holds tool calls or results, which Converse only accepts
    // with a `toolConfig` (sent then without a `toolChoice`).
    let history_has_tools = chat
        .messages()
        .iter()
        .any(|m| m["role"] == "tool" || m.get("tool_calls").is_some_and(|c| !c.is_null()));
    let send_tools = choice != Some(Value::Null) || history_has_tools;
    if let (Some(tools), true) = (tools, send_tools) {
        let specs: Vec<Value> = tools
            .iter()
            .map(|tool| {
                let function = &tool["function"];
                let mut spec = json!({
                    "name": function["name"],
                    "inputSchema": {"json": function.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"}))},
                });
                if let Some(description) = function.get("description") {
                    spec["description"] = description.clone();
                }
                json!({"toolSpec": spec})
            })
            .collect();
        let mut config = json!({"tools": specs});
        if let Some(choice) = choice.filter(|c| !c.is_null()) {
            config["toolChoice"] = choice;
        }
        out.insert("toolConfig".into(), config);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> ChatRequest {
        ChatRequest::parse(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn request_maps_system_turns_images_tools_and_results() {
        let request = chat(json!({
            "model": "claude", "max_tokens": 200, "temperature": 0.2, "top_p": 0.9, "stop": "END",
            "user": "u-1", "seed": 7, "stream_options": {"include_usage": true},
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "tooluse_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "tooluse_1", "content": "18C"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required"
        }));
        let out = bedrock_request(&request).unwrap();
        assert_eq!(out["system"], json!([{"text": "Be brief."}]));
        assert_eq!(
            out["inferenceConfig"],
            json!({"maxTokens": 200, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]})
        );
        let messages = out["messages"].as_array().unwrap();
        assert_eq!(
            messages.len(),
            5,
            "consecutive user turns merge: {messages:?}"
        );
        assert_eq!(
            messages[0]["content"],
            json!([{"text": "Hi"}, {"text": "Look"}, {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}])
        );
        assert_eq!(
            messages[1],
            json!({"role": "assistant", "content": [{"text": "Hello."}]})
        );
        assert_eq!(
            messages[3],
            json!({"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}}]})
        );
        assert_eq!(
            messages[4],
            json!({"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18C"}]}}]})
        );
        assert_eq!(
            out["toolConfig"],
            json!({"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather by city", "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}], "toolChoice": {"any": {}}})
        );
        for dropped in ["user", "seed", "stream_options", "model"] {
            assert!(out.get(dropped).is_none(), "{dropped} is delivery-only");
        }
    }

    #[test]
    fn tool_choice_none_sends_no_tools_and_a_named_tool_is_forced() {
        let base = json!({"model": "c", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}]});
        let mut none = base.clone();
        none["tool_choice"] = json!("none");
        assert!(bedrock_request(&chat(none))
            .unwrap()
            .get("toolConfig")
            .is_none());
        // With tool calls in the history Converse requires the tools.
        let mut after_results = base.clone();
        after_results["tool_choice"] = json!("none");
        after_results["messages"] = json!([
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "done"}
        ]);
        let config = bedrock_request(&chat(after_results)).unwrap()["toolConfig"].clone();
        assert_eq!(config["tools"][0]["toolSpec"]["name"], "f");
        assert!(config.get("toolChoice").is_none());
        let mut named = base;
        named["tool_choice"] = json!({"type": "function", "function": {"name": "f"}});
        assert_eq!(
            bedrock_request(&chat(named)).unwrap()["toolConfig"]["toolChoice"],
            json!({"tool": {"name": "f"}})
        );
    }

    #[test]
    fn unsupported_meanings_are_refused() {
        for (extra, param) in [
            (json!({"n": 2}), "n"),
            (json!({"logprobs": true}), "logprobs"),
            (json!({"presence_penalty": 0.5}), "presence_penalty"),
            (
                json!({"response_format": {"type": "json_object"}}),
                "response_format",
            ),
        ] {
            let mut body = json!({"model": "c", "messages": [{"role": "user", "content": "x"}]});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let err = bedrock_request(&chat(body)).unwrap_err();
            assert!(
                matches!(err, GatewayError::InvalidRequest { param: Some(p), .. } if p == param),
                "{param}: {err:?}"
            );
        }
        let remote_image = chat(
            json!({"model": "c", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
        );
        assert!(bedrock_request(&remote_image).is_err());
    }
}
