//! Conversation state of the Responses dialect: each kept response is one
//! record in the gateway's key-value store (see *Conversation state* in
//! the module docs).

use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::request::{messages_from_items, valid_response_id};
use crate::ai::request::{ChatRequest, NativeRequest, ResponseStore};
use crate::auth::api_key::sha256;
use crate::body::Body;
use crate::error::GatewayError;
use crate::platform::{Clock, Platform, TimedKv};
use crate::util::hex;

/// One kept response.
#[derive(Serialize, Deserialize)]
struct Record {
    /// The conversation up to and including this response's output, as
    /// Responses items: what a continuation starts from.
    items: Vec<Value>,
    /// The `response` object, as `GET` returns it.
    response: Value,
}

/// The store key of response `id` of `owner` (the consumer id; empty
/// when the route has no authentication): the owner is part of the key,
/// hashed to keep keys short and free of the consumer id's characters.
fn key(owner: &str, id: &str) -> String {
    let owner = hex(&sha256(owner.as_bytes()));
    format!("response:{}:{id}", &owner[..32])
}

fn store_error(error: impl std::fmt::Display) -> GatewayError {
    GatewayError::StoreUnavailable {
        detail: format!("response store: {error}"),
    }
}

fn not_found(id: &str) -> GatewayError {
    GatewayError::NotFound(format!("Response with id '{id}' not found."))
}

/// Gives a parsed Responses chat its id and store slot, and continues the
/// conversation named by `previous_response_id` (the stored items become
/// the canonical messages after the instructions). Errors: 400 when the
/// previous response is not found (missing, expired, deleted or another
/// consumer's), 503 when the store fails.
pub async fn prepare<P: Platform>(
    chat: &mut ChatRequest,
    platform: &P,
    store_timeout: Duration,
    owner: &str,
    retention: Duration,
) -> Result<(), GatewayError> {
    let Some(native) = chat.native.as_mut() else {
        return Ok(());
    };
    let NativeRequest::OpenAiResponses(request) = Arc::make_mut(native) else {
        return Ok(());
    };
    let mut random = [0u8; 16];
    platform.fill_random(&mut random);
    request.id = format!("resp_{}", hex(&random));
    request.created_at = platform.clock().now_unix_ms() / 1000;
    let keep = request.body.get("store").and_then(Value::as_bool) != Some(false);
    request.store = (keep && !retention.is_zero()).then(|| ResponseStore {
        owner: owner.to_owned(),
        retention,
    });
    let Some(previous) = request
        .body
        .get("previous_response_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Ok(());
    };
    let missing = || {
        GatewayError::invalid_request(
            format!("Previous response with id '{previous}' not found."),
            Some("previous_response_id"),
        )
    };
    let stored = TimedKv::new(platform, store_timeout)
        .get(&key(owner, &previous))
        .await
        .map_err(store_error)?
        .ok_or_else(missing)?;
    let record: Record = serde_json::from_slice(&stored).map_err(|_| missing())?;
    let mut history = Vec::new();
    messages_from_items(&record.items, &mut history)?;
    request.history = record.items;
    // After the instructions (a leading system message), before this turn.
    let has_instructions = request
        .body
        .get("instructions")
        .and_then(Value::as_str)
        .is_some_and(|i| !i.is_empty());
    if let Some(Value::Array(messages)) = chat.body.get_mut("messages") {
        let at = usize::from(has_instructions).min(messages.len());
        messages.splice(at..at, history);
    }
    Ok(())
}

/// Keeps a finished `response` of `chat`'s Responses request, if it is to
/// be kept; false when the store failed (logged).
pub async fn save<P: Platform>(
    platform: &P,
    store_timeout: Duration,
    request: &crate::ai::request::ResponsesRequest,
    response: Value,
) -> bool {
    let Some(store) = &request.store else {
        return true;
    };
    let output = response["output"].as_array().cloned().unwrap_or_default();
    let items = request
        .history
        .iter()
        .chain(&request.input)
        .cloned()
        .chain(output)
        .collect();
    let record = Record { items, response };
    let Ok(bytes) = serde_json::to_vec(&record) else {
        return false;
    };
    let result = TimedKv::new(platform, store_timeout)
        .put(
            &key(&store.owner, &request.id),
            bytes.into(),
            Some(store.retention),
        )
        .await;
    match result {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(response_id = %request.id, %error, "the response could not be stored");
            false
        }
    }
}

/// `GET` or `DELETE {prefix}/responses/{id}` for `owner`.
pub async fn serve_stored<P: Platform>(
    platform: &P,
    store_timeout: Duration,
    owner: &str,
    id: &str,
    delete: bool,
) -> Result<Response<Body>, GatewayError> {
    if !valid_response_id(id) {
        return Err(not_found(id));
    }
    let kv = TimedKv::new(platform, store_timeout);
    let key = key(owner, id);
    let stored = kv.get(&key).await.map_err(store_error)?;
    let Some(stored) = stored else {
        return Err(not_found(id));
    };
    let body = if delete {
        kv.delete(&key).await.map_err(store_error)?;
        json!({"id": id, "object": "response", "deleted": true})
    } else {
        let record: Record = serde_json::from_slice(&stored).map_err(|_| not_found(id))?;
        record.response
    };
    let mut response = Response::new(Body::from(body.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
