//! AWS Bedrock runtime mock: `POST /model/{modelId}/converse` and
//! `/converse-stream`, in the shapes of
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>
//! and `API_runtime_ConverseStream.html` (binary event stream, see
//! `tests/fixtures/bedrock/README.md`). Every request must carry a valid
//! SigV4 signature for [`BEDROCK_TEST_CREDENTIALS`] (region `us-east-1`,
//! service `bedrock`) and the session token, as AWS checks them; otherwise
//! 403 `InvalidSignatureException`.
//!
//! `POST /model/{modelId}/invoke` serves the embedding models.
//!
//! Model ids pick behaviours: `bedrock-throttled` answers 429
//! `ThrottlingException`; `bedrock-midstream-error` streams a few words then
//! a `throttlingException` event. A Titan `inputText` holding
//! [`TITAN_FAIL_MARKER`] answers 500 `InternalServerException` (that call is
//! not billed; the others of the request are). Tools offered (and no tool result last)
//! get a `toolUse` answer.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use gateway_core::aws::event_stream::encode_message;
use gateway_core::aws::sigv4::{self, AwsCredentials};
use gateway_core::config::Secret;
use serde_json::{json, Value};

use crate::mocks::{mock_vector, record_seen, OpenAiMock};

/// (access key id, secret access key, session token) the gateway is given
/// as `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
pub const BEDROCK_TEST_CREDENTIALS: (&str, &str, &str) = (
    "AKIDCONFORMANCE",
    "conformance/secret+key/EXAMPLE",
    "conformance-session-token",
);
/// In a Titan embedding text, makes that InvokeModel call fail with 500.
pub const TITAN_FAIL_MARKER: &str = "bedrock-mock-fail-500";
/// Tokens the mock bills per embedded text.
pub const TITAN_TOKENS_PER_TEXT: u64 = 4;
/// Words of the Bedrock mock's text reply.
pub const BEDROCK_WORDS: [&str; 4] = ["Hello ", "from ", "Bedrock ", "mock."];

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [
            ("content-type", "application/json"),
            (
                "x-amzn-errortype",
                &format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            ),
        ],
        json!({"message": message}).to_string(),
    )
        .into_response()
}

pub(crate) async fn bedrock_model(
    State(mock): State<OpenAiMock>,
    Path((model, action)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut signed = http::Request::new(body.clone());
    *signed.method_mut() = method;
    *signed.uri_mut() = uri;
    *signed.headers_mut() = headers.clone();
    let (key, secret, token) = BEDROCK_TEST_CREDENTIALS;
    let credentials = AwsCredentials {
        access_key_id: Secret::new(key),
        secret_access_key: Secret::new(secret),
        session_token: Some(Secret::new(token)),
    };
    if let Err(why) = sigv4::verify(&signed, &credentials, "us-east-1", "bedrock") {
        return error(StatusCode::FORBIDDEN, "InvalidSignatureException", &why);
    }
    if headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok())
        != Some(token)
    {
        return error(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        );
    }
    let Ok(request): Result<Value, _> = serde_json::from_slice(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "Malformed input request",
        );
    };
    let mut seen = request.clone();
    seen["_model"] = json!(model);
    record_seen(&mock, &headers, seen);
    if action == "invoke" {
        let (response, billed) = invoke_embedding(&model, &request);
        // The ledger of what this upstream billed, as adversarial mocks keep.
        if billed > 0 {
            if let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
                mock.bill(id, billed);
            }
        }
        return response;
    }
    if request["messages"][0]["role"] != "user" {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
        );
    }
    if model == "bedrock-throttled" {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        );
    }
    let last_is_result = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .is_some_and(|m| {
            m["content"]
                .as_array()
                .is_some_and(|blocks| blocks.iter().any(|b| b.get("toolResult").is_some()))
        });
    let tool = request["toolConfig"]["tools"][0]["toolSpec"]["name"]
        .as_str()
        .filter(|_| !last_is_result)
        .map(str::to_owned);
    let usage = json!({"inputTokens": 16, "outputTokens": 9, "totalTokens": 31, "cacheReadInputTokens": 6, "cacheWriteInputTokens": 0});
    let stop_reason = if tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    match action.as_str() {
        "converse" => {
            let mut content = vec![json!({"text": BEDROCK_WORDS.concat()})];
            if let Some(name) = &tool {
                content.push(json!({"toolUse": {"toolUseId": "tooluse_mock01", "name": name, "input": {"location": "Paris"}}}));
            }
            let body = json!({
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": stop_reason, "usage": usage, "metrics": {"latencyMs": 42},
            });
            ([("content-type", "application/json")], body.to_string()).into_response()
        }
        "converse-stream" => {
            let event = |kind: &str, payload: Value| {
                Bytes::from(encode_message(
                    &[
                        (":event-type", kind),
                        (":content-type", "application/json"),
                        (":message-type", "event"),
                    ],
                    payload.to_string().as_bytes(),
                ))
            };
            let mut frames = vec![event(
                "messageStart",
                json!({"role": "assistant", "p": "abcdefgh"}),
            )];
            for word in BEDROCK_WORDS {
                frames.push(event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": word}, "p": "abc"}),
                ));
            }
            if model == "bedrock-midstream-error" {
                frames.push(Bytes::from(encode_message(
                    &[
                        (":exception-type", "throttlingException"),
                        (":content-type", "application/json"),
                        (":message-type", "exception"),
                    ],
                    br#"{"message":"Too many tokens, please wait before trying again."}"#,
                )));
            } else {
                frames.push(event("contentBlockStop", json!({"contentBlockIndex": 0})));
                if let Some(name) = &tool {
                    frames.push(event("contentBlockStart", json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_mock01", "name": name}}})));
                    for part in ["{\"locat", "ion\": \"Par", "is\"}"] {
                        frames.push(event(
                            "contentBlockDelta",
                            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": part}}}),
                        ));
                    }
                    frames.push(event("contentBlockStop", json!({"contentBlockIndex": 1})));
                }
                frames.push(event("messageStop", json!({"stopReason": stop_reason})));
                frames.push(event(
                    "metadata",
                    json!({"usage": usage, "metrics": {"latencyMs": 42}}),
                ));
            }
            // Frames split at odd places, as TCP may deliver them.
            let bytes: Vec<u8> = frames.concat();
            let pieces: Vec<Bytes> = bytes.chunks(37).map(Bytes::copy_from_slice).collect();
            let body = stream::unfold(pieces.into_iter(), |mut pieces| async move {
                let next = pieces.next()?;
                tokio::time::sleep(Duration::from_millis(15)).await;
                Some((Ok::<_, std::io::Error>(next), pieces))
            });
            Response::builder()
                .header("content-type", "application/vnd.amazon.eventstream")
                .body(Body::from_stream(body))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "unknown operation",
        ),
    }
}

/// InvokeModel for embedding models: Titan Text Embeddings V2
/// (`{"inputText"}` → `{"embedding", "inputTextTokenCount"}`) and Cohere
/// Embed (`{"texts"}` → `{"embeddings"}`), with Bedrock's
/// `X-Amzn-Bedrock-Input-Token-Count` header; 4 tokens per text. Returns
/// the answer and the tokens billed for it (0 for a refused call).
fn invoke_embedding(model: &str, request: &Value) -> (Response, u64) {
    let cohere = model.contains("cohere.embed");
    let texts: Vec<&str> = if cohere {
        request["texts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    } else {
        request["inputText"].as_str().into_iter().collect()
    };
    if texts.is_empty() {
        let refusal = error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "Malformed input request",
        );
        return (refusal, 0);
    }
    if texts.iter().any(|text| text.contains(TITAN_FAIL_MARKER)) {
        let failure = error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            "The server encountered an internal error.",
        );
        return (failure, 0);
    }
    let billed = TITAN_TOKENS_PER_TEXT * texts.len() as u64;
    let tokens = billed.to_string();
    let body = if cohere {
        let vectors: Vec<Vec<f32>> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| mock_vector(t, i))
            .collect();
        json!({"embeddings": vectors, "id": "emb-mock", "response_type": "embeddings_floats", "texts": texts})
    } else {
        // Titan embeds one text per call: its index is unknown here.
        json!({"embedding": mock_vector(texts[0], 0), "inputTextTokenCount": TITAN_TOKENS_PER_TEXT})
    };
    let response = (
        [
            ("content-type", "application/json"),
            ("x-amzn-bedrock-input-token-count", tokens.as_str()),
        ],
        body.to_string(),
    )
        .into_response();
    (response, billed)
}
