//! More of OpenAI's API on an `ai` route, passed through to OpenAI-compatible
//! (`kind: openai`) and Azure deployments with the gateway's auth, request
//! limits, model resolution (aliases, allowed models) and accounting. The
//! upstream gets the deployment's model name (in JSON, and in the `model`
//! field of a multipart form); replies are relayed as they come, JSON ones
//! naming the public model where they name one. Other providers (Anthropic,
//! Gemini, Bedrock, the mock) answer a 400 in OpenAI's error shape that
//! names the endpoint and the provider; fallbacks apply as for chat (the
//! next deployment on 429/5xx or when unreachable, before any byte reached
//! the client).
//!
//! | Endpoint (below the prefix) | Body in → out | Accounting (`gateway::usage`, budgets) |
//! |---|---|---|
//! | `POST /completions` (legacy) | JSON → JSON or SSE | Tokens, like chat: reserves the prompt estimate plus `max_tokens` × max(`n`, `best_of`); `max_tokens` defaults to 16 (OpenAI's default) and is always written upstream, so the reservation is a cap; settled on the reply's `usage` (streams: `stream_options.include_usage` is always asked for and the usage chunk folded away if the client did not ask, as for chat) |
//! | `POST /moderations` | JSON → JSON | The call is recorded (`operation: moderations`); OpenAI reports no tokens and does not bill them: nothing is reserved, 0 tokens settled |
//! | `POST /images/generations` | JSON → JSON | The call and the number of images returned (`images` on the usage event); tokens when the reply reports them (`gpt-image-1`'s `usage.input_tokens`/`output_tokens`), else 0. No per-image price |
//! | `POST /audio/transcriptions`, `POST /audio/translations` | multipart/form-data (forwarded byte for byte but the `model` value, within the route's `max_body_bytes`) → JSON, text or SSE as the upstream answers | The call; tokens when a JSON reply reports them (`usage.type: tokens` of `gpt-4o-transcribe`). Audio duration is not measured: that needs decoding the audio |
//! | `POST /audio/speech` | JSON → binary audio, streamed chunk by chunk (never buffered; the route's stream idle timeout applies) | The call; the upstream reports nothing measurable (no tokens, no duration without decoding) |
//!
//! Deployment request defaults (`params`) are added to JSON bodies where the
//! client set nothing (a default `max_tokens` may lower the completion cap,
//! never raise it); multipart forms are forwarded as sent. Azure has no
//! moderations endpoint: a moderation on an Azure deployment is a 400 too.

pub mod multipart;

use bytes::Bytes;
use http::{header, HeaderMap};
use serde_json::{Map, Value};

use self::multipart::Form;
use super::json::{parse_object_with_model, MAX_CHOICES, MAX_TOKENS_CAP};
use super::usage::estimate_tokens;
use crate::error::GatewayError;

/// `max_tokens` of a legacy completion that sets none: OpenAI's documented
/// default, written upstream so every compatible server stops there too.
pub const DEFAULT_COMPLETION_MAX_TOKENS: u64 = 16;

/// An OpenAI endpoint passed through (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Completions,
    Moderations,
    ImageGenerations,
    AudioTranscriptions,
    AudioTranslations,
    AudioSpeech,
}

impl Endpoint {
    const ALL: [Self; 6] = [
        Self::Completions,
        Self::Moderations,
        Self::ImageGenerations,
        Self::AudioTranscriptions,
        Self::AudioTranslations,
        Self::AudioSpeech,
    ];

    /// The endpoint of a path below an `ai` route's prefix.
    pub fn of_subpath(subpath: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|endpoint| subpath.strip_prefix('/') == Some(endpoint.path()))
    }

    /// Its path below the API's base (`/v1` at OpenAI), without the
    /// leading slash: the upstream operation.
    pub fn path(self) -> &'static str {
        match self {
            Self::Completions => "completions",
            Self::Moderations => "moderations",
            Self::ImageGenerations => "images/generations",
            Self::AudioTranscriptions => "audio/transcriptions",
            Self::AudioTranslations => "audio/translations",
            Self::AudioSpeech => "audio/speech",
        }
    }

    /// The `operation` of its usage events.
    pub fn name(self) -> &'static str {
        match self {
            Self::Completions => "completions",
            Self::Moderations => "moderations",
            Self::ImageGenerations => "images.generations",
            Self::AudioTranscriptions => "audio.transcriptions",
            Self::AudioTranslations => "audio.translations",
            Self::AudioSpeech => "audio.speech",
        }
    }

    /// True for the endpoints that take `multipart/form-data`.
    pub fn is_multipart(self) -> bool {
        matches!(self, Self::AudioTranscriptions | Self::AudioTranslations)
    }
}

/// The 400 for `request` on `provider` ("an Anthropic"), a deployment
/// without its endpoint.
pub fn unsupported_on(request: &PassthroughRequest, provider: &str) -> GatewayError {
    GatewayError::invalid_request(
        format!(
            "The model `{}` is served by {provider} deployment, which has no /{} endpoint.",
            request.model,
            request.endpoint.path()
        ),
        Some("model"),
    )
}

/// How many images an image generation returned: put on the reply by the
/// provider, logged on the usage event (`images`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneratedImages(pub u64);

/// A request body as the endpoint takes it.
#[derive(Debug, Clone)]
pub enum PassthroughBody {
    Json(Map<String, Value>),
    Multipart(Form),
}

/// A request to a passed-through endpoint, parsed and checked.
#[derive(Debug, Clone)]
pub struct PassthroughRequest {
    pub endpoint: Endpoint,
    /// The public model name the client asked for.
    pub model: String,
    pub body: PassthroughBody,
    /// A completion streamed as SSE.
    pub stream: bool,
    /// `stream_options.include_usage` of a completion.
    pub include_usage: bool,
    /// A completion's limit per choice (the client's, else
    /// [`DEFAULT_COMPLETION_MAX_TOKENS`]); written upstream.
    pub max_tokens: u64,
    /// Completions generated per request: max(`n`, `best_of`), default 1.
    pub choices: u64,
    /// The prompt's estimated tokens (completions; 0 elsewhere).
    pub prompt_estimate: u64,
}

impl PassthroughRequest {
    /// Parses the body of `endpoint`: a JSON object with a `model`, or a
    /// multipart form with one `model` field. Errors are 400s.
    pub fn parse(
        endpoint: Endpoint,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Self, GatewayError> {
        if endpoint.is_multipart() {
            let (form, model) = Form::parse(headers.get(header::CONTENT_TYPE), body.clone())?;
            return Ok(Self {
                endpoint,
                model,
                body: PassthroughBody::Multipart(form),
                stream: false,
                include_usage: false,
                max_tokens: 0,
                choices: 1,
                prompt_estimate: 0,
            });
        }
        let (object, model) = parse_object_with_model(body)?;
        Self::from_json(endpoint, object, model)
    }

    fn from_json(
        endpoint: Endpoint,
        body: Map<String, Value>,
        model: String,
    ) -> Result<Self, GatewayError> {
        let mut request = Self {
            endpoint,
            model,
            body: PassthroughBody::Json(Map::new()),
            stream: false,
            include_usage: false,
            max_tokens: 0,
            choices: 1,
            prompt_estimate: 0,
        };
        if endpoint == Endpoint::Completions {
            request.stream = match body.get("stream") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(stream)) => *stream,
                Some(_) => {
                    return Err(GatewayError::invalid_request(
                        "`stream` must be a boolean.",
                        Some("stream"),
                    ))
                }
            };
            request.include_usage = body
                .get("stream_options")
                .and_then(|o| o.get("include_usage"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            request.max_tokens = match body.get("max_tokens") {
                None | Some(Value::Null) => DEFAULT_COMPLETION_MAX_TOKENS,
                Some(value) => match value.as_u64() {
                    Some(n @ 1..=MAX_TOKENS_CAP) => n,
                    _ => {
                        return Err(GatewayError::invalid_request(
                            format!("`max_tokens` must be an integer from 1 to {MAX_TOKENS_CAP}."),
                            Some("max_tokens"),
                        ))
                    }
                },
            };
            for name in ["n", "best_of"] {
                match body.get(name) {
                    None | Some(Value::Null) => {}
                    Some(value) => match value.as_u64() {
                        Some(n @ 1..=MAX_CHOICES) => request.choices = request.choices.max(n),
                        _ => {
                            return Err(GatewayError::invalid_request(
                                format!("`{name}` must be between 1 and {MAX_CHOICES}."),
                                Some(name),
                            ))
                        }
                    },
                }
            }
            request.prompt_estimate = completion_prompt_estimate(&body)?;
        }
        request.body = PassthroughBody::Json(body);
        Ok(request)
    }

    /// Completion tokens to reserve: every generated choice at its limit;
    /// the other endpoints produce no tokens the gateway can foresee.
    pub fn completion_reservation(&self) -> u64 {
        match self.endpoint {
            Endpoint::Completions => self.max_tokens.saturating_mul(self.choices),
            _ => 0,
        }
    }

    /// The request with a deployment's `params` added where the client set
    /// nothing (JSON bodies only); a default `max_tokens` may lower the
    /// completion limit, never raise what was reserved.
    pub(crate) fn with_defaults(&self, params: &Map<String, Value>) -> Result<Self, GatewayError> {
        let PassthroughBody::Json(body) = &self.body else {
            return Ok(self.clone());
        };
        let mut body = body.clone();
        for (key, value) in params {
            body.entry(key.clone()).or_insert_with(|| value.clone());
        }
        let mut merged = Self::from_json(self.endpoint, body, self.model.clone())?;
        merged.max_tokens = merged.max_tokens.min(self.max_tokens);
        merged.choices = merged.choices.min(self.choices);
        Ok(merged)
    }
}

/// Estimated tokens of a legacy completion's `prompt` (a string, strings,
/// token ids, or arrays of token ids) and `suffix`; a wrong type is a 400.
fn completion_prompt_estimate(body: &Map<String, Value>) -> Result<u64, GatewayError> {
    let bad = || {
        GatewayError::invalid_request(
            "`prompt` must be a string, an array of strings, or an array of token arrays.",
            Some("prompt"),
        )
    };
    let count = |item: &Value| -> Result<u64, GatewayError> {
        match item {
            Value::String(text) => Ok(estimate_tokens(text)),
            Value::Number(_) => Ok(1),
            Value::Array(tokens) if tokens.iter().all(Value::is_number) => Ok(tokens.len() as u64),
            _ => Err(bad()),
        }
    };
    let prompt = match body.get("prompt") {
        None | Some(Value::Null) => 0,
        Some(Value::Array(items)) => items
            .iter()
            .map(count)
            .try_fold(0u64, |sum, n| n.map(|n| sum.saturating_add(n)))?,
        Some(item @ Value::String(_)) => count(item)?,
        Some(_) => return Err(bad()),
    };
    let suffix = body
        .get("suffix")
        .and_then(Value::as_str)
        .map_or(0, estimate_tokens);
    Ok(prompt.saturating_add(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(endpoint: Endpoint, body: &str) -> Result<PassthroughRequest, GatewayError> {
        PassthroughRequest::parse(
            endpoint,
            &HeaderMap::new(),
            &Bytes::copy_from_slice(body.as_bytes()),
        )
    }

    #[test]
    fn paths_name_their_endpoints_and_nothing_else() {
        assert_eq!(
            Endpoint::of_subpath("/audio/speech"),
            Some(Endpoint::AudioSpeech)
        );
        assert_eq!(
            Endpoint::of_subpath("/completions"),
            Some(Endpoint::Completions)
        );
        for other in [
            "/chat/completions",
            "/audio",
            "/audio/speech/",
            "completions",
            "",
        ] {
            assert_eq!(Endpoint::of_subpath(other), None, "{other}");
        }
    }

    #[test]
    fn a_completion_reserves_every_choice_at_its_limit() {
        let request = parse(
            Endpoint::Completions,
            r#"{"model":"m","prompt":["Say this is a test","x"],"n":2,"best_of":3,"max_tokens":10}"#,
        )
        .unwrap();
        assert_eq!(request.completion_reservation(), 30);
        assert_eq!(request.prompt_estimate, 5 + 1);
        let default = parse(Endpoint::Completions, r#"{"model":"m","prompt":[[1,2,3]]}"#).unwrap();
        assert_eq!(default.max_tokens, DEFAULT_COMPLETION_MAX_TOKENS);
        assert_eq!(default.prompt_estimate, 3);
        // Other endpoints reserve no completion.
        let moderation = parse(Endpoint::Moderations, r#"{"model":"m","input":"x"}"#).unwrap();
        assert_eq!(moderation.completion_reservation(), 0);
    }

    #[test]
    fn bad_completion_parameters_are_400_naming_them() {
        for (body, param) in [
            (r#"{"prompt":"x"}"#, "model"),
            (r#"{"model":"m","prompt":{}}"#, "prompt"),
            (r#"{"model":"m","prompt":[{}]}"#, "prompt"),
            (r#"{"model":"m","max_tokens":0}"#, "max_tokens"),
            (
                r#"{"model":"m","max_tokens":18446744073709551615}"#,
                "max_tokens",
            ),
            (r#"{"model":"m","n":129}"#, "n"),
            (r#"{"model":"m","best_of":0}"#, "best_of"),
            (r#"{"model":"m","stream":"yes"}"#, "stream"),
        ] {
            match parse(Endpoint::Completions, body) {
                Err(GatewayError::InvalidRequest { param: Some(p), .. }) => {
                    assert_eq!(p, param, "{body}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn deployment_defaults_never_raise_the_reserved_limit() {
        let request = parse(Endpoint::Completions, r#"{"model":"m","prompt":"x"}"#).unwrap();
        let params: Map<String, Value> =
            serde_json::from_str(r#"{"max_tokens":500,"temperature":0.1}"#).unwrap();
        let merged = request.with_defaults(&params).unwrap();
        assert_eq!(merged.max_tokens, DEFAULT_COMPLETION_MAX_TOKENS);
        let PassthroughBody::Json(body) = &merged.body else {
            panic!("not JSON")
        };
        assert_eq!(body["temperature"], 0.1);
    }
}
