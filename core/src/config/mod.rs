//! Configuration: one YAML file, parsed into raw structs, then validated into
//! the typed [`Config`] the pipeline uses, with every default applied and no
//! optional field left to check at request time.
//!
//! Errors name the path of the offending value (`routes[2].proxy.url:
//! relative URL without a base`). Secrets never appear in the file: fields
//! that hold credentials accept only `${env:NAME}` references, resolved from
//! the runtime's environment (Lambda environment, Worker secrets) at load.

mod raw;
mod yaml;

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{Method, Uri};

use crate::auth::jwt::{self, JwksSource, JwtIssuer, VerifyKey};
use crate::auth::store::{valid_consumer_id, Consumer};
use crate::auth::{AdminConfig, AuthConfig, RouteAuth};
use crate::quota::{Algorithm, FailMode, Limit, Plan, Scope, Unit};
use crate::routing::{HostPattern, PathPattern, PathTemplate, RouteMatcher};
pub use raw::RawConfig;

/// Default request body limit when neither the route nor `server` sets one.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Default time a proxy route waits for upstream response headers.
pub const DEFAULT_PROXY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time an AI route waits for upstream response headers (long
/// non-streamed completions need minutes).
pub const DEFAULT_AI_TIMEOUT: Duration = Duration::from_secs(300);

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub routes: Vec<Route>,
    pub providers: Vec<Provider>,
    pub models: Vec<Model>,
    pub auth: AuthConfig,
    pub admin: Option<AdminConfig>,
    /// Consumers declared in the config (more can be created at run time).
    pub consumers: Vec<Consumer>,
    /// Quota plans.
    pub plans: Vec<Plan>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatcher,
    pub max_body_bytes: usize,
    /// `None`: the route is public.
    pub auth: Option<RouteAuth>,
    /// The route's own plan (index into [`Config::plans`]).
    pub plan: Option<usize>,
    pub action: RouteAction,
}

#[derive(Debug, Clone)]
pub enum RouteAction {
    Proxy(ProxyRoute),
    Ai(AiRoute),
}

#[derive(Debug, Clone)]
pub struct ProxyRoute {
    pub upstream: UpstreamBase,
    pub rewrite: PathRewrite,
    pub timeout: Duration,
}

/// How the matched path becomes the upstream path (appended to the
/// upstream URL's own path).
#[derive(Debug, Clone)]
pub enum PathRewrite {
    /// Forward the path unchanged.
    Keep,
    /// Drop the matched `path_prefix`.
    StripPrefix,
    /// Render a template with the captured parameters.
    Template(PathTemplate),
}

#[derive(Debug, Clone)]
pub struct AiRoute {
    pub timeout: Duration,
}

/// `scheme://authority/base/path` of an upstream, base path without a
/// trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamBase {
    pub scheme: Scheme,
    pub authority: Authority,
    pub base_path: String,
}

impl UpstreamBase {
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("invalid URL `{url}`: {e}"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(format!("relative URL without a base: `{url}` (write `http://host/...` or `https://host/...`)"));
        };
        if scheme != &Scheme::HTTP && scheme != &Scheme::HTTPS {
            return Err(format!(
                "unsupported scheme `{scheme}` in `{url}`: use http or https"
            ));
        }
        if uri.query().is_some() {
            return Err(format!(
                "`{url}` has a query string; upstream URLs take a path only"
            ));
        }
        if authority.as_str().contains('@') {
            return Err(
                "credentials in the URL are not allowed; use headers with `${env:NAME}` references"
                    .into(),
            );
        }
        Ok(Self {
            scheme: scheme.clone(),
            authority: authority.clone(),
            base_path: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The full upstream URI for `path` (starting with `/`) and `query`.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, http::Error> {
        let mut path_and_query = String::with_capacity(self.base_path.len() + path.len() + 1);
        path_and_query.push_str(&self.base_path);
        path_and_query.push_str(path);
        if path_and_query.is_empty() {
            path_and_query.push('/');
        }
        if let Some(query) = query {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
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
    },
    Azure {
        base: UpstreamBase,
        api_key: Secret,
        api_version: String,
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
    pub price: Option<crate::ai::pricing::Price>,
    /// Request defaults: OpenAI request fields added when the client did
    /// not set them (e.g. `temperature`, `max_tokens`, `dimensions`).
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Deployments tried in order when the one before is unavailable
    /// (unreachable, timed out, 5xx, 429 or 503) before any byte was sent.
    pub fallbacks: Vec<Deployment>,
}

/// A provider and the model id it is asked for.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Index into [`Config::providers`].
    pub provider: usize,
    pub upstream_model: String,
    pub price: Option<crate::ai::pricing::Price>,
    /// Request defaults, as [`Model::params`].
    pub params: serde_json::Map<String, serde_json::Value>,
}

/// Request fields a deployment's `params` may not set: they say what is
/// asked, not how.
const FIXED_REQUEST_FIELDS: [&str; 4] = ["model", "messages", "input", "stream"];

/// A resolved secret. `Debug` and `Display` never print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value read from the environment or a secret store.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One problem in the config, with the path of the value it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a config, one per line.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid gateway config:")?;
        for issue in &self.issues {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Parses and validates a YAML config; `env` resolves `${env:NAME}`.
    pub fn from_yaml(
        yaml: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let raw: RawConfig = yaml::parse(yaml)?;
        Self::validate(raw, &env)
    }

    /// Validates raw config; collects every issue rather than stopping at the first.
    pub fn validate(
        raw: RawConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut v = Validator {
            env,
            issues: Vec::new(),
        };
        let config = v.config(raw);
        if v.issues.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { issues: v.issues })
        }
    }

    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }

    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.name == name)
    }
}

struct Validator<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    issues: Vec<ConfigIssue>,
}

impl Validator<'_> {
    fn issue(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
        });
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let default_body = self.positive(
            "server.max_body_bytes",
            raw.server.max_body_bytes,
            DEFAULT_MAX_BODY_BYTES,
        );

        let mut providers = Vec::new();
        let mut provider_index = HashMap::new();
        for (name, raw_provider) in raw.providers {
            let path = format!("providers.{name}");
            if let Some(kind) = self.provider(&path, raw_provider) {
                provider_index.insert(name.clone(), providers.len());
                providers.push(Provider { name, kind });
            }
        }

        let mut models: Vec<Model> = Vec::new();
        for (i, raw_model) in raw.models.into_iter().enumerate() {
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
                        price: raw_deployment.pricing,
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
            self.check_price(&format!("{path}.pricing"), raw_model.pricing);
            for (j, raw_deployment) in raw_model.fallbacks.iter().enumerate() {
                self.check_price(
                    &format!("{path}.fallbacks[{j}].pricing"),
                    raw_deployment.pricing,
                );
            }
            models.push(Model {
                fallbacks,
                params,
                price: raw_model.pricing,
                upstream_model: raw_model
                    .upstream_model
                    .unwrap_or_else(|| raw_model.name.clone()),
                name: raw_model.name,
                provider,
            });
        }

        let auth = self.auth(raw.auth);
        let admin = raw.admin.and_then(|admin| self.admin(admin));
        let mut plans: Vec<Plan> = Vec::new();
        for (name, raw_plan) in raw.plans {
            if let Some(plan) = self.plan(&format!("plans.{name}"), name, raw_plan) {
                plans.push(plan);
            }
        }
        let plan_names: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
        self.check_spend_pricing(&plans, &models);

        let mut routes: Vec<Route> = Vec::new();
        for (i, raw_route) in raw.routes.into_iter().enumerate() {
            let path = format!("routes[{i}]");
            let name = raw_route
                .name
                .clone()
                .unwrap_or_else(|| format!("route-{i}"));
            if routes.iter().any(|r| r.name == name) {
                self.issue(
                    format!("{path}.name"),
                    format!("duplicate route name `{name}`"),
                );
            }
            if let Some(route) =
                self.route(&path, name, raw_route, default_body, &auth, &plan_names)
            {
                routes.push(route);
            }
        }
        if routes.is_empty() && self.issues.is_empty() {
            self.issue("routes", "at least one route is required");
        }

        let mut consumers: Vec<Consumer> = Vec::new();
        for (i, raw) in raw.consumers.into_iter().enumerate() {
            let path = format!("consumers[{i}]");
            if !valid_consumer_id(&raw.id) {
                self.issue(
                    format!("{path}.id"),
                    "1-64 characters of letters, digits, `.`, `_` and `-`",
                );
                continue;
            }
            if consumers.iter().any(|c| c.id == raw.id) {
                self.issue(
                    format!("{path}.id"),
                    format!("duplicate consumer `{}`", raw.id),
                );
                continue;
            }
            if let Some(plan) = raw.plan.as_ref().filter(|p| !plan_names.contains(p)) {
                let defined: Vec<&str> = plan_names.iter().map(String::as_str).collect();
                self.issue(
                    format!("{path}.plan"),
                    format!(
                        "unknown plan `{plan}` (defined: {})",
                        join_or_none(&defined)
                    ),
                );
            }
            for route in raw.allowed_routes.iter().flatten() {
                if !routes.iter().any(|r| &r.name == route) {
                    self.issue(
                        format!("{path}.allowed_routes"),
                        format!("unknown route `{route}`"),
                    );
                }
            }
            for model in raw.allowed_models.iter().flatten() {
                if !models.iter().any(|m| &m.name == model) {
                    self.issue(
                        format!("{path}.allowed_models"),
                        format!("unknown model `{model}`"),
                    );
                }
            }
            consumers.push(Consumer {
                id: raw.id,
                metadata: raw.metadata,
                allowed_routes: raw.allowed_routes,
                allowed_models: raw.allowed_models,
                plan: raw.plan,
            });
        }

        Config {
            routes,
            providers,
            models,
            auth,
            admin,
            consumers,
            plans,
        }
    }

    fn auth(&mut self, raw: raw::RawAuth) -> AuthConfig {
        let defaults = AuthConfig::default();
        let ttl_ms = self.positive("auth.api_keys.cache_ttl_ms", raw.api_keys.cache_ttl_ms, 0);
        let key_cache_ttl = if ttl_ms == 0 {
            defaults.key_cache_ttl
        } else {
            Duration::from_millis(ttl_ms)
        };
        let key_cache_size = raw.api_keys.cache_size.unwrap_or(defaults.key_cache_size);
        let mut issuers = Vec::new();
        for (name, raw_issuer) in raw.jwt {
            let path = format!("auth.jwt.{name}");
            if let Some(issuer) = self.jwt_issuer(&path, name, raw_issuer) {
                issuers.push(issuer);
            }
        }
        AuthConfig {
            key_cache_ttl,
            key_cache_size,
            issuers,
        }
    }

    fn jwt_issuer(
        &mut self,
        path: &str,
        name: String,
        raw: raw::RawJwtIssuer,
    ) -> Option<JwtIssuer> {
        let mut keys = Vec::new();
        for (i, raw_key) in raw.keys.into_iter().enumerate() {
            if let Some(key) = self.jwt_key(&format!("{path}.keys[{i}]"), raw_key) {
                keys.push(key);
            }
        }
        let jwks = match raw.jwks_url {
            Some(url) => {
                let url_path = format!("{path}.jwks_url");
                let url = self.interpolate(&url_path, &url)?;
                let base = UpstreamBase::parse(&url)
                    .map_err(|m| self.issue(&url_path, m))
                    .ok()?;
                let uri = base
                    .uri("", None)
                    .map_err(|e| self.issue(&url_path, e.to_string()))
                    .ok()?;
                Some(JwksSource {
                    url: uri,
                    cache_ttl: self.timeout(
                        &format!("{path}.jwks_cache_ttl_ms"),
                        raw.jwks_cache_ttl_ms,
                        Duration::from_secs(600),
                    ),
                    refetch_interval: self.timeout(
                        &format!("{path}.jwks_refetch_interval_ms"),
                        raw.jwks_refetch_interval_ms,
                        Duration::from_secs(30),
                    ),
                })
            }
            None => None,
        };
        if keys.is_empty() && jwks.is_none() {
            self.issue(path, "needs `keys` or `jwks_url`");
            return None;
        }
        Some(JwtIssuer {
            name,
            issuer: raw.issuer,
            audience: raw.audience.unwrap_or_default(),
            leeway_s: raw.leeway_s.unwrap_or(30),
            consumer_claim: raw.consumer_claim.unwrap_or_else(|| "sub".into()),
            scopes_claim: raw.scopes_claim.unwrap_or_else(|| "scope".into()),
            keys,
            jwks,
        })
    }

    fn jwt_key(&mut self, path: &str, raw: raw::RawJwtKey) -> Option<VerifyKey> {
        use jsonwebtoken::{Algorithm, DecodingKey};
        let alg = jwt::parse_algorithm(&raw.alg)
            .map_err(|m| self.issue(format!("{path}.alg"), m))
            .ok()?;
        let hmac = matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
        let key = match (raw.secret, raw.pem, raw.jwk) {
            (Some(secret), None, None) if hmac => {
                let secret = self.secret(&format!("{path}.secret"), &secret)?;
                DecodingKey::from_secret(secret.expose().as_bytes())
            }
            (None, Some(pem), None) if !hmac => {
                let pem_path = format!("{path}.pem");
                let pem = self.interpolate(&pem_path, &pem)?;
                let parsed = match alg {
                    Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem.as_bytes()),
                    Algorithm::EdDSA => DecodingKey::from_ed_pem(pem.as_bytes()),
                    _ => DecodingKey::from_rsa_pem(pem.as_bytes()),
                };
                parsed
                    .map_err(|e| {
                        self.issue(&pem_path, format!("not a {alg:?} public key in PEM: {e}"))
                    })
                    .ok()?
            }
            (None, None, Some(jwk)) if !hmac => {
                let jwk_path = format!("{path}.jwk");
                let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk)
                    .map_err(|e| self.issue(&jwk_path, format!("not a JWK: {e}")))
                    .ok()?;
                if jwt::jwk_algorithm(&jwk).is_some_and(|a| a != alg) {
                    self.issue(
                        &jwk_path,
                        format!("the JWK's algorithm differs from `alg: {}`", raw.alg),
                    );
                    return None;
                }
                DecodingKey::from_jwk(&jwk)
                    .map_err(|e| self.issue(&jwk_path, format!("unusable JWK: {e}")))
                    .ok()?
            }
            _ if hmac => {
                self.issue(
                    path,
                    format!("{} keys take exactly `secret: ${{env:NAME}}`", raw.alg),
                );
                return None;
            }
            _ => {
                self.issue(
                    path,
                    format!("{} keys take exactly one of `pem` or `jwk`", raw.alg),
                );
                return None;
            }
        };
        Some(VerifyKey {
            kid: raw.kid,
            alg,
            key,
        })
    }

    fn plan(&mut self, path: &str, name: String, raw: raw::RawPlan) -> Option<Plan> {
        let on_store_error = match raw.on_store_error.as_deref() {
            None | Some("fail_closed") => FailMode::Closed,
            Some("fail_open") => FailMode::Open,
            Some(other) => {
                self.issue(
                    format!("{path}.on_store_error"),
                    format!("`{other}`: use fail_open or fail_closed"),
                );
                FailMode::Closed
            }
        };
        let store_timeout = self.timeout(
            &format!("{path}.store_timeout_ms"),
            raw.store_timeout_ms,
            Duration::from_millis(1000),
        );
        let mut limits: Vec<Limit> = Vec::new();
        for (i, raw_limit) in raw.limits.into_iter().enumerate() {
            let limit_path = format!("{path}.limits[{i}]");
            let name = raw_limit
                .name
                .clone()
                .unwrap_or_else(|| format!("limit-{i}"));
            if limits.iter().any(|l| l.name == name) {
                self.issue(
                    format!("{limit_path}.name"),
                    format!("duplicate limit `{name}`"),
                );
                continue;
            }
            if let Some(limit) = self.limit(&limit_path, name, raw_limit) {
                limits.push(limit);
            }
        }
        Some(Plan {
            name,
            limits,
            on_store_error,
            store_timeout,
            reserve_completion_tokens: raw.reserve_completion_tokens.unwrap_or(4096),
        })
    }

    /// Prices are finite and not negative (a negative price would make
    /// spend limits free).
    fn check_price(&mut self, path: &str, price: Option<crate::ai::pricing::Price>) {
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
    fn params(
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

    /// Spend limits charge every request its cost: each deployment of every
    /// model needs a price (its own `pricing` or a built-in one).
    fn check_spend_pricing(&mut self, plans: &[Plan], models: &[Model]) {
        let Some(plan) = plans
            .iter()
            .find(|p| p.limits.iter().any(|l| l.unit == Unit::SpendMicroUsd))
        else {
            return;
        };
        for (i, model) in models.iter().enumerate() {
            let deployments =
                std::iter::once((&model.upstream_model, model.price, format!("models[{i}]")))
                    .chain(model.fallbacks.iter().enumerate().map(|(j, d)| {
                        (
                            &d.upstream_model,
                            d.price,
                            format!("models[{i}].fallbacks[{j}]"),
                        )
                    }));
            for (upstream_model, price, path) in deployments {
                if price.is_none() && crate::ai::pricing::builtin_price(upstream_model).is_none() {
                    self.issue(
                        format!("{path}.pricing"),
                        format!(
                            "`{upstream_model}` has no built-in price and plan `{}` has a spend limit: set `pricing`",
                            plan.name
                        ),
                    );
                }
            }
        }
    }

    fn limit(&mut self, path: &str, name: String, raw: raw::RawLimit) -> Option<Limit> {
        let spend_micro_usd = match raw.spend_usd {
            Some(usd) if usd.is_finite() && usd >= 0.000_001 => {
                Some((usd * 1_000_000.0).round() as u64)
            }
            Some(_) => {
                self.issue(
                    format!("{path}.spend_usd"),
                    "must be a positive number of US dollars, at least 0.000001 (one micro-dollar)",
                );
                return None;
            }
            None => None,
        };
        let units: Vec<(Unit, u64)> = [
            (Unit::Requests, raw.requests),
            (Unit::Tokens, raw.tokens),
            (Unit::PromptTokens, raw.prompt_tokens),
            (Unit::CompletionTokens, raw.completion_tokens),
            (Unit::SpendMicroUsd, spend_micro_usd),
        ]
        .into_iter()
        .filter_map(|(unit, max)| max.map(|m| (unit, m)))
        .collect();
        let [(unit, max)] = units.as_slice() else {
            self.issue(
                path,
                "set exactly one of `requests`, `tokens`, `prompt_tokens`, `completion_tokens`, `spend_usd`",
            );
            return None;
        };
        if raw.window_s == 0 {
            self.issue(format!("{path}.window_s"), "must be greater than 0");
            return None;
        }
        let scope = match raw.scope.as_deref().unwrap_or("consumer") {
            "consumer" => Scope::Consumer,
            "consumer_route" => Scope::ConsumerRoute,
            "consumer_model" => Scope::ConsumerModel,
            "ip" => Scope::Ip,
            other => {
                self.issue(
                    format!("{path}.scope"),
                    format!("`{other}`: use consumer, consumer_route, consumer_model or ip"),
                );
                return None;
            }
        };
        let algorithm = match raw.algorithm.as_deref().unwrap_or("sliding_window") {
            "sliding_window" => Algorithm::SlidingWindow,
            "fixed_window" => Algorithm::FixedWindow,
            other => {
                self.issue(
                    format!("{path}.algorithm"),
                    format!("`{other}`: use sliding_window or fixed_window"),
                );
                return None;
            }
        };
        Some(Limit {
            name,
            scope,
            unit: *unit,
            window_ms: raw.window_s.saturating_mul(1000),
            max: *max,
            algorithm,
        })
    }

    fn admin(&mut self, raw: raw::RawAdmin) -> Option<AdminConfig> {
        let prefix = PathPattern::prefix(&raw.path_prefix)
            .map_err(|m| self.issue("admin.path_prefix", m))
            .ok()?;
        let PathPattern::Prefix(path_prefix) = prefix else {
            return None;
        };
        if path_prefix.is_empty() {
            self.issue(
                "admin.path_prefix",
                "must not be `/`: the admin API needs its own prefix, e.g. `/admin`",
            );
            return None;
        }
        let hash = self
            .interpolate("admin.key_sha256", &raw.key_sha256)?
            .trim()
            .to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.issue("admin.key_sha256", "must be the hex SHA-256 of the admin key (64 hex digits), e.g. from `${env:GATEWAY_ADMIN_KEY_SHA256}`");
            return None;
        }
        Some(AdminConfig {
            path_prefix,
            key_sha256: hash,
        })
    }

    fn route_auth(
        &mut self,
        path: &str,
        raw: raw::RawRouteAuth,
        auth: &AuthConfig,
    ) -> Option<RouteAuth> {
        if raw.methods.is_empty() {
            self.issue(format!("{path}.methods"), "list at least one of `api_key`, `jwt`, `jwt:<issuer>` (omit `auth` for a public route)");
            return None;
        }
        let mut policy = RouteAuth {
            required_scopes: raw.required_scopes,
            forward_consumer_id: raw.forward_consumer_id,
            forward_credential: raw.forward_credential,
            ..RouteAuth::default()
        };
        for (i, method) in raw.methods.iter().enumerate() {
            let method_path = format!("{path}.methods[{i}]");
            match method.as_str() {
                "api_key" => policy.api_key = true,
                "jwt" if auth.issuers.is_empty() => {
                    self.issue(method_path, "no JWT issuer is configured under `auth.jwt`")
                }
                "jwt" => policy.jwt_issuers.extend(0..auth.issuers.len()),
                other => match other.strip_prefix("jwt:") {
                    Some(name) => match auth.issuers.iter().position(|i| i.name == name) {
                        Some(index) => policy.jwt_issuers.push(index),
                        None => self.issue(method_path, format!("unknown JWT issuer `{name}`")),
                    },
                    None => self.issue(
                        method_path,
                        format!("unknown auth method `{other}` (api_key, jwt, jwt:<issuer>)"),
                    ),
                },
            }
        }
        policy.jwt_issuers.sort_unstable();
        policy.jwt_issuers.dedup();
        Some(policy)
    }

    fn provider(&mut self, path: &str, raw: raw::RawProvider) -> Option<ProviderKind> {
        match raw {
            raw::RawProvider::Mock { stream_delay_ms } => Some(ProviderKind::Mock {
                stream_delay: Duration::from_millis(stream_delay_ms.unwrap_or(0)),
            }),
            raw::RawProvider::OpenAi { base_url, api_key } => {
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
                })
            }
            raw::RawProvider::Azure {
                base_url,
                api_key,
                api_version,
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
                })
            }
            raw::RawProvider::Mistral { base_url, api_key } => {
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
                })
            }
            raw::RawProvider::Gemini { base_url, api_key } => {
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
            raw::RawProvider::Bedrock {
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
                        .map(Secret),
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
            raw::RawProvider::Anthropic {
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

    fn route(
        &mut self,
        path: &str,
        name: String,
        raw: raw::RawRoute,
        default_body: usize,
        auth: &AuthConfig,
        plan_names: &[String],
    ) -> Option<Route> {
        let plan = match &raw.plan {
            Some(name) => match plan_names.iter().position(|p| p == name) {
                Some(index) => Some(index),
                None => {
                    self.issue(format!("{path}.plan"), format!("unknown plan `{name}`"));
                    return None;
                }
            },
            None => None,
        };
        let route_auth = match raw.auth {
            Some(raw_auth) => Some(self.route_auth(&format!("{path}.auth"), raw_auth, auth)?),
            None => None,
        };
        let matcher = self.matcher(&format!("{path}.match"), &raw.matcher);
        let max_body_bytes = self.positive(
            &format!("{path}.max_body_bytes"),
            raw.max_body_bytes,
            default_body,
        );
        let action = match (raw.proxy, raw.ai) {
            (Some(proxy), None) => {
                let rewrite = self.rewrite(path, &proxy, matcher.as_ref().map(|m| &m.path));
                let url_path = format!("{path}.proxy.url");
                let upstream = self.interpolate(&url_path, &proxy.url).and_then(|url| {
                    UpstreamBase::parse(&url)
                        .map_err(|m| self.issue(&url_path, m))
                        .ok()
                });
                let timeout = self.timeout(
                    &format!("{path}.proxy.timeout_ms"),
                    proxy.timeout_ms,
                    DEFAULT_PROXY_TIMEOUT,
                );
                Some(RouteAction::Proxy(ProxyRoute {
                    upstream: upstream?,
                    rewrite: rewrite?,
                    timeout,
                }))
            }
            (None, Some(ai)) => {
                if matches!(
                    matcher.as_ref().map(|m| &m.path),
                    Some(PathPattern::Template(_))
                ) {
                    self.issue(
                        format!("{path}.match"),
                        "an `ai` route serves several endpoints under a prefix: use `path_prefix` (e.g. `/v1`), not `path`",
                    );
                }
                let timeout = self.timeout(
                    &format!("{path}.ai.timeout_ms"),
                    ai.timeout_ms,
                    DEFAULT_AI_TIMEOUT,
                );
                Some(RouteAction::Ai(AiRoute { timeout }))
            }
            (Some(_), Some(_)) => {
                self.issue(path, "a route has exactly one of `proxy` or `ai`, not both");
                None
            }
            (None, None) => {
                self.issue(path, "a route needs an action: `proxy` (REST upstream) or `ai` (OpenAI-compatible API)");
                None
            }
        };
        Some(Route {
            name,
            matcher: matcher?,
            max_body_bytes,
            auth: route_auth,
            plan,
            action: action?,
        })
    }

    fn matcher(&mut self, path: &str, raw: &raw::RawMatch) -> Option<RouteMatcher> {
        let host = match &raw.host {
            Some(host) => match HostPattern::parse(host) {
                Ok(h) => Some(h),
                Err(m) => {
                    self.issue(format!("{path}.host"), m);
                    return None;
                }
            },
            None => None,
        };
        let methods = match &raw.methods {
            Some(list) if list.is_empty() => {
                self.issue(
                    format!("{path}.methods"),
                    "must list at least one method (omit it to allow all)",
                );
                return None;
            }
            Some(list) => {
                let mut methods = Vec::new();
                for (i, m) in list.iter().enumerate() {
                    match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                        Ok(method) => methods.push(method),
                        Err(_) => self.issue(
                            format!("{path}.methods[{i}]"),
                            format!("invalid HTTP method `{m}`"),
                        ),
                    }
                }
                Some(methods)
            }
            None => None,
        };
        let pattern = match (&raw.path, &raw.path_prefix) {
            (Some(p), None) => PathTemplate::parse(p)
                .map(PathPattern::Template)
                .map_err(|m| self.issue(format!("{path}.path"), m))
                .ok()?,
            (None, Some(p)) => PathPattern::prefix(p)
                .map_err(|m| self.issue(format!("{path}.path_prefix"), m))
                .ok()?,
            (Some(_), Some(_)) => {
                self.issue(path, "set either `path` or `path_prefix`, not both");
                return None;
            }
            (None, None) => {
                self.issue(path, "set `path` (exact, with `{params}`) or `path_prefix`");
                return None;
            }
        };
        Some(RouteMatcher {
            host,
            methods,
            path: pattern,
        })
    }

    fn rewrite(
        &mut self,
        path: &str,
        proxy: &raw::RawProxy,
        pattern: Option<&PathPattern>,
    ) -> Option<PathRewrite> {
        match (&proxy.rewrite, proxy.strip_prefix) {
            (Some(_), true) => {
                self.issue(
                    format!("{path}.proxy"),
                    "set either `rewrite` or `strip_prefix`, not both",
                );
                None
            }
            (None, true) => {
                if matches!(pattern, Some(PathPattern::Template(_))) {
                    self.issue(
                        format!("{path}.proxy.strip_prefix"),
                        "needs `match.path_prefix`",
                    );
                    return None;
                }
                Some(PathRewrite::StripPrefix)
            }
            (Some(template), false) => {
                let rewrite_path = format!("{path}.proxy.rewrite");
                let template = PathTemplate::parse(template)
                    .map_err(|m| self.issue(&rewrite_path, m))
                    .ok()?;
                let captured: Vec<&str> = match pattern {
                    Some(PathPattern::Template(t)) => t.param_names().collect(),
                    _ => Vec::new(),
                };
                for name in template.param_names() {
                    if !captured.contains(&name) {
                        self.issue(
                            &rewrite_path,
                            format!(
                                "`{{{name}}}` is not captured by `match.path` (captured: {})",
                                join_or_none(&captured)
                            ),
                        );
                        return None;
                    }
                }
                Some(PathRewrite::Template(template))
            }
            (None, false) => Some(PathRewrite::Keep),
        }
    }

    /// A number that must be greater than zero when it is set.
    fn positive<T: Copy + PartialEq + From<u8>>(
        &mut self,
        path: &str,
        value: Option<T>,
        default: T,
    ) -> T {
        match value {
            Some(n) if n == T::from(0) => {
                self.issue(path, "must be greater than 0");
                default
            }
            Some(n) => n,
            None => default,
        }
    }

    fn timeout(&mut self, path: &str, value: Option<u64>, default: Duration) -> Duration {
        match self.positive(path, value, 0) {
            0 => default,
            ms => Duration::from_millis(ms),
        }
    }

    /// Replaces every `${env:NAME}` in `value`.
    fn interpolate(&mut self, path: &str, value: &str) -> Option<String> {
        match interpolate(value, self.env) {
            Ok(s) => Some(s),
            Err(m) => {
                self.issue(path, m);
                None
            }
        }
    }

    /// A credential field: must be exactly one `${env:NAME}` reference.
    fn secret(&mut self, path: &str, value: &str) -> Option<Secret> {
        let Some(name) = value
            .strip_prefix("${env:")
            .and_then(|v| v.strip_suffix('}'))
        else {
            self.issue(
                path,
                "secrets are never written in the config: use a reference like `${env:OPENAI_API_KEY}`",
            );
            return None;
        };
        match (self.env)(name) {
            Some(secret) if !secret.is_empty() => Some(Secret(secret)),
            _ => {
                self.issue(path, format!("environment variable `{name}` is not set"));
                None
            }
        }
    }
}

/// Replaces `${env:NAME}` references; names are `[A-Za-z0-9_]+`.
pub fn interpolate(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unterminated `${{` in `{value}`"));
        };
        let reference = &after[..end];
        let Some(name) = reference.strip_prefix("env:") else {
            return Err(format!(
                "unknown reference `${{{reference}}}`: only `${{env:NAME}}` is supported"
            ));
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid environment variable name `{name}`"));
        }
        match env(name) {
            Some(v) => out.push_str(&v),
            None => return Err(format!("environment variable `{name}` is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn join_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The annotated example config shipped in the repo (`config/gateway.example.yaml`).
pub const EXAMPLE_CONFIG: &str = include_str!("../../../config/gateway.example.yaml");

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn errors(yaml: &str) -> Vec<String> {
        Config::from_yaml(yaml, no_env)
            .unwrap_err()
            .issues
            .into_iter()
            .map(|i| i.to_string())
            .collect()
    }

    #[test]
    fn example_config_is_valid() {
        let config = Config::from_yaml(EXAMPLE_CONFIG, no_env).unwrap();
        assert!(config.model("mock-gpt").is_some());
    }

    #[test]
    fn relative_upstream_url_names_its_path() {
        let yaml = r"
routes:
  - match: { path_prefix: /a }
    proxy: { url: http://a.example }
  - match: { path_prefix: /b }
    proxy: { url: http://b.example }
  - match: { path_prefix: /c }
    proxy: { url: /relative/path }
";
        let errs = errors(yaml);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("routes[2].proxy.url: relative URL without a base"),
            "{errs:?}"
        );
    }

    #[test]
    fn unknown_field_is_an_error_with_path() {
        let yaml =
            "routes:\n  - match: { path_prefix: /a }\n    proxy: { url: http://a, timeout: 5 }\n";
        let errs = errors(yaml);
        assert!(errs[0].starts_with("routes[0].proxy"), "{errs:?}");
        assert!(errs[0].contains("unknown field `timeout`"), "{errs:?}");
    }

    #[test]
    fn literal_secret_is_rejected_and_reference_resolved() {
        let yaml = "providers:\n  o: { kind: openai, base_url: 'https://api.openai.com/v1', api_key: sk-live-123 }\nroutes:\n  - match: { path_prefix: /v1 }\n    ai: {}\n";
        let errs = errors(yaml);
        assert!(
            errs[0].starts_with("providers.o.api_key: secrets are never written"),
            "{errs:?}"
        );
        assert!(!errs[0].contains("sk-live-123"));

        let yaml = yaml.replace("sk-live-123", "'${env:KEY}'");
        let config =
            Config::from_yaml(&yaml, |n| (n == "KEY").then(|| "s3cret".to_string())).unwrap();
        let ProviderKind::OpenAi { api_key, base } = &config.providers[0].kind else {
            panic!()
        };
        assert_eq!(api_key.as_ref().unwrap().expose(), "s3cret");
        assert!(!format!("{config:?}").contains("s3cret"));
        assert_eq!(base.base_path, "/v1");
    }

    #[test]
    fn missing_env_var_is_named() {
        let yaml =
            "routes:\n  - match: { path_prefix: /a }\n    proxy: { url: '${env:ECHO_URL}/x' }\n";
        let errs = errors(yaml);
        assert_eq!(
            errs,
            vec!["routes[0].proxy.url: environment variable `ECHO_URL` is not set"]
        );
        let config = Config::from_yaml(yaml, |_| Some("http://127.0.0.1:9".into())).unwrap();
        let RouteAction::Proxy(p) = &config.routes[0].action else {
            panic!()
        };
        assert_eq!(p.upstream.base_path, "/x");
    }

    #[test]
    fn several_issues_are_reported_together() {
        let yaml = r"
models:
  - { name: m, provider: nope }
routes:
  - match: { path: /a, path_prefix: /a }
    proxy: { url: http://a }
  - match: { path: '/x/{id}' }
    proxy: { url: 'http://a', rewrite: '/y/{other}' }
  - match: { path_prefix: /z, methods: [GET, 'BAD METHOD'] }
    ai: {}
";
        let errs = errors(yaml);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("models[0].provider: unknown provider `nope`")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("routes[0].match: set either")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("routes[1].proxy.rewrite: `{other}` is not captured")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("routes[2].match.methods[1]: invalid HTTP method")),
            "{errs:?}"
        );
    }

    #[test]
    fn zero_limits_and_timeouts_are_rejected() {
        let yaml = "server: { max_body_bytes: 0 }\nroutes:\n  - match: { path_prefix: /a }\n    max_body_bytes: 0\n    proxy: { url: 'http://a', timeout_ms: 0 }\n";
        let errs = errors(yaml);
        assert_eq!(
            errs,
            vec![
                "server.max_body_bytes: must be greater than 0",
                "routes[0].max_body_bytes: must be greater than 0",
                "routes[0].proxy.timeout_ms: must be greater than 0",
            ]
        );
    }

    #[test]
    fn mistral_is_openai_compatible_with_its_default_url() {
        let yaml = "providers:\n  m: { kind: mistral, api_key: '${env:K}' }\nroutes:\n  - match: { path_prefix: /v1 }\n    ai: {}\n";
        let config = Config::from_yaml(yaml, |_| Some("k".into())).unwrap();
        let ProviderKind::OpenAi { base, api_key } = &config.providers[0].kind else {
            panic!()
        };
        assert_eq!(
            base.uri("/chat/completions", None).unwrap().to_string(),
            "https://api.mistral.ai/v1/chat/completions"
        );
        assert_eq!(api_key.as_ref().unwrap().expose(), "k");
    }

    #[test]
    fn unknown_provider_kind_is_explained() {
        let errs = errors("providers:\n  x: { kind: carrier-pigeon }\nroutes: []\n");
        assert!(errs[0].starts_with("providers.x"), "{errs:?}");
        assert!(errs[0].contains("carrier-pigeon"), "{errs:?}");
    }

    #[test]
    fn upstream_uri_joins_base_path_and_query() {
        let base = UpstreamBase::parse("https://api.example.com/base/").unwrap();
        assert_eq!(
            base.uri("/x/y", Some("a=1")).unwrap().to_string(),
            "https://api.example.com/base/x/y?a=1"
        );
        let root = UpstreamBase::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            root.uri("", None).unwrap().to_string(),
            "http://127.0.0.1:8080/"
        );
    }
}
