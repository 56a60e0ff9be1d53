//! Requests on an `ai` route: the OpenAI operations the gateway serves,
//! parsed and checked before anything is reserved or sent upstream.

use serde_json::{Map, Value};

use super::embeddings::EmbeddingsRequest;
use super::json::parse_object_with_model;
use super::passthrough::PassthroughRequest;
use super::usage::estimate_chat_prompt_tokens;
use crate::error::GatewayError;

// Shared with the passed-through endpoints' parser (`ai::passthrough`).
pub use super::json::{MAX_CHOICES, MAX_TOKENS_CAP};

/// The JSON type a known Chat Completions parameter must have.
#[derive(Clone, Copy)]
enum Kind {
    Number,
    Integer,
    Bool,
    String,
    Object,
    /// A string or an array of strings (`stop`).
    StringOrStrings,
    /// A string or an object (`tool_choice`).
    StringOrObject,
}

/// Parameters the gateway reads or translates, with their types (OpenAI's
/// API reference, Chat Completions request body). `null` means unset.
const PARAMETER_KINDS: [(&str, Kind); 17] = [
    ("temperature", Kind::Number),
    ("top_p", Kind::Number),
    ("presence_penalty", Kind::Number),
    ("frequency_penalty", Kind::Number),
    ("n", Kind::Integer),
    ("seed", Kind::Integer),
    ("top_logprobs", Kind::Integer),
    ("logprobs", Kind::Bool),
    ("parallel_tool_calls", Kind::Bool),
    ("store", Kind::Bool),
    ("user", Kind::String),
    ("response_format", Kind::Object),
    ("stream_options", Kind::Object),
    ("metadata", Kind::Object),
    ("logit_bias", Kind::Object),
    ("stop", Kind::StringOrStrings),
    ("tool_choice", Kind::StringOrObject),
];

/// Refuses a known parameter of the wrong type, and malformed `tools`,
/// before anything is reserved or sent (a vendor would refuse them later,
/// or a translator would silently drop them).
fn check_parameter_types(body: &Map<String, Value>) -> Result<(), GatewayError> {
    for (name, kind) in PARAMETER_KINDS {
        let Some(value) = body.get(name).filter(|v| !v.is_null()) else {
            continue;
        };
        let ok = match kind {
            Kind::Number => value.is_number(),
            Kind::Integer => value.is_i64() || value.is_u64(),
            Kind::Bool => value.is_boolean(),
            Kind::String => value.is_string(),
            Kind::Object => value.is_object(),
            Kind::StringOrStrings => {
                value.is_string()
                    || value
                        .as_array()
                        .is_some_and(|items| items.iter().all(Value::is_string))
            }
            Kind::StringOrObject => value.is_string() || value.is_object(),
        };
        if !ok {
            let expected = match kind {
                Kind::Number => "a number",
                Kind::Integer => "an integer",
                Kind::Bool => "a boolean",
                Kind::String => "a string",
                Kind::Object => "an object",
                Kind::StringOrStrings => "a string or an array of strings",
                Kind::StringOrObject => "a string or an object",
            };
            return Err(GatewayError::invalid_request(
                format!("`{name}` must be {expected}."),
                Some(name),
            ));
        }
    }
    match body.get("tools") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(tools)) => {
            for tool in tools {
                let kind = tool.get("type").and_then(Value::as_str);
                let named = tool
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty());
                if kind.is_none() || (kind == Some("function") && !named) {
                    return Err(GatewayError::invalid_request(
                        "Every tool must be an object with a `type`; a `function` tool needs `function.name`.",
                        Some("tools"),
                    ));
                }
            }
            Ok(())
        }
        Some(_) => Err(GatewayError::invalid_request(
            "`tools` must be an array.",
            Some("tools"),
        )),
    }
}

/// What a request on an `ai` route asks for, once parsed (see
/// [`super::parse_request`] for the paths).
pub enum AiRequest {
    /// A call to the model: chat (in any inbound dialect) or embeddings.
    Call(OwnedOperation),
    /// `GET {prefix}/models`.
    ListModels,
    /// `POST {prefix}/messages/count_tokens`: the prompt's input tokens
    /// (no completion, nothing reserved).
    CountTokens(ChatRequest),
    /// `GET` or `DELETE {prefix}/responses/{id}`: a stored response of the
    /// OpenAI Responses dialect (no model, nothing reserved).
    StoredResponse { id: String, delete: bool },
}

/// A request kept in the dialect it came in, for a provider that speaks
/// that dialect itself: passed through natively, without a double
/// translation. The canonical [`ChatRequest`] beside it is what other
/// providers, the estimate and the reservation read.
#[derive(Debug, Clone)]
pub enum NativeRequest {
    /// An Anthropic Messages request as the client sent it.
    AnthropicMessages(MessagesRequest),
    /// An OpenAI Responses body and what the gateway needs to answer in
    /// that dialect and keep the conversation.
    OpenAiResponses(ResponsesRequest),
}

/// An Anthropic Messages body as the client sent it, with its
/// `anthropic-version` and `anthropic-beta` headers.
#[derive(Debug, Clone)]
pub struct MessagesRequest {
    pub body: Map<String, Value>,
    pub version: Option<String>,
    pub beta: Option<String>,
}

/// A Responses request beside its canonical chat
/// (`ai::dialects::responses` fills it; its module docs hold the rule).
#[derive(Debug, Clone, Default)]
pub struct ResponsesRequest {
    /// The body as the client sent it (echoed in the response object).
    pub body: Map<String, Value>,
    /// The id the reply gets (`resp_…`), chosen before the call.
    pub id: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The conversation this request continues (`previous_response_id`)
    /// and this turn's `input`, as Responses items: with the reply's
    /// output, what the stored response continues with.
    pub history: Vec<Value>,
    pub input: Vec<Value>,
    /// Names of the client's `custom` tools: sent to translated providers
    /// as function tools, their calls come back as `custom_tool_call`.
    pub custom_tools: Vec<String>,
    /// Where the reply is stored for `previous_response_id` and `GET`
    /// (`None`: `store: false`).
    pub store: Option<ResponseStore>,
}

/// The store slot of one response: the consumer that owns it and how long
/// it is kept.
#[derive(Debug, Clone)]
pub struct ResponseStore {
    pub owner: String,
    pub retention: std::time::Duration,
}

/// The parts of an OpenAI chat completion request the gateway reads; the
/// full object is kept in `body` and passed through to OpenAI-compatible
/// providers unchanged but for `model`.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub body: Map<String, Value>,
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// The completion limit per choice: the client's
    /// `max_completion_tokens`, else its `max_tokens`, else the cap the
    /// gateway set ([`ChatRequest::cap_completion`]).
    pub max_tokens: Option<u64>,
    /// True when `max_tokens` is the gateway's cap, not in `body`: the
    /// OpenAI-compatible providers write it into the upstream request.
    pub gateway_capped: bool,
    /// Choices asked for (`n`, default 1).
    pub choices: u64,
    /// The request in its inbound dialect when that is not Chat
    /// Completions (`None` for Chat Completions clients).
    pub native: Option<std::sync::Arc<NativeRequest>>,
}

impl ChatRequest {
    /// The `messages` array (checked by [`ChatRequest::parse`]: non-empty,
    /// each with a string `role`); read in place, never copied.
    pub fn messages(&self) -> &[Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// Parses and checks the fields the gateway relies on; errors are 400s
    /// naming the offending parameter.
    pub fn parse(bytes: &[u8]) -> Result<Self, GatewayError> {
        let (body, model) = parse_object_with_model(bytes)?;
        Self::from_object(body, model)
    }

    /// [`ChatRequest::parse`] of a body already parsed (`model` read from
    /// it): what the inbound dialects' translators build.
    pub fn from_object(body: Map<String, Value>, model: String) -> Result<Self, GatewayError> {
        let messages = match body.get("messages") {
            Some(Value::Array(messages)) if !messages.is_empty() => messages,
            Some(Value::Array(_)) => {
                return Err(GatewayError::invalid_request(
                    "`messages` must contain at least one message.",
                    Some("messages"),
                ))
            }
            Some(_) => {
                return Err(GatewayError::invalid_request(
                    "`messages` must be an array.",
                    Some("messages"),
                ))
            }
            None => {
                return Err(GatewayError::invalid_request(
                    "Missing required parameter: 'messages'.",
                    Some("messages"),
                ))
            }
        };
        for message in messages {
            if !message.get("role").is_some_and(Value::is_string) {
                return Err(GatewayError::invalid_request(
                    "Every message must be an object with a string `role`.",
                    Some("messages"),
                ));
            }
        }
        check_parameter_types(&body)?;
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(GatewayError::invalid_request(
                    "`stream` must be a boolean.",
                    Some("stream"),
                ))
            }
        };
        let include_usage = body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let max_tokens = match body
            .get("max_completion_tokens")
            .or_else(|| body.get("max_tokens"))
        {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 && n <= MAX_TOKENS_CAP => Some(n),
                Some(n) if n > 0 => {
                    return Err(GatewayError::invalid_request(
                        format!("`max_tokens` is too large: {n} (at most {MAX_TOKENS_CAP})."),
                        Some("max_tokens"),
                    ))
                }
                _ => {
                    return Err(GatewayError::invalid_request(
                        "`max_tokens` must be a positive integer.",
                        Some("max_tokens"),
                    ))
                }
            },
        };
        let choices = match body.get("n").and_then(Value::as_u64) {
            None if body.get("n").is_none_or(Value::is_null) => 1,
            Some(n @ 1..=MAX_CHOICES) => n,
            _ => {
                return Err(GatewayError::invalid_request(
                    format!("`n` must be between 1 and {MAX_CHOICES}."),
                    Some("n"),
                ))
            }
        };
        Ok(Self {
            body,
            model,
            stream,
            include_usage,
            max_tokens,
            gateway_capped: false,
            choices,
            native: None,
        })
    }

    /// Limits the completion to `cap` tokens per choice unless a smaller
    /// limit is already set, so the upstream call can never use more than
    /// what was reserved. The client's own spellings are removed: the
    /// provider writes the cap in the field its API takes.
    pub fn cap_completion(&mut self, cap: u64) {
        if self.max_tokens.is_some_and(|max| max <= cap) {
            return;
        }
        self.body.remove("max_tokens");
        self.body.remove("max_completion_tokens");
        self.max_tokens = Some(cap);
        self.gateway_capped = true;
    }
}

/// What a request on an AI route asks for.
#[derive(Clone, Copy)]
pub enum Operation<'a> {
    Chat(&'a ChatRequest),
    Embeddings(&'a EmbeddingsRequest),
    /// Another OpenAI endpoint, passed through (see `ai::passthrough`).
    Passthrough(&'a PassthroughRequest),
}

impl Operation<'_> {
    pub fn model(&self) -> &str {
        match self {
            Self::Chat(chat) => &chat.model,
            Self::Embeddings(request) => &request.model,
            Self::Passthrough(request) => &request.model,
        }
    }

    /// The operation's name in usage events: the client's API (a chat
    /// asked through Anthropic's Messages API is `messages`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Chat(chat) => match chat.native.as_deref() {
                Some(NativeRequest::AnthropicMessages(_)) => "messages",
                Some(NativeRequest::OpenAiResponses(_)) => "responses",
                None => "chat.completions",
            },
            Self::Embeddings(_) => "embeddings",
            Self::Passthrough(request) => request.endpoint.name(),
        }
    }

    pub fn prompt_estimate(&self) -> u64 {
        match self {
            Self::Chat(chat) => estimate_chat_prompt_tokens(&chat.body),
            Self::Embeddings(request) => request.estimated_tokens(),
            Self::Passthrough(request) => request.prompt_estimate,
        }
    }

    /// The request with `params` added where the client set nothing.
    pub(crate) fn with_defaults(
        &self,
        params: &Map<String, Value>,
    ) -> Result<OwnedOperation, GatewayError> {
        let merge = |body: &Map<String, Value>| {
            let mut body = body.clone();
            // Two spellings of one limit: a client setting either keeps it.
            const MAX_TOKENS: [&str; 2] = ["max_tokens", "max_completion_tokens"];
            let client_limits = MAX_TOKENS.iter().any(|k| body.contains_key(*k));
            for (key, value) in params {
                if client_limits && MAX_TOKENS.contains(&key.as_str()) {
                    continue;
                }
                body.entry(key.clone()).or_insert_with(|| value.clone());
            }
            serde_json::to_vec(&Value::Object(body))
                .map_err(|e| GatewayError::internal(format!("request with defaults: {e}")))
        };
        Ok(match self {
            Self::Chat(chat) => {
                let mut merged = ChatRequest::parse(&merge(&chat.body)?)?;
                merged.native.clone_from(&chat.native);
                // A deployment default may lower the gateway's cap, never
                // raise it.
                if let (true, Some(cap)) = (chat.gateway_capped, chat.max_tokens) {
                    merged.cap_completion(cap);
                }
                OwnedOperation::Chat(merged)
            }
            Self::Embeddings(request) => {
                OwnedOperation::Embeddings(EmbeddingsRequest::parse(&merge(&request.body)?)?)
            }
            Self::Passthrough(request) => {
                OwnedOperation::Passthrough(request.with_defaults(params)?)
            }
        })
    }

    /// Completion tokens to reserve: `max_tokens` for each of the `n`
    /// choices, if set (`None`: the plan's default); embeddings produce none.
    pub fn completion_reservation(&self) -> Option<u64> {
        match self {
            Self::Chat(chat) => chat.max_tokens.map(|max| max.saturating_mul(chat.choices)),
            Self::Embeddings(_) => Some(0),
            Self::Passthrough(request) => Some(request.completion_reservation()),
        }
    }
}

/// A request the gateway owns: parsed from the client, or rebuilt with a
/// deployment's defaults.
pub enum OwnedOperation {
    Chat(ChatRequest),
    Embeddings(EmbeddingsRequest),
    Passthrough(PassthroughRequest),
}

impl OwnedOperation {
    pub(crate) fn as_operation(&self) -> Operation<'_> {
        match self {
            Self::Chat(chat) => Operation::Chat(chat),
            Self::Embeddings(request) => Operation::Embeddings(request),
            Self::Passthrough(request) => Operation::Passthrough(request),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(body: &str) -> GatewayError {
        ChatRequest::parse(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn chat_request_errors_name_the_parameter() {
        assert!(matches!(parse_err("{"), GatewayError::InvalidJson(_)));
        assert!(matches!(
            parse_err("[]"),
            GatewayError::InvalidRequest { param: None, .. }
        ));
        assert!(matches!(
            parse_err(r#"{"messages":[]}"#),
            GatewayError::InvalidRequest {
                param: Some("model"),
                ..
            }
        ));
        assert!(matches!(
            parse_err(r#"{"model":"m"}"#),
            GatewayError::InvalidRequest {
                param: Some("messages"),
                ..
            }
        ));
        assert!(matches!(
            parse_err(r#"{"model":"m","messages":[{"content":"x"}]}"#),
            GatewayError::InvalidRequest {
                param: Some("messages"),
                ..
            }
        ));
        assert!(matches!(
            parse_err(r#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#),
            GatewayError::InvalidRequest {
                param: Some("stream"),
                ..
            }
        ));
        assert!(matches!(
            parse_err(r#"{"model":"m","messages":[{"role":"user"}],"max_tokens":0}"#),
            GatewayError::InvalidRequest {
                param: Some("max_tokens"),
                ..
            }
        ));
    }

    #[test]
    fn a_huge_max_tokens_is_refused_not_summed() {
        let error = parse_err(
            r#"{"model":"m","messages":[{"role":"user"}],"max_tokens":18446744073709551615}"#,
        );
        assert!(
            matches!(error, GatewayError::InvalidRequest { param: Some("max_tokens"), ref message } if message.contains("too large")),
            "{error:?}"
        );
        let at_cap = format!(
            r#"{{"model":"m","messages":[{{"role":"user"}}],"max_completion_tokens":{MAX_TOKENS_CAP}}}"#
        );
        assert_eq!(
            ChatRequest::parse(at_cap.as_bytes()).unwrap().max_tokens,
            Some(MAX_TOKENS_CAP)
        );
    }

    #[test]
    fn wrong_parameter_types_and_malformed_tools_are_400_naming_them() {
        let base = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]"#;
        let cases: [(&str, &str); 11] = [
            (r#""temperature":"hot""#, "temperature"),
            (r#""temperature":[]"#, "temperature"),
            (r#""top_p":{}"#, "top_p"),
            (r#""n":1.5"#, "n"),
            (r#""stop":[1]"#, "stop"),
            (r#""user":7"#, "user"),
            (r#""tool_choice":3"#, "tool_choice"),
            (r#""tools":"x""#, "tools"),
            (r#""tools":{}"#, "tools"),
            (r#""tools":[1]"#, "tools"),
            (r#""tools":[{"type":"function","function":{}}]"#, "tools"),
        ];
        for (extra, param) in cases {
            let body = format!("{base},{extra}}}");
            match ChatRequest::parse(body.as_bytes()) {
                Err(GatewayError::InvalidRequest { param: Some(p), .. }) => {
                    assert_eq!(p, param, "{extra}")
                }
                other => panic!("{extra}: {other:?}"),
            }
        }
        // Right types, nulls and non-function tool types are accepted.
        let ok = format!(
            r#"{base},"temperature":0.2,"top_p":null,"n":1,"stop":["x"],"tool_choice":"auto","tools":[{{"type":"function","function":{{"name":"f"}}}},{{"type":"custom","custom":{{"name":"g"}}}}]}}"#
        );
        assert!(ChatRequest::parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn chat_request_reads_stream_options() {
        let chat = ChatRequest::parse(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":7}"#,
        )
        .unwrap();
        assert!(chat.stream && chat.include_usage);
        assert_eq!(chat.max_tokens, Some(7));
    }
}
