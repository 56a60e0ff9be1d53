//! Request-body helpers shared by the operations' parsers.

use serde_json::{Map, Value};

use crate::error::GatewayError;

/// The largest `max_tokens` accepted (no model comes near it); larger
/// values are refused, so accounting never sums near `u64::MAX`.
pub const MAX_TOKENS_CAP: u64 = u32::MAX as u64;

/// The most choices (`n`) one request may ask for (OpenAI's own bound).
pub const MAX_CHOICES: u64 = 128;

/// A request body that must be a JSON object naming a `model`; errors are
/// 400s naming the parameter.
pub(crate) fn parse_object_with_model(
    bytes: &[u8],
) -> Result<(Map<String, Value>, String), GatewayError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    let Value::Object(body) = value else {
        return Err(GatewayError::invalid_request(
            "The request body must be a JSON object.",
            None,
        ));
    };
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) | None => {
            return Err(GatewayError::invalid_request(
                "You must provide a model parameter.",
                Some("model"),
            ))
        }
        Some(_) => {
            return Err(GatewayError::invalid_request(
                "`model` must be a string.",
                Some("model"),
            ))
        }
    };
    Ok((body, model))
}
