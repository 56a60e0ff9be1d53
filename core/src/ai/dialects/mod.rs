//! Inbound dialects: the APIs clients speak on an `ai` route. Each is
//! mapped onto the canonical form — OpenAI Chat Completions, a
//! [`ChatRequest`](super::ChatRequest) — and every reply back, so any
//! provider serves any dialect with one set of provider translators, one
//! estimate, one reservation and one accounting.
//!
//! The seam, one file per dialect (`anthropic.rs`; `responses.rs` for OpenAI
//! Responses plugs in the same way):
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

pub mod anthropic;

use http::Response;

use super::config::ProviderKind;
use super::sse::StreamWire;
use crate::body::Body;
use crate::error::{ErrorShape, GatewayError};

/// The API a request on an `ai` route speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI Chat Completions (and embeddings, models): the canonical form.
    #[default]
    OpenAiChat,
    /// Anthropic Messages: `/messages`, `/messages/count_tokens`.
    AnthropicMessages,
}

impl Dialect {
    /// The dialect of a path below an `ai` route's prefix.
    pub fn of_subpath(subpath: &str) -> Self {
        if subpath == "/messages" || subpath.starts_with("/messages/") {
            Self::AnthropicMessages
        } else {
            Self::OpenAiChat
        }
    }

    /// The shape errors take on this dialect's paths.
    pub fn error_shape(self) -> ErrorShape {
        match self {
            Self::OpenAiChat => ErrorShape::OpenAi,
            Self::AnthropicMessages => ErrorShape::Anthropic,
        }
    }

    /// True when a provider of `kind` speaks this dialect itself: the
    /// request passes through natively (see `ChatRequest::native`).
    pub fn native_on(self, kind: &ProviderKind) -> bool {
        matches!(
            (self, kind),
            (Self::AnthropicMessages, ProviderKind::Anthropic { .. })
        )
    }

    /// The stream format a provider of `kind` answers this dialect in: its
    /// own when native, the canonical one otherwise.
    pub fn stream_wire(self, kind: &ProviderKind) -> StreamWire {
        if self.native_on(kind) {
            match self {
                Self::AnthropicMessages => StreamWire::Anthropic,
                Self::OpenAiChat => StreamWire::OpenAi,
            }
        } else {
            StreamWire::OpenAi
        }
    }

    /// A complete canonical reply (a `chat.completion`, or an error in
    /// OpenAI's shape) in this dialect.
    pub async fn render_complete(
        self,
        response: Response<Body>,
        public_model: &str,
    ) -> Result<Response<Body>, GatewayError> {
        match self {
            Self::OpenAiChat => Ok(response),
            Self::AnthropicMessages => anthropic::render_complete(response, public_model).await,
        }
    }

    /// A canonical SSE stream (already observed for accounting) re-encoded
    /// as this dialect's events, chunk by chunk.
    pub fn render_stream(
        self,
        response: Response<Body>,
        public_model: &str,
        prompt_estimate: u64,
    ) -> Response<Body> {
        match self {
            Self::OpenAiChat => response,
            Self::AnthropicMessages => {
                anthropic::render_stream(response, public_model, prompt_estimate)
            }
        }
    }
}
