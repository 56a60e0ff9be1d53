//! The config file as written: every struct denies unknown fields so a typo
//! is an error, not a silently ignored setting. Validation into the typed
//! [`super::Config`] happens in `super::validate`.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    /// Provider name → provider.
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub models: Vec<RawModel>,
    /// Requested model names (exact, or with `*` wildcards) served by a
    /// configured model.
    #[serde(default)]
    pub model_aliases: Vec<RawModelAlias>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub auth: RawAuth,
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub consumers: Vec<RawConsumer>,
    /// Plan name → plan. Limits arrive with quotas; consumers already name
    /// their plan and the name is checked.
    #[serde(default)]
    pub plans: BTreeMap<String, RawPlan>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(default)]
    pub api_keys: RawApiKeys,
    /// Issuer name → JWT issuer.
    #[serde(default)]
    pub jwt: BTreeMap<String, RawJwtIssuer>,
    /// Deadline of every key-store call, in ms (default 2000).
    pub store_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKeys {
    pub cache_ttl_ms: Option<u64>,
    pub cache_size: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwtIssuer {
    pub issuer: Option<String>,
    pub audience: Option<Vec<String>>,
    pub leeway_s: Option<u64>,
    pub consumer_claim: Option<String>,
    /// `namespaced` (default) or `direct`.
    pub consumer_mapping: Option<String>,
    /// Subject → consumer id, checked before `consumer_mapping`.
    #[serde(default)]
    pub consumer_map: BTreeMap<String, String>,
    /// Plan of callers that map to no known consumer.
    pub default_plan: Option<String>,
    pub scopes_claim: Option<String>,
    #[serde(default)]
    pub keys: Vec<RawJwtKey>,
    pub jwks_url: Option<String>,
    pub jwks_cache_ttl_ms: Option<u64>,
    pub jwks_refetch_interval_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwtKey {
    pub kid: Option<String>,
    pub alg: String,
    /// HS*: `${env:NAME}` holding the shared secret.
    pub secret: Option<String>,
    /// RS*/PS*/ES*/EdDSA public key in PEM (may be `${env:NAME}`).
    pub pem: Option<String>,
    /// A public JWK object.
    pub jwk: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub path_prefix: String,
    /// Hex SHA-256 of the admin key, usually `${env:GATEWAY_ADMIN_KEY_SHA256}`.
    pub key_sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsumer {
    pub id: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub allowed_routes: Option<Vec<String>>,
    pub allowed_models: Option<Vec<String>>,
    pub plan: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    pub description: Option<String>,
    #[serde(default)]
    pub limits: Vec<RawLimit>,
    /// `fail_closed` (default) or `fail_open`.
    pub on_store_error: Option<String>,
    pub store_timeout_ms: Option<u64>,
    /// Completion tokens reserved when a request sets no `max_tokens`.
    pub reserve_completion_tokens: Option<u64>,
    /// Opt-in quota leases for the plan's request and token limits.
    pub lease: Option<RawLease>,
}

/// `plans.<name>.lease`: each instance takes blocks of quota from the
/// counters and serves from them locally (see `quota::lease`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLease {
    /// Share of what remains in the window one lease takes (0 < f <= 1).
    pub fraction: Option<f64>,
    /// Largest lease of a `requests` limit, in requests.
    pub max_requests: Option<u64>,
    /// Largest lease of a token limit, in tokens.
    pub max_tokens: Option<u64>,
    /// How long a lease serves before its unused part goes back.
    pub ttl_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimit {
    pub name: Option<String>,
    /// `consumer` (default), `consumer_route`, `consumer_model`, `ip`.
    pub scope: Option<String>,
    /// `ip` scope: the IPv6 prefix length one counter covers.
    pub ipv6_prefix: Option<u8>,
    pub window_s: u64,
    /// `sliding_window` (default) or `fixed_window`.
    pub algorithm: Option<String>,
    pub requests: Option<u64>,
    pub tokens: Option<u64>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub spend_usd: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteAuth {
    /// Accepted credentials, any of: `api_key`, `jwt` (every issuer) or
    /// `jwt:<issuer>`.
    pub methods: Vec<String>,
    #[serde(default)]
    pub required_scopes: Vec<String>,
    #[serde(default)]
    pub forward_consumer_id: bool,
    #[serde(default)]
    pub forward_credential: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub max_body_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum RawProvider {
    /// Built-in deterministic provider: no network, no key.
    #[serde(rename = "mock")]
    Mock { stream_delay_ms: Option<u64> },
    /// OpenAI or any server speaking its API.
    #[serde(rename = "openai")]
    OpenAi {
        base_url: String,
        api_key: Option<String>,
        /// Serve Responses clients with the server's own `/responses`
        /// (OpenAI itself; not every compatible server has it).
        #[serde(default)]
        native_responses: bool,
    },
    /// Mistral's API (OpenAI-compatible); `base_url` defaults to
    /// `https://api.mistral.ai/v1`.
    #[serde(rename = "mistral")]
    Mistral {
        base_url: Option<String>,
        api_key: String,
    },
    /// Azure OpenAI: `base_url` is the resource endpoint
    /// (`https://<resource>.openai.azure.com`); a model's `upstream_model`
    /// is the deployment name.
    #[serde(rename = "azure")]
    Azure {
        base_url: String,
        api_key: String,
        api_version: Option<String>,
        /// Serve Responses clients with Azure's `/openai/v1/responses`.
        #[serde(default)]
        native_responses: bool,
    },
    /// Google's Gemini API (generateContent).
    #[serde(rename = "gemini")]
    Gemini {
        base_url: Option<String>,
        api_key: String,
    },
    /// AWS Bedrock's Converse API, signed with SigV4. Credentials default to
    /// the standard AWS variables (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` when set), which Lambda
    /// fills from the function's role.
    #[serde(rename = "bedrock")]
    Bedrock {
        region: String,
        base_url: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        session_token: Option<String>,
    },
    /// Anthropic's Messages API.
    #[serde(rename = "anthropic")]
    Anthropic {
        base_url: Option<String>,
        api_key: String,
        anthropic_version: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub name: String,
    pub provider: String,
    pub upstream_model: Option<String>,
    /// USD per million tokens: `{input, cached_input, output}`.
    pub pricing: Option<RawPrice>,
    /// Request defaults for this deployment (fields added when absent).
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Deployments tried in order when the one before is unavailable.
    #[serde(default)]
    pub fallbacks: Vec<RawDeployment>,
    /// The most output tokens the model takes: a client asking for more
    /// is lowered to it.
    pub max_output_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModelAlias {
    /// The name clients ask for: exact (`claude-opus-4-8`) or a pattern
    /// where `*` matches any run of characters (`claude-*`).
    pub name: String,
    /// The configured model (its public `name`) that serves it.
    pub model: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    pub provider: String,
    pub upstream_model: Option<String>,
    pub pricing: Option<RawPrice>,
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub matcher: RawMatch,
    pub max_body_bytes: Option<usize>,
    pub auth: Option<RawRouteAuth>,
    /// A plan applied to every request of the route (e.g. per-IP limits
    /// for anonymous callers), on top of the consumer's plan.
    pub plan: Option<String>,
    pub proxy: Option<RawProxy>,
    pub ai: Option<RawAi>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub host: Option<String>,
    pub methods: Option<Vec<String>>,
    pub path: Option<String>,
    pub path_prefix: Option<String>,
    /// Paths containing `;` may match this route.
    #[serde(default)]
    pub allow_semicolons: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    pub url: String,
    #[serde(default)]
    pub strip_prefix: bool,
    pub rewrite: Option<String>,
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAi {
    pub timeout_ms: Option<u64>,
    /// A stream that sends nothing for this long is ended with an error.
    pub stream_idle_timeout_ms: Option<u64>,
    /// Relay the provider's `x-ratelimit-*` headers to clients.
    #[serde(default)]
    pub forward_provider_rate_limits: bool,
    /// Seconds a Responses response is kept for `previous_response_id` and
    /// `GET` (default 30 days; 0: not kept).
    pub response_retention_s: Option<u64>,
}

/// USD per million tokens (`ai::pricing::Price` once validated).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: f64,
    pub cached_input: f64,
    pub output: f64,
}
