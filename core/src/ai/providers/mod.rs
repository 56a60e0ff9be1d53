//! One file per vendor, each in the same order: wire types, request mapping,
//! response and stream mapping, error mapping, tests. Providers are picked
//! with the closed [`crate::config::ProviderKind`] enum, not `dyn`.

pub mod anthropic;
pub mod gemini;
pub mod mock;
pub mod openai;

use http::Response;

use super::usage::Usage;
use crate::body::Body;

/// What a provider hands back to the AI pipeline.
pub enum ProviderReply {
    /// A complete JSON response (success or a passed-through client error)
    /// and the usage it reported.
    Complete {
        response: Response<Body>,
        usage: Option<Usage>,
    },
    /// An OpenAI-format SSE stream, relayed as it arrives; usage is read from
    /// it by the pipeline.
    Stream { response: Response<Body> },
}
