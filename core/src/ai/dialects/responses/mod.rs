//! OpenAI Responses inbound: `POST {prefix}/responses` (stream and not),
//! `GET` and `DELETE {prefix}/responses/{id}`, parsed into the canonical
//! Chat Completions request and rendered back as a `response` object and
//! Responses stream events — so any provider serves it — with the
//! conversation kept by the gateway (`previous_response_id`).
//!
//! References: <https://platform.openai.com/docs/api-reference/responses>
//! (create, get, delete; the `response` object and its output items),
//! <https://platform.openai.com/docs/api-reference/responses-streaming>
//! (events and their order), <https://platform.openai.com/docs/guides/function-calling>
//! (function and custom tools, `function_call` / `function_call_output`
//! items), <https://platform.openai.com/docs/guides/conversation-state>.
//!
//! Field rule (Responses → canonical):
//! - mapped: `instructions` → a leading system message (not carried to a
//!   continuation, as OpenAI does); `input` as a string (one user message)
//!   or items: messages (`user`, `assistant`, `system`, `developer` →
//!   system) with `input_text` / `output_text` / `refusal` text,
//!   `input_image` (URL or data URL) → `image_url` parts, `input_file`
//!   (`file_data`) → `file` parts; `function_call` → an assistant
//!   `tool_calls` entry; `function_call_output` → a `tool` message (its
//!   text; images in tool output are dropped); `custom_tool_call` /
//!   `custom_tool_call_output` likewise, the custom input as the one string
//!   argument `input`; function `tools`; `custom` tools → function tools
//!   with one string argument `input` (their grammar, if any, in the
//!   description), their calls rendered back as `custom_tool_call` items;
//!   `tool_choice` (`auto`, `none`, `required`, a named function or custom
//!   tool, `allowed_tools` → the tool list filtered to the allowed ones and
//!   its mode); `text.format` (`json_schema`, `json_object`) →
//!   `response_format`; `reasoning.effort` → `reasoning_effort`;
//!   `max_output_tokens` → the completion cap (each provider writes it in
//!   its own field); `temperature`, `top_p`, `parallel_tool_calls`, `user`
//!   (or `safety_identifier`).
//! - kept by the gateway: `store` (default true) and `previous_response_id`
//!   — see *Conversation state*; `metadata` is echoed in the response
//!   object, not sent upstream.
//! - dropped: built-in tools a translated provider cannot run (any tool
//!   type other than `function` and `custom`: `web_search`, `file_search`,
//!   `code_interpreter`, `image_generation`, `computer_use_preview`, `mcp`,
//!   `local_shell`, `tool_search`, `namespace`, …; logged at debug) unless
//!   `tool_choice` forces one, which is 400; `reasoning` items of earlier
//!   turns and the call items of built-in tools; `include`,
//!   `prompt_cache_key`, `service_tier`, `truncation`, `text.verbosity`,
//!   `reasoning.summary`, `top_logprobs`, `max_tool_calls`,
//!   `stream_options`, `client_metadata`, and any field not named here.
//! - refused (400): `background: true`, `conversation` (the Conversations
//!   API is not served: use `previous_response_id`), `prompt` templates,
//!   `item_reference` items, file ids (`file_id`) and input audio.
//!
//! Replies: text → a `message` item with one `output_text` part;
//! `reasoning_content` of OpenAI-compatible servers → a `reasoning` item
//! with a `reasoning_text` part; tool calls → `function_call` (or
//! `custom_tool_call`) items. `finish_reason` `length` is status
//! `incomplete` (`max_output_tokens`), `content_filter` is `incomplete`
//! (`content_filter`). Usage is `input_tokens` (with
//! `input_tokens_details.cached_tokens`), `output_tokens`, `total_tokens`.
//! A stream is `response.created`, `response.in_progress`, then per item
//! `response.output_item.added`, its part and delta events and their
//! `…done` events, `response.output_item.done`, and last
//! `response.completed` (or `response.incomplete`) with the whole
//! response and its usage; every event has a `sequence_number`. A stream
//! the provider fails or cuts ends with `response.failed`.
//!
//! # Conversation state
//!
//! With `store` (the default), the gateway keeps each response — the
//! response object and the conversation's items up to and including its
//! output — in its key-value store (memory locally, DynamoDB on Lambda,
//! KV on Workers) for the route's `response_retention_s` (default 30
//! days), under a key that names the consumer that created it: another
//! consumer's `GET`, `DELETE` or `previous_response_id` finds nothing
//! (404 / 400, never another's data). A continuation is one read,
//! whichever provider served the earlier turns. The record is written
//! before the reply's last event (`response.completed`) or its body
//! reaches the client, so a client that continues at once finds it; a
//! store that fails the write is logged and the reply is still served
//! (the stream or the `x-gateway-response-stored: false` header says
//! it was not kept). Store limits bound a conversation: DynamoDB items
//! hold 400 KB, Workers KV values 25 MiB.

mod request;
mod response;
pub mod state;
#[cfg(test)]
mod tests;

pub use self::request::{parse_responses, RESPONSES_PATH};
pub use self::response::{
    finish_native_complete, finish_native_stream, render_complete, render_stream,
    response_from_completion, SaveResponse,
};
pub use self::state::{prepare, serve_stored};
