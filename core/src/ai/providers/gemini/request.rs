//! OpenAI chat request → Gemini body, tool and response schemas cleaned for Gemini.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::ai::providers::{
    push_turn, refuse_unsupported, stop_sequences, tool_call_input, tool_calls_of, unsupported,
};
use crate::ai::usage::content_text;
use crate::ai::ChatRequest;
use crate::error::GatewayError;

/// Schema keywords Gemini's function declarations accept.
const SCHEMA_KEYS: [&str; 16] = [
    "type",
    "format",
    "description",
    "nullable",
    "enum",
    "properties",
    "required",
    "items",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "anyOf",
    "minLength",
    "maxLength",
    "propertyOrdering",
];

fn refuse(message: &str, param: &'static str) -> GatewayError {
    unsupported("Gemini", message, param)
}

/// A JSON schema reduced to what Gemini accepts.
pub fn clean_schema(schema: &Value) -> Value {
    let Value::Object(object) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in object {
        match key.as_str() {
            "type" => match value {
                Value::Array(types) => {
                    let non_null: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                    if non_null.len() < types.len() {
                        out.insert("nullable".into(), json!(true));
                    }
                    if let Some(first) = non_null.first() {
                        out.insert("type".into(), (*first).clone());
                    }
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            "const" => {
                out.insert("enum".into(), json!([value]));
            }
            "properties" => {
                let properties: Map<String, Value> = value
                    .as_object()
                    .map(|p| {
                        p.iter()
                            .map(|(k, v)| (k.clone(), clean_schema(v)))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert("properties".into(), Value::Object(properties));
            }
            "items" => {
                out.insert("items".into(), clean_schema(value));
            }
            "anyOf" => {
                let options: Vec<Value> = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(clean_schema)
                    .collect();
                out.insert("anyOf".into(), Value::Array(options));
            }
            key if SCHEMA_KEYS.contains(&key) => {
                out.insert(key.to_owned(), value.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

/// Empty text is dropped: Gemini refuses empty text parts, and agent
/// frameworks send `content: ""` beside an assistant's `tool_calls`.
fn parts(content: &Value) -> Result<Vec<Value>, GatewayError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(text) if text.is_empty() => Ok(Vec::new()),
        Value::String(text) => Ok(vec![json!({"text": text})]),
        Value::Array(items) => items
            .iter()
            .filter(|part| !crate::ai::providers::is_empty_text_part(part))
            .map(|part| match part.get("type").and_then(Value::as_str) {
                Some("text") => Ok(json!({"text": part.get("text").cloned().unwrap_or_default()})),
                Some("image_url") => {
                    let url = part["image_url"]["url"].as_str().unwrap_or_default();
                    Ok(
                        match url
                            .strip_prefix("data:")
                            .and_then(|r| r.split_once(";base64,"))
                        {
                            Some((mime, data)) => {
                                json!({"inlineData": {"mimeType": mime, "data": data}})
                            }
                            None => json!({"fileData": {"fileUri": url}}),
                        },
                    )
                }
                other => Err(refuse(&format!("content part type {other:?}"), "messages")),
            })
            .collect(),
        _ => Err(GatewayError::invalid_request(
            "`content` must be a string or an array of parts.",
            Some("messages"),
        )),
    }
}

/// The pure request mapping: OpenAI chat request → Gemini request body.
pub fn gemini_request(chat: &ChatRequest) -> Result<Value, GatewayError> {
    let body = &chat.body;
    refuse_unsupported(body, "Gemini")?;
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // Gemini answers tool results by function name, OpenAI by call id.
    let mut call_names: HashMap<String, String> = HashMap::new();
    for message in chat.messages() {
        match message["role"].as_str().unwrap_or_default() {
            "system" | "developer" => system.push(content_text(&message["content"])),
            "user" => push_turn(&mut contents, "parts", "user", parts(&message["content"])?),
            "assistant" => {
                let mut new_parts = parts(&message["content"])?;
                for call in tool_calls_of(message) {
                    let name = call["function"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    if let Some(id) = call["id"].as_str() {
                        call_names.insert(id.to_owned(), name.clone());
                    }
                    let args = tool_call_input(call)?;
                    new_parts.push(json!({"functionCall": {"name": name, "args": args}}));
                }
                push_turn(&mut contents, "parts", "model", new_parts);
            }
            "tool" => {
                let id = message["tool_call_id"].as_str().unwrap_or_default();
                let name = call_names.get(id).cloned().unwrap_or_else(|| id.to_owned());
                let text = content_text(&message["content"]);
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(object)) => Value::Object(object),
                    _ => json!({"content": text}),
                };
                push_turn(
                    &mut contents,
                    "parts",
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
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
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert(
            "systemInstruction".into(),
            json!({"parts": [{"text": system.join("\n\n")}]}),
        );
    }
    let mut generation = Map::new();
    if let Some(max) = chat.max_tokens {
        generation.insert("maxOutputTokens".into(), json!(max));
    }
    for (from, to) in [("temperature", "temperature"), ("top_p", "topP")] {
        if let Some(value) = body.get(from).filter(|v| !v.is_null()) {
            generation.insert(to.into(), value.clone());
        }
    }
    if let Some(stops) = stop_sequences(body) {
        generation.insert("stopSequences".into(), stops);
    }
    match body
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
    {
        Some("json_object") => {
            generation.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            generation.insert("responseMimeType".into(), json!("application/json"));
            if let Some(schema) = body["response_format"]["json_schema"].get("schema") {
                generation.insert("responseSchema".into(), clean_schema(schema));
            }
        }
        _ => {}
    }
    if !generation.is_empty() {
        out.insert("generationConfig".into(), Value::Object(generation));
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let declarations: Vec<Value> = tools
            .iter()
            .map(|tool| {
                let function = &tool["function"];
                let mut declaration = json!({"name": function["name"]});
                if let Some(description) = function.get("description") {
                    declaration["description"] = description.clone();
                }
                if let Some(parameters) = function.get("parameters") {
                    declaration["parameters"] = clean_schema(parameters);
                }
                declaration
            })
            .collect();
        out.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
    }
    if let Some(choice) = body.get("tool_choice") {
        let config = match choice {
            Value::String(s) if s == "auto" => json!({"mode": "AUTO"}),
            Value::String(s) if s == "none" => json!({"mode": "NONE"}),
            Value::String(s) if s == "required" => json!({"mode": "ANY"}),
            Value::Object(o) => {
                json!({"mode": "ANY", "allowedFunctionNames": [o.get("function").and_then(|f| f.get("name"))]})
            }
            _ => {
                return Err(GatewayError::invalid_request(
                    "Unknown `tool_choice`.",
                    Some("tool_choice"),
                ))
            }
        };
        out.insert(
            "toolConfig".into(),
            json!({"functionCallingConfig": config}),
        );
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
    fn empty_model_text_beside_function_calls_is_dropped() {
        let request = chat(json!({
            "model": "gemini",
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
            ]
        }));
        let out = gemini_request(&request).unwrap();
        let model_turn = &out["contents"][1];
        assert_eq!(model_turn["role"], "model");
        let parts = model_turn["parts"].as_array().unwrap();
        assert!(
            parts.iter().all(|p| p.get("text").is_none()),
            "empty text part sent: {model_turn}"
        );
        assert!(parts.iter().any(|p| p.get("functionCall").is_some()));
    }

    #[test]
    fn request_maps_system_roles_images_tools_results_and_json_mode() {
        let request = chat(json!({
            "model": "g", "max_tokens": 100, "top_p": 0.9, "stop": ["END"],
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_9", "content": "{\"temp\": 18}"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
                "$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": false,
                "properties": {"location": {"type": ["string", "null"], "default": "Paris"}}, "required": ["location"]}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
        }));
        let out = gemini_request(&request).unwrap();
        assert_eq!(out["systemInstruction"]["parts"][0]["text"], "Be brief.");
        assert_eq!(
            out["generationConfig"],
            json!({"maxOutputTokens": 100, "topP": 0.9, "stopSequences": ["END"], "responseMimeType": "application/json"})
        );
        let contents = out["contents"].as_array().unwrap();
        assert_eq!(
            contents[0]["parts"][1],
            json!({"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}})
        );
        assert_eq!(
            contents[1],
            json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}]})
        );
        assert_eq!(
            contents[2]["parts"][0],
            json!({"functionResponse": {"name": "get_weather", "response": {"temp": 18}}})
        );
        let parameters = &out["tools"][0]["functionDeclarations"][0]["parameters"];
        assert_eq!(
            parameters,
            &json!({"type": "object", "properties": {"location": {"type": "string", "nullable": true}}, "required": ["location"]})
        );
        assert_eq!(
            out["toolConfig"]["functionCallingConfig"],
            json!({"mode": "ANY", "allowedFunctionNames": ["get_weather"]})
        );
    }

    #[test]
    fn unsupported_meanings_are_refused() {
        let err = gemini_request(&chat(
            json!({"model": "g", "n": 3, "messages": [{"role": "user", "content": "x"}]}),
        ))
        .unwrap_err();
        assert!(matches!(
            err,
            GatewayError::InvalidRequest {
                param: Some("n"),
                ..
            }
        ));
    }
}
