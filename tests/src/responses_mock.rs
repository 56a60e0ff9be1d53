//! OpenAI's Responses API as a mock upstream (on the OpenAI mock's
//! address: `POST /v1/responses`, and Azure's `POST /openai/v1/responses`),
//! for the gateway's native pass-through (`native_responses: true`).
//!
//! Shapes: <https://platform.openai.com/docs/api-reference/responses/create>
//! (the `response` object, `usage`) and
//! <https://platform.openai.com/docs/api-reference/responses-streaming>
//! (event names and order, `sequence_number`).
//!
//! Like the real API it knows nothing of the gateway's response ids: a
//! `previous_response_id` or `store: true` is a 400 here, so a test sees
//! the gateway wrote the conversation out itself. Replies: a
//! `function_call` of `get_weather` when that tool is offered and the last
//! input item is not a tool output; else the text
//! `Responses mock heard: <last user text or tool output>`. Usage: input
//! tokens = 3 per input item + 10 (5 of them cached), output 9; billed
//! per `x-request-id`. Model `mock-cut` streams two events and stops.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::mocks::{record_seen, OpenAiMock};

fn error(status: StatusCode, message: &str, param: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": null}});
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `POST /v1/responses` (OpenAI: `Authorization: Bearer`).
pub async fn responses(state: State<OpenAiMock>, headers: HeaderMap, body: Bytes) -> Response {
    if headers.get("authorization").is_none() {
        return error(StatusCode::UNAUTHORIZED, "mock: no key", "");
    }
    respond(state, headers, body).await
}

/// `POST /openai/v1/responses` (Azure's v1 surface: `api-key`, the
/// deployment as `model`).
pub async fn azure_responses(
    state: State<OpenAiMock>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get("api-key").is_none() || headers.get("authorization").is_some() {
        return error(
            StatusCode::UNAUTHORIZED,
            "Access denied: api-key required",
            "",
        );
    }
    respond(state, headers, body).await
}

async fn respond(State(mock): State<OpenAiMock>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "mock: body is not JSON", "");
    };
    record_seen(&mock, &headers, request.clone());
    if let Some(id) = request["previous_response_id"].as_str() {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("Previous response with id '{id}' not found."),
            "previous_response_id",
        );
    }
    if request["store"] != false {
        return error(
            StatusCode::BAD_REQUEST,
            "mock: the gateway must send store: false",
            "store",
        );
    }
    let Some(items) = request["input"].as_array() else {
        return error(
            StatusCode::BAD_REQUEST,
            "mock: input must be items",
            "input",
        );
    };
    let last = items.last().cloned().unwrap_or(Value::Null);
    let offers_weather = request["tools"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["name"] == "get_weather"));
    let answered = last["type"] == "function_call_output";
    let output = if offers_weather && !answered {
        json!({"id": "fc_mock1", "type": "function_call", "status": "completed",
            "call_id": "call_mock1", "name": "get_weather", "arguments": "{\"location\":\"Paris\"}"})
    } else {
        let heard = if answered {
            last["output"].as_str().unwrap_or_default().to_owned()
        } else {
            text_of(&last["content"])
        };
        json!({"id": "msg_mock1", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": format!("Responses mock heard: {heard}"), "annotations": []}]})
    };
    let input_tokens = 3 * items.len() as u64 + 10;
    let usage = json!({"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 5},
        "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": input_tokens + 9});
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    mock.bill(request_id, input_tokens + 9);
    let response = |status: &str, output: Value, usage: Value| {
        json!({"id": "resp_upstream_mock", "object": "response", "created_at": 1_741_476_542,
            "status": status, "error": null, "incomplete_details": null, "instructions": request["instructions"],
            "model": request["model"], "output": output, "parallel_tool_calls": true,
            "previous_response_id": null, "store": false, "tools": request["tools"], "usage": usage})
    };
    if request["stream"] != true {
        let body = response("completed", json!([output]), usage);
        return ([("content-type", "application/json")], body.to_string()).into_response();
    }
    let mut events = vec![
        json!({"type": "response.created", "response": response("in_progress", json!([]), Value::Null)}),
        json!({"type": "response.in_progress", "response": response("in_progress", json!([]), Value::Null)}),
    ];
    let mut added = output.clone();
    if added["type"] == "function_call" {
        added["arguments"] = json!("");
        added["status"] = json!("in_progress");
        events
            .push(json!({"type": "response.output_item.added", "output_index": 0, "item": added}));
        for piece in ["{\"location\":", "\"Paris\"}"] {
            events.push(json!({"type": "response.function_call_arguments.delta", "item_id": "fc_mock1", "output_index": 0, "delta": piece}));
        }
        events.push(json!({"type": "response.function_call_arguments.done", "item_id": "fc_mock1", "output_index": 0, "arguments": output["arguments"]}));
    } else {
        let text = output["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        added["content"] = json!([]);
        added["status"] = json!("in_progress");
        events
            .push(json!({"type": "response.output_item.added", "output_index": 0, "item": added}));
        events.push(json!({"type": "response.content_part.added", "item_id": "msg_mock1", "output_index": 0, "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []}}));
        for word in text.split_inclusive(' ') {
            events.push(json!({"type": "response.output_text.delta", "item_id": "msg_mock1", "output_index": 0, "content_index": 0, "delta": word}));
        }
        events.push(json!({"type": "response.output_text.done", "item_id": "msg_mock1", "output_index": 0, "content_index": 0, "text": text}));
        events.push(json!({"type": "response.content_part.done", "item_id": "msg_mock1", "output_index": 0, "content_index": 0, "part": output["content"][0]}));
    }
    events.push(json!({"type": "response.output_item.done", "output_index": 0, "item": output}));
    events.push(json!({"type": "response.completed", "response": response("completed", json!([output]), usage)}));
    if request["model"] == "mock-cut" {
        events.truncate(4);
    }
    let text: String = events
        .iter_mut()
        .enumerate()
        .map(|(number, event)| {
            event["sequence_number"] = json!(number);
            format!(
                "event: {}\ndata: {event}\n\n",
                event["type"].as_str().unwrap_or_default()
            )
        })
        .collect();
    ([("content-type", "text/event-stream")], Body::from(text)).into_response()
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}
