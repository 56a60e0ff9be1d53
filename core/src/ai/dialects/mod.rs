//! Inbound dialects: the APIs clients speak on an `ai` route. Each is
//! mapped onto the canonical form — OpenAI Chat Completions, a
//! [`ChatRequest`](super::ChatRequest) — and every reply back, so any
//! provider serves any dialect with one set of provider translators, one
//! estimate, one reservation and one accounting.
//!
//! The seam, one folder per dialect (`anthropic/`, `responses/`):
//! 1. **paths**: [`Dialect::of_subpath`] names the dialect of a path below
//!    the route's prefix; phase 1 picks the error shape with it
//!    ([`Dialect::error_shape`]), so even a 401 from phase 2 is in the
//!    client's shape. `ai::parse_request` routes the path to the dialect's
//!    parser.
//! 2. **parse**: bytes (+ headers) → a canonical `ChatRequest`, with the
//!    original body kept in `ChatRequest::native` for providers that speak
//!    the dialect themselves.
//! 3. **native or translated**: [`Dialect::native_on`] says which provider
//!    kinds take the native body (pass-through: no double translation,
//!    their own wire events are observed for usage); every other provider
//!    gets the canonical request through its usual translator.
//! 4. **render**: a translated reply — a complete `chat.completion` or
//!    error JSON ([`Dialect::render_complete`]), or a canonical SSE stream
//!    after the accounting observer read it ([`Dialect::render_stream`]) —
//!    becomes the dialect's response and events. Errors the gateway makes
//!    are rendered in the dialect's [`ErrorShape`] by phase 10.
//! 5. **state** (Responses only): [`Dialect::prepare`] gives a parsed
//!    request what it needs from the gateway's store before the estimate
//!    (the conversation `previous_response_id` continues); rendering keeps
//!    the reply for the next turn.

pub mod anthropic;
pub mod responses;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Response};

use super::config::ProviderKind;
use super::request::{AiRequest, NativeRequest, OwnedOperation};
use super::sse::StreamWire;
use crate::body::Body;
use crate::error::{ErrorShape, GatewayError};
use crate::platform::Platform;
use crate::util::BackgroundTask;

/// What rendering a translated reply into the client's dialect needs.
pub struct Render<'a, P> {
    /// The reply is in the canonical form (else in the dialect, from a
    /// provider that speaks it).
    pub translated: bool,
    pub public_model: &'a str,
    /// The gateway's prompt estimate (the input usage a stream announces
    /// before the provider reports its count).
    pub prompt_estimate: u64,
    /// The request in its dialect.
    pub native: Option<&'a Arc<NativeRequest>>,
    /// For dialects that keep state (Responses): the store and its deadline.
    pub platform: &'a Arc<P>,
    pub store_timeout: Duration,
}

/// Marks a reply whose response could not be stored (a continuation of it
/// will not be found).
pub const RESPONSE_STORED_HEADER: &str = "x-gateway-response-stored";

/// The API a request on an `ai` route speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI Chat Completions (and embeddings, models): the canonical form.
    #[default]
    OpenAiChat,
    /// Anthropic Messages: `/messages`, `/messages/count_tokens`.
    AnthropicMessages,
    /// OpenAI Responses: `/responses`, `/responses/{id}`.
    OpenAiResponses,
}

impl Dialect {
    /// The dialect of a path below an `ai` route's prefix.
    pub fn of_subpath(subpath: &str) -> Self {
        let under = |prefix: &str| {
            subpath
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if under("/messages") {
            Self::AnthropicMessages
        } else if under(responses::RESPONSES_PATH) {
            Self::OpenAiResponses
        } else {
            Self::OpenAiChat
        }
    }

    /// The shape errors take on this dialect's paths.
    pub fn error_shape(self) -> ErrorShape {
        match self {
            Self::OpenAiChat | Self::OpenAiResponses => ErrorShape::OpenAi,
            Self::AnthropicMessages => ErrorShape::Anthropic,
        }
    }

    /// True when a provider of `kind` speaks this dialect itself: the
    /// request passes through natively (see `ChatRequest::native`).
    pub fn native_on(self, kind: &ProviderKind) -> bool {
        matches!(
            (self, kind),
            (Self::AnthropicMessages, ProviderKind::Anthropic { .. })
                | (
                    Self::OpenAiResponses,
                    ProviderKind::OpenAi {
                        native_responses: true,
                        ..
                    } | ProviderKind::Azure {
                        native_responses: true,
                        ..
                    }
                )
        )
    }

    /// The stream format a provider of `kind` answers this dialect in: its
    /// own when native, the canonical one otherwise.
    pub fn stream_wire(self, kind: &ProviderKind) -> StreamWire {
        if self.native_on(kind) {
            match self {
                Self::AnthropicMessages => StreamWire::Anthropic,
                Self::OpenAiResponses => StreamWire::Responses,
                Self::OpenAiChat => StreamWire::OpenAi,
            }
        } else {
            StreamWire::OpenAi
        }
    }

    /// What a parsed request needs from the gateway's state before its
    /// estimate and reservation: for Responses, its id, its store slot
    /// (`owner`: the consumer; `retention`: the route's) and the
    /// conversation it continues.
    pub async fn prepare<P: Platform>(
        self,
        request: &mut AiRequest,
        platform: &P,
        store_timeout: Duration,
        owner: &str,
        retention: Duration,
    ) -> Result<(), GatewayError> {
        match (self, request) {
            (Self::OpenAiResponses, AiRequest::Call(OwnedOperation::Chat(chat))) => {
                responses::prepare(chat, platform, store_timeout, owner, retention).await
            }
            _ => Ok(()),
        }
    }

    /// A complete canonical reply (a `chat.completion`, or an error in
    /// OpenAI's shape) in this dialect.
    pub async fn render_complete<P: Platform>(
        self,
        response: Response<Body>,
        render: Render<'_, P>,
    ) -> Result<Response<Body>, GatewayError> {
        match (self, render.native.map(|n| &**n)) {
            (Self::AnthropicMessages, _) if render.translated => {
                anthropic::render_complete(response, render.public_model).await
            }
            (Self::OpenAiResponses, Some(NativeRequest::OpenAiResponses(request))) => {
                let (mut response, kept) = if render.translated {
                    responses::render_complete(response, request, render.public_model).await?
                } else {
                    responses::finish_native_complete(response, request, render.public_model)
                        .await?
                };
                if let Some(kept) = kept {
                    let platform = &**render.platform;
                    if !responses::state::save(platform, render.store_timeout, request, kept).await
                    {
                        response
                            .headers_mut()
                            .insert(RESPONSE_STORED_HEADER, HeaderValue::from_static("false"));
                    }
                }
                Ok(response)
            }
            _ => Ok(response),
        }
    }

    /// A canonical SSE stream (already observed for accounting) re-encoded
    /// as this dialect's events, chunk by chunk.
    pub fn render_stream<P: Platform>(
        self,
        response: Response<Body>,
        render: Render<'_, P>,
    ) -> Response<Body> {
        match (self, render.native.map(|n| &**n)) {
            (Self::AnthropicMessages, _) if render.translated => {
                anthropic::render_stream(response, render.public_model, render.prompt_estimate)
            }
            (Self::OpenAiResponses, Some(NativeRequest::OpenAiResponses(request))) => {
                let request = Arc::new(request.clone());
                let save = request.store.is_some().then(|| {
                    let (platform, timeout) = (Arc::clone(render.platform), render.store_timeout);
                    let request = Arc::clone(&request);
                    let save: responses::SaveResponse = Box::new(move |kept| {
                        let task: BackgroundTask = Box::pin(async move {
                            responses::state::save(&*platform, timeout, &request, kept).await;
                        });
                        task
                    });
                    save
                });
                if render.translated {
                    responses::render_stream(
                        response,
                        request,
                        render.public_model,
                        render.prompt_estimate,
                        save,
                    )
                } else {
                    responses::finish_native_stream(response, request, render.public_model, save)
                }
            }
            _ => response,
        }
    }
}
