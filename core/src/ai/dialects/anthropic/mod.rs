//! Anthropic Messages inbound: `POST {prefix}/messages` (stream and not)
//! and `POST {prefix}/messages/count_tokens`, parsed into the canonical
//! Chat Completions request and rendered back as Anthropic messages and
//! stream events.
//!
//! References: <https://docs.anthropic.com/en/api/messages> (request and
//! response), <https://docs.anthropic.com/en/api/messages-streaming>
//! (events and their order), <https://docs.anthropic.com/en/api/errors>,
//! <https://docs.anthropic.com/en/api/messages-count-tokens>.
//!
//! Field rule (anthropic → canonical, for providers that are not
//! Anthropic; `kind: anthropic` deployments get the body as sent):
//! - mapped: `system` (string or text blocks) and `role: "system"` entries
//!   of `messages` → system messages in place; text, image (base64, url)
//!   and document blocks (PDF base64 → a `file` part, plain text → text);
//!   `tool_use` → `tool_calls`; `tool_result` → `tool` messages (their
//!   text, prefixed `Error: ` when `is_error`; the result's images follow in
//!   a user message after the tool messages, as OpenAI tool messages hold
//!   text only); `tools` (custom tools)
//!   → function tools; `tool_choice` (`auto`, `any` → `required`, `tool`,
//!   `none`; `disable_parallel_tool_use` → `parallel_tool_calls: false`);
//!   `stop_sequences` → `stop`; `temperature`, `top_p`; `metadata.user_id`
//!   → `user`; `max_tokens` → the completion cap (written by each provider
//!   in its own field); `output_config.format` (JSON schema) →
//!   `response_format`.
//! - dropped (Anthropic-only, no equivalent in the canonical form):
//!   `thinking` (a deployment that reasons takes `reasoning_effort` from
//!   its model's `params`), `top_k`, `context_management`,
//!   `output_config.effort`, `cache_control` on any block, `container`,
//!   `mcp_servers`, `service_tier`, `thinking` / `redacted_thinking`
//!   blocks of earlier assistant turns, and Anthropic-defined tools (any
//!   tool with a `type` other than `custom`: web search, code execution,
//!   bash, text editor, …) — unless `tool_choice` names one, which is 400.
//! - refused (400): a block type the canonical form cannot carry
//!   (`search_result`, `container_upload`, a file-id or URL document, …).
//!
//! Replies: `reasoning_content` of OpenAI-compatible servers becomes a
//! `thinking` block; `finish_reason` maps to `stop_reason` (`stop` →
//! `end_turn`, `length` → `max_tokens`, `tool_calls` → `tool_use`,
//! `content_filter` → `refusal`). A translated stream's `message_start`
//! carries the gateway's prompt estimate as `input_tokens` (the provider
//! reports its count only at the end); the closing `message_delta`
//! carries the provider's exact `input_tokens`, cache reads and
//! `output_tokens` (the Anthropic SDKs take both from it).

mod request;
mod response;
#[cfg(test)]
mod tests;

use http::{header, HeaderValue, Response};
use serde_json::json;

pub use self::request::{parse_messages, ANTHROPIC_BETA, ANTHROPIC_VERSION};
pub use self::response::{
    finish_reason_to_stop_reason, message_from_completion, render_complete, render_stream,
    MessagesStream,
};
use crate::body::Body;

/// An estimate of `count_tokens` for a model no Anthropic deployment
/// serves: the gateway's prompt estimate of the canonical request (text
/// at 4 bytes a token, per-message framing, images, tools), the number
/// it reserves with.
pub fn count_tokens_estimate(prompt_estimate: u64) -> Response<Body> {
    let mut response = Response::new(Body::from(
        json!({"input_tokens": prompt_estimate}).to_string(),
    ));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
