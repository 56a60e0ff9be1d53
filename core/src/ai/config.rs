//! The AI domain's part of the config: providers, models and their
//! deployments (fallbacks, request defaults, prices), and `ai` routes.

use std::collections::HashMap;
use std::time::Duration;

use super::pricing::Price;
use crate::http::UpstreamBase;
use crate::schema::raw::{RawAi, RawModel, RawModelAlias, RawProvider};
use crate::schema::validate::{join_or_none, Validator};
use crate::util::Secret;

/// Default time an AI route waits for upstream response headers (long
/// non-streamed completions need minutes).
pub const DEFAULT_AI_TIMEOUT: Duration = Duration::from_secs(300);

/// An `ai` action: the OpenAI-compatible API under the route's prefix.
#[derive(Debug, Clone)]
pub struct AiRoute {
    /// The whole upstream call of a complete reply (headers and body), and
    /// the wait for a stream's headers.
    pub timeout: Duration,
    /// The longest quiet spell within a stream (default: `timeout`).
    pub stream_idle_timeout: Duration,
    /// Relay the provider's `x-ratelimit-*` headers (off: they describe the
    /// gateway's provider account, not the client's limits).
    pub forward_provider_rate_limits: bool,
    /// How long Responses are kept for `previous_response_id` and `GET`
    /// (zero: not kept).
    pub response_retention: Duration,
}

#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
}

#[derive(Debug, Clone)]
pub enum ProviderKind {
    Mock {
        stream_delay: Duration,
    },
    OpenAi {
        base: UpstreamBase,
        api_key: Option<Secret>,
        /// Responses requests go to the server's `/responses` as sent
        /// (opt-in: `native_responses`), not through the canonical chat.
        native_responses: bool,
    },
    Azure {
        base: UpstreamBase,
        api_key: Secret,
        api_version: String,
        native_responses: bool,
    },
    Anthropic {
        base: UpstreamBase,
        api_key: Secret,
        version: String,
    },
    Gemini {
        base: UpstreamBase,
        api_key: Secret,
    },
    Bedrock {
        base: UpstreamBase,
        region: String,
        credentials: crate::aws::sigv4::AwsCredentials,
    },
}

/// The Azure OpenAI API version used when a provider sets none (GA).
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

#[derive(Debug, Clone)]
pub struct Model {
    /// The public name clients send as `model`.
    pub name: String,
    /// Index into [`Config::providers`].
    pub provider: usize,
    /// The model id sent upstream.
    pub upstream_model: String,
    /// Price override; else the built-in price of `upstream_model`.
    pub price: Option<Price>,
    /// Request defaults: OpenAI request fields added when the client did
    /// not set them (e.g. `temperature`, `max_tokens`, `dimensions`).
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Deployments tried in order when the one before is unavailable
    /// (unreachable, timed out, 5xx, 429 or 503) before any byte was sent.
    pub fallbacks: Vec<Deployment>,
    /// The most output tokens the model's deployments take: a chat asking
    /// for more (Claude Code asks for 64,000) is capped to it instead of
    /// being refused upstream.
    pub max_output_tokens: Option<u64>,
}

/// Another name a model is asked for: exact, or a pattern where `*`
/// matches any run of characters (`claude-*`). Lets a client that only
/// knows its vendor's model ids (a coding agent) run on any model.
#[derive(Debug, Clone)]
pub struct ModelAlias {
    pub pattern: String,
    /// Index into [`Config::models`].
    pub model: usize,
}

impl ModelAlias {
    fn is_wildcard(&self) -> bool {
        self.pattern.contains('*')
    }

    /// True when `name` matches the pattern.
    pub fn matches(&self, name: &str) -> bool {
        wildcard_match(&self.pattern, name)
    }
}

/// `*` matches any run of characters (none included); everything else
/// matches itself. Greedy with backtracking to the last `*`, linear for
/// the short patterns of a config.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((star_pi, star_ni)) = star {
            pi = star_pi + 1;
            ni = star_ni + 1;
            star = Some((star_pi, star_ni + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// The model serving `requested`: a model of that name, else an exact
/// alias, else the first matching wildcard alias.
pub fn resolve_model(models: &[Model], aliases: &[ModelAlias], requested: &str) -> Option<usize> {
    models
        .iter()
        .position(|m| m.name == requested)
        .or_else(|| {
            aliases
                .iter()
                .find(|a| !a.is_wildcard() && a.pattern == requested)
                .map(|a| a.model)
        })
        .or_else(|| {
            aliases
                .iter()
                .find(|a| a.is_wildcard() && a.matches(requested))
                .map(|a| a.model)
        })
}

/// A provider and the model id it is asked for.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Index into [`Config::providers`].
    pub provider: usize,
    pub upstream_model: String,
    pub price: Option<Price>,
    /// Request defaults, as [`Model::params`].
    pub params: serde_json::Map<String, serde_json::Value>,
}

/// Request fields a deployment's `params` may not set: they say what is
/// asked, not how.
const FIXED_REQUEST_FIELDS: [&str; 4] = ["model", "messages", "input", "stream"];

/// How long Responses are kept by default: OpenAI's own retention.
const DEFAULT_RESPONSE_RETENTION_S: u64 = 30 * 24 * 3600;
/// At most a year (the stores' TTLs take far longer, but a conversation
/// kept longer is almost certainly a mistake in the config).
const MAX_RESPONSE_RETENTION_S: u64 = 365 * 24 * 3600;

impl Validator<'_> {
    /// An `ai` action.
    pub(crate) fn ai_route(&mut self, path: &str, ai: RawAi) -> AiRoute {
        let timeout = self.timeout(
            &format!("{path}.ai.timeout_ms"),
            ai.timeout_ms,
            DEFAULT_AI_TIMEOUT,
        );
        let stream_idle_timeout = self.timeout(
            &format!("{path}.ai.stream_idle_timeout_ms"),
            ai.stream_idle_timeout_ms,
            timeout,
        );
        AiRoute {
            timeout,
            stream_idle_timeout,
            forward_provider_rate_limits: ai.forward_provider_rate_limits,
            response_retention: Duration::from_secs(
                ai.response_retention_s
                    .unwrap_or(DEFAULT_RESPONSE_RETENTION_S)
                    .min(MAX_RESPONSE_RETENTION_S),
            ),
        }
    }

    /// Providers (by name) and the models they serve.
    pub(crate) fn catalog(
        &mut self,
        raw_providers: impl IntoIterator<Item = (String, RawProvider)>,
        raw_models: Vec<RawModel>,
    ) -> (Vec<Provider>, Vec<Model>) {
        let mut providers = Vec::new();
        let mut provider_index = HashMap::new();
        for (name, raw_provider) in raw_providers {
            let path = format!("providers.{name}");
            if let Some(kind) = self.provider(&path, raw_provider) {
                provider_index.insert(name.clone(), providers.len());
                providers.push(Provider { name, kind });
            }
        }

        let mut models: Vec<Model> = Vec::new();
        for (i, raw_model) in raw_models.into_iter().enumerate() {
            let path = format!("models[{i}]");
            if raw_model.name.trim().is_empty() {
                self.issue(format!("{path}.name"), "must not be empty");
                continue;
            }
            if models.iter().any(|m| m.name == raw_model.name) {
                self.issue(
                    format!("{path}.name"),
                    format!("duplicate model name `{}`", raw_model.name),
                );
                continue;
            }
            let Some(&provider) = provider_index.get(&raw_model.provider) else {
                let known: Vec<&str> = provider_index.keys().map(String::as_str).collect();
                self.issue(
                    format!("{path}.provider"),
                    format!(
                        "unknown provider `{}` (defined: {})",
                        raw_model.provider,
                        join_or_none(&known)
                    ),
                );
                continue;
            };
            let mut fallbacks = Vec::new();
            for (j, raw_deployment) in raw_model.fallbacks.iter().enumerate() {
                match provider_index.get(&raw_deployment.provider) {
                    Some(&provider) => fallbacks.push(Deployment {
                        provider,
                        upstream_model: raw_deployment
                            .upstream_model
                            .clone()
                            .unwrap_or_else(|| raw_model.name.clone()),
                        price: raw_deployment.pricing.map(Price::from),
                        params: self.params(
                            &format!("{path}.fallbacks[{j}].params"),
                            &raw_deployment.params,
                        ),
                    }),
                    None => self.issue(
                        format!("{path}.fallbacks[{j}].provider"),
                        format!("unknown provider `{}`", raw_deployment.provider),
                    ),
                }
            }
            let params = self.params(&format!("{path}.params"), &raw_model.params);
            self.check_price(
                &format!("{path}.pricing"),
                raw_model.pricing.map(Price::from),
            );
            for (j, raw_deployment) in raw_model.fallbacks.iter().enumerate() {
                self.check_price(
                    &format!("{path}.fallbacks[{j}].pricing"),
                    raw_deployment.pricing.map(Price::from),
                );
            }
            let max_output_tokens = raw_model.max_output_tokens;
            if max_output_tokens.is_some_and(|n| n == 0 || n > crate::ai::request::MAX_TOKENS_CAP) {
                self.issue(
                    format!("{path}.max_output_tokens"),
                    format!(
                        "must be between 1 and {}",
                        crate::ai::request::MAX_TOKENS_CAP
                    ),
                );
            }
            models.push(Model {
                max_output_tokens,
                fallbacks,
                params,
                price: raw_model.pricing.map(Price::from),
                upstream_model: raw_model
                    .upstream_model
                    .unwrap_or_else(|| raw_model.name.clone()),
                name: raw_model.name,
                provider,
            });
        }
        (providers, models)
    }

    /// `model_aliases`: each names an existing model; an alias may not be a
    /// model's name (the model would always win) nor repeat another.
    pub(crate) fn model_aliases(
        &mut self,
        raw: Vec<RawModelAlias>,
        models: &[Model],
    ) -> Vec<ModelAlias> {
        let mut aliases: Vec<ModelAlias> = Vec::new();
        for (i, alias) in raw.into_iter().enumerate() {
            let path = format!("model_aliases[{i}]");
            if alias.name.trim().is_empty() {
                self.issue(format!("{path}.name"), "must not be empty");
                continue;
            }
            if models.iter().any(|m| m.name == alias.name) {
                self.issue(
                    format!("{path}.name"),
                    format!("`{}` is already a model's name", alias.name),
                );
                continue;
            }
            if aliases.iter().any(|a| a.pattern == alias.name) {
                self.issue(
                    format!("{path}.name"),
                    format!("duplicate alias `{}`", alias.name),
                );
                continue;
            }
            match models.iter().position(|m| m.name == alias.model) {
                Some(model) => aliases.push(ModelAlias {
                    pattern: alias.name,
                    model,
                }),
                None => {
                    let known: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
                    self.issue(
                        format!("{path}.model"),
                        format!(
                            "unknown model `{}` (defined: {})",
                            alias.model,
                            join_or_none(&known)
                        ),
                    );
                }
            }
        }
        aliases
    }

    pub(crate) fn provider(&mut self, path: &str, raw: RawProvider) -> Option<ProviderKind> {
        match raw {
            RawProvider::Mock { stream_delay_ms } => Some(ProviderKind::Mock {
                stream_delay: Duration::from_millis(stream_delay_ms.unwrap_or(0)),
            }),
            RawProvider::OpenAi {
                base_url,
                api_key,
                native_responses,
            } => {
                let base_path = format!("{path}.base_url");
                let base = self.interpolate(&base_path, &base_url).and_then(|url| {
                    UpstreamBase::parse(&url)
                        .map_err(|m| self.issue(&base_path, m))
                        .ok()
                });
                let api_key = match api_key {
                    Some(reference) => Some(self.secret(&format!("{path}.api_key"), &reference)?),
                    None => None,
                };
                Some(ProviderKind::OpenAi {
                    base: base?,
                    api_key,
                    native_responses,
                })
            }
            RawProvider::Azure {
                base_url,
                api_key,
                api_version,
                native_responses,
            } => {
                let base_path = format!("{path}.base_url");
                let base = self.interpolate(&base_path, &base_url).and_then(|url| {
                    UpstreamBase::parse(&url)
                        .map_err(|m| self.issue(&base_path, m))
                        .ok()
                });
                let api_key = self.secret(&format!("{path}.api_key"), &api_key);
                Some(ProviderKind::Azure {
                    base: base?,
                    api_key: api_key?,
                    api_version: api_version
                        .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_owned()),
                    native_responses,
                })
            }
            RawProvider::Mistral { base_url, api_key } => {
                let base_path = format!("{path}.base_url");
                let url = base_url.unwrap_or_else(|| "https://api.mistral.ai/v1".to_owned());
                let base = self.interpolate(&base_path, &url).and_then(|url| {
                    UpstreamBase::parse(&url)
                        .map_err(|m| self.issue(&base_path, m))
                        .ok()
                });
                let api_key = self.secret(&format!("{path}.api_key"), &api_key);
                Some(ProviderKind::OpenAi {
                    base: base?,
                    api_key: Some(api_key?),
                    native_responses: false,
                })
            }
            RawProvider::Gemini { base_url, api_key } => {
                let base_path = format!("{path}.base_url");
                let url = base_url.unwrap_or_else(|| {
                    "https://generativelanguage.googleapis.com/v1beta".to_owned()
                });
                let base = self.interpolate(&base_path, &url).and_then(|url| {
                    UpstreamBase::parse(&url)
                        .map_err(|m| self.issue(&base_path, m))
                        .ok()
                });
                let api_key = self.secret(&format!("{path}.api_key"), &api_key);
                Some(ProviderKind::Gemini {
                    base: base?,
                    api_key: api_key?,
                })
            }
            RawProvider::Bedrock {
                region,
                base_url,
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                let region_path = format!("{path}.region");
                let region = self.interpolate(&region_path, &region).and_then(|region| {
                    let valid = !region.is_empty()
                        && region
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                    if valid {
                        Some(region)
                    } else {
                        self.issue(
                            &region_path,
                            format!("`{region}` is not an AWS region name"),
                        );
                        None
                    }
                });
                let base_path = format!("{path}.base_url");
                let base = region.as_ref().and_then(|region| {
                    let url = base_url.unwrap_or_else(|| {
                        format!("https://bedrock-runtime.{region}.amazonaws.com")
                    });
                    self.interpolate(&base_path, &url).and_then(|url| {
                        UpstreamBase::parse(&url)
                            .map_err(|m| self.issue(&base_path, m))
                            .ok()
                    })
                });
                let access_key_id = self.secret(
                    &format!("{path}.access_key_id"),
                    access_key_id
                        .as_deref()
                        .unwrap_or("${env:AWS_ACCESS_KEY_ID}"),
                );
                let secret_access_key = self.secret(
                    &format!("{path}.secret_access_key"),
                    secret_access_key
                        .as_deref()
                        .unwrap_or("${env:AWS_SECRET_ACCESS_KEY}"),
                );
                // The default session token is optional: long-term keys have none.
                let session_token = match session_token {
                    Some(reference) => {
                        Some(self.secret(&format!("{path}.session_token"), &reference)?)
                    }
                    None => (self.env)("AWS_SESSION_TOKEN")
                        .filter(|token| !token.is_empty())
                        .map(Secret::new),
                };
                Some(ProviderKind::Bedrock {
                    base: base?,
                    region: region?,
                    credentials: crate::aws::sigv4::AwsCredentials {
                        access_key_id: access_key_id?,
                        secret_access_key: secret_access_key?,
                        session_token,
                    },
                })
            }
            RawProvider::Anthropic {
                base_url,
                api_key,
                anthropic_version,
            } => {
                let base_path = format!("{path}.base_url");
                let url = base_url.unwrap_or_else(|| "https://api.anthropic.com/v1".to_owned());
                let base = self.interpolate(&base_path, &url).and_then(|url| {
                    UpstreamBase::parse(&url)
                        .map_err(|m| self.issue(&base_path, m))
                        .ok()
                });
                let api_key = self.secret(&format!("{path}.api_key"), &api_key);
                Some(ProviderKind::Anthropic {
                    base: base?,
                    api_key: api_key?,
                    version: anthropic_version.unwrap_or_else(|| {
                        crate::ai::providers::anthropic::ANTHROPIC_VERSION.to_owned()
                    }),
                })
            }
        }
    }

    /// Prices are finite and not negative (a negative price would make
    /// spend limits free).
    pub(crate) fn check_price(&mut self, path: &str, price: Option<Price>) {
        let Some(price) = price else { return };
        for (field, value) in [
            ("input", price.input),
            ("cached_input", price.cached_input),
            ("output", price.output),
        ] {
            if !value.is_finite() || value < 0.0 {
                self.issue(
                    format!("{path}.{field}"),
                    "must be a non-negative number of USD per million tokens",
                );
            }
        }
    }

    /// A deployment's request defaults, without the fields that say what is
    /// asked.
    pub(crate) fn params(
        &mut self,
        path: &str,
        raw: &serde_json::Map<String, serde_json::Value>,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut params = raw.clone();
        for field in FIXED_REQUEST_FIELDS {
            if params.remove(field).is_some() {
                self.issue(
                    format!("{path}.{field}"),
                    "a deployment may set request defaults, not what is asked",
                );
            }
        }
        params
    }
}
