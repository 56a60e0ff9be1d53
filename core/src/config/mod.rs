//! Configuration: one YAML file, parsed into raw structs, then validated into
//! the typed [`Config`] the pipeline uses, with every default applied and no
//! optional field left to check at request time.
//!
//! Errors name the path of the offending value (`routes[2].proxy.url:
//! relative URL without a base`). Secrets never appear in the file: fields
//! that hold credentials accept only `${env:NAME}` references, resolved from
//! the runtime's environment (Lambda environment, Worker secrets) at load.

use crate::ai::config::{AiRoute, Model, ModelAlias, Provider};
use crate::auth::store::{valid_consumer_id, Consumer};
use crate::auth::{AdminConfig, AuthConfig, AuthView, RouteAuth};
use crate::http::config::{ProxyRoute, DEFAULT_MAX_BODY_BYTES};
use crate::http::routing::{PathPattern, RouteMatcher};
use crate::quota::{Plan, Scope, Unit};
use crate::schema::validate::{join_or_none, Validator};

pub use crate::schema::raw::RawConfig;
use crate::schema::raw::RawRoute;
pub use crate::schema::validate::{interpolate, ConfigError, ConfigIssue};
pub use crate::util::Secret;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub routes: Vec<Route>,
    pub providers: Vec<Provider>,
    pub models: Vec<Model>,
    /// Other names clients may ask for, in config order.
    pub model_aliases: Vec<ModelAlias>,
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

impl Config {
    /// Parses and validates a YAML config; `env` resolves `${env:NAME}`.
    pub fn from_yaml(
        yaml: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let raw: RawConfig = crate::schema::yaml::parse(yaml)?;
        Self::validate(raw, &env)
    }

    /// Validates raw config; collects every issue rather than stopping at the first.
    pub fn validate(
        raw: RawConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut v = Validator::new(env);
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

    /// The index of the model that serves a requested name: the model of
    /// that name, else an alias of exactly that name, else the first
    /// wildcard alias (in config order) that matches it.
    pub fn resolve_model(&self, requested: &str) -> Option<usize> {
        crate::ai::config::resolve_model(&self.models, &self.model_aliases, requested)
    }

    /// What authentication reads.
    pub fn auth_view(&self) -> AuthView<'_> {
        AuthView {
            auth: &self.auth,
            consumers: &self.consumers,
        }
    }

    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.name == name)
    }
}

impl Validator<'_> {
    fn config(&mut self, raw: RawConfig) -> Config {
        let default_body = self.positive(
            "server.max_body_bytes",
            raw.server.max_body_bytes,
            DEFAULT_MAX_BODY_BYTES,
        );

        let (providers, models) = self.catalog(raw.providers, raw.models);
        let model_aliases = self.model_aliases(raw.model_aliases, &models);

        let auth = self.auth(raw.auth);
        let admin = raw.admin.and_then(|admin| self.admin(admin));
        let mut plans: Vec<Plan> = Vec::new();
        for (name, raw_plan) in raw.plans {
            if let Some(plan) = self.plan(&format!("plans.{name}"), name, raw_plan) {
                plans.push(plan);
            }
        }
        let plan_names: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
        for issuer in &auth.issuers {
            if let Some(plan) = issuer
                .default_plan
                .as_ref()
                .filter(|p| !plan_names.contains(p))
            {
                let defined: Vec<&str> = plan_names.iter().map(String::as_str).collect();
                self.issue(
                    format!("auth.jwt.{}.default_plan", issuer.name),
                    format!(
                        "unknown plan `{plan}` (defined: {})",
                        join_or_none(&defined)
                    ),
                );
            }
        }
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
                self.check_route_plan(&path, &route, &plans);
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
            model_aliases,
            auth,
            admin,
            consumers,
            plans,
        }
    }

    pub(crate) fn route(
        &mut self,
        path: &str,
        name: String,
        raw: RawRoute,
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
            (Some(proxy), None) => self
                .proxy_route(path, proxy, matcher.as_ref())
                .map(RouteAction::Proxy),
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
                Some(RouteAction::Ai(self.ai_route(path, ai)))
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

    /// A REST route has no tokens, cost or model: a limit of its plan that
    /// counts them could never apply there, so it is refused rather than
    /// silently ignored.
    fn check_route_plan(&mut self, path: &str, route: &Route, plans: &[Plan]) {
        let (RouteAction::Proxy(_), Some(plan)) = (&route.action, route.plan) else {
            return;
        };
        let plan = &plans[plan];
        for limit in &plan.limits {
            let never = if limit.unit.is_settled() {
                Some(format!("counts {}", limit.unit.as_str()))
            } else if limit.scope == Scope::ConsumerModel {
                Some("is per model".to_owned())
            } else {
                None
            };
            if let Some(why) = never {
                self.issue(
                    format!("{path}.plan"),
                    format!(
                        "limit `{}` of plan `{}` {why}, which a `proxy` route never has: it would never apply here (use a plan without it)",
                        limit.name, plan.name
                    ),
                );
            }
        }
    }

    /// Spend limits charge every request its cost: each deployment of every
    /// model needs a price (its own `pricing` or a built-in one).
    pub(crate) fn check_spend_pricing(&mut self, plans: &[Plan], models: &[Model]) {
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
                if crate::ai::pricing::deployment_price(price, upstream_model).is_none() {
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
}

/// The annotated example config shipped in the repo (`config/gateway.example.yaml`).
pub const EXAMPLE_CONFIG: &str = include_str!("../../../config/gateway.example.yaml");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::config::ProviderKind;
    use crate::http::UpstreamBase;

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
        assert!(config.model("mock-agent").is_some());
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
    fn jwt_issuer_mapping_options_are_checked() {
        let long = "x".repeat(257);
        let yaml = r#"
plans:
  free: {}
auth:
  jwt:
    "bad name":
      jwks_url: https://idp.example/jwks.json
    corp:
      jwks_url: https://idp.example/jwks.json
      consumer_mapping: sideways
      default_plan: gold
      consumer_map: { LONG: team-a, ok-sub: "not/an/id" }
      keys:
        - { alg: HS256, jwk: { kty: oct, k: c2VjcmV0 } }
        - { alg: RS256, jwk: { kty: oct, k: c2VjcmV0 } }
routes:
  - match: { path_prefix: /a }
    proxy: { url: http://a.example }
"#
        .replace("LONG", &long);
        let errs = errors(&yaml).join("\n");
        for expected in [
            &"auth.jwt.bad name: issuer names are 1-64 characters".to_owned(),
            &"auth.jwt.corp.consumer_mapping: unknown mapping `sideways`".to_owned(),
            &"auth.jwt.corp.default_plan: unknown plan `gold`".to_owned(),
            &format!("auth.jwt.corp.consumer_map.{long}: a subject is 1-256 bytes"),
            &"auth.jwt.corp.consumer_map.ok-sub: a consumer id is 1-64 characters".to_owned(),
            &"auth.jwt.corp.keys[1].jwk: not an asymmetric signature key".to_owned(),
        ] {
            assert!(errs.contains(expected), "missing {expected:?} in:\n{errs}");
        }
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
        let ProviderKind::OpenAi { api_key, base, .. } = &config.providers[0].kind else {
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
    fn required_scopes_on_an_api_key_only_route_are_an_error() {
        let yaml = r"
routes:
  - match: { path_prefix: /api }
    auth: { methods: [api_key], required_scopes: [reports:read] }
    proxy: { url: 'http://127.0.0.1:9' }
";
        let errors = errors(yaml);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("routes[0].auth.required_scopes: scopes come from JWTs"),
            "{errors:?}"
        );
    }

    #[test]
    fn limit_windows_are_bounded_and_ipv6_prefix_belongs_to_ip_limits() {
        let yaml = r"
plans:
  p:
    limits:
      - { requests: 1, window_s: 40000000 }
      - { requests: 1, window_s: 60, ipv6_prefix: 48 }
      - { requests: 1, window_s: 60, scope: ip, ipv6_prefix: 0 }
      - { requests: 1, window_s: 60, scope: ip, ipv6_prefix: 56 }
routes:
  - match: { path_prefix: /api }
    plan: p
    proxy: { url: 'http://127.0.0.1:9' }
";
        let errors = errors(yaml);
        assert_eq!(
            errors,
            [
                "plans.p.limits[0].window_s: must be at most 31622400 (366 days)",
                "plans.p.limits[1].ipv6_prefix: only applies to `scope: ip`",
                "plans.p.limits[2].ipv6_prefix: must be 1 to 128",
            ]
        );
    }

    #[test]
    fn lease_settings_are_checked_with_their_path() {
        let yaml = r"
plans:
  shares:
    lease: { fraction: 0, ttl_ms: 0 }
    limits: [{ requests: 10, window_s: 60 }]
  greedy:
    lease: { fraction: 1.5, ttl_ms: 3600001, max_requests: 0 }
    limits: [{ requests: 10, window_s: 60 }]
  not-a-number:
    lease: { fraction: .nan }
    limits: [{ tokens: 10, window_s: 60 }]
  caps-nothing:
    lease: { max_tokens: 100, max_requests: 5 }
    limits: [{ requests: 10, window_s: 60 }, { spend_usd: 1, window_s: 60 }]
  spend-only:
    lease: {}
    limits: [{ spend_usd: 1, window_s: 60 }]
  fine:
    lease: { fraction: 1, ttl_ms: 3600000, max_requests: 1, max_tokens: 1 }
    limits: [{ requests: 10, window_s: 60 }, { completion_tokens: 10, window_s: 60 }]
routes:
  - match: { path_prefix: /api }
    proxy: { url: 'http://127.0.0.1:9' }
";
        let mut found = errors(yaml);
        found.sort();
        let share = "must be a number greater than 0 and at most 1 (the share of what remains in the window one lease takes)";
        let ttl = "must be 1 to 3600000 (one hour)";
        assert_eq!(
            found,
            [
                "plans.caps-nothing.lease.max_tokens: the plan has no token limit for it to cap".to_owned(),
                format!("plans.greedy.lease.fraction: {share}"),
                "plans.greedy.lease.max_requests: must be greater than 0".to_owned(),
                format!("plans.greedy.lease.ttl_ms: {ttl}"),
                format!("plans.not-a-number.lease.fraction: {share}"),
                format!("plans.shares.lease.fraction: {share}"),
                format!("plans.shares.lease.ttl_ms: {ttl}"),
                "plans.spend-only.lease: the plan has no request or token limit to lease (spend limits are never leased)".to_owned(),
            ]
        );
        let typo = errors("plans:\n  p:\n    lease: { fractoin: 0.1 }\n");
        assert!(
            typo.iter()
                .any(|e| e.starts_with("plans.p.lease") && e.contains("unknown field `fractoin`")),
            "{typo:?}"
        );
        // A valid lease, and the default of a plan without one.
        let config = Config::from_yaml(
            "plans:\n  p:\n    lease: {}\n    limits: [{ requests: 10, window_s: 60 }]\n  q:\n    limits: [{ requests: 10, window_s: 60 }]\nroutes:\n  - match: { path_prefix: /api }\n    proxy: { url: 'http://127.0.0.1:9' }\n",
            no_env,
        )
        .unwrap();
        let lease = config.plan("p").unwrap().lease.clone().unwrap();
        assert_eq!((lease.fraction, lease.ttl_ms), (0.1, 1_000));
        assert_eq!(config.plan("q").unwrap().lease, None);
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
        let ProviderKind::OpenAi { base, api_key, .. } = &config.providers[0].kind else {
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

    #[test]
    fn limits_a_rest_route_can_never_apply_are_refused() {
        let yaml = r#"
plans:
  tokens:
    limits:
      - { name: tph, window_s: 3600, tokens: 1000 }
  per-model:
    limits:
      - { name: rpm, window_s: 60, requests: 10, scope: consumer_model }
  requests:
    limits:
      - { name: rpm, window_s: 60, requests: 10 }
routes:
  - { match: { path_prefix: /a }, plan: tokens, proxy: { url: "http://a.internal" } }
  - { match: { path_prefix: /b }, plan: per-model, proxy: { url: "http://b.internal" } }
  - { match: { path_prefix: /c }, plan: requests, proxy: { url: "http://c.internal" } }
  - { match: { path_prefix: /v1 }, plan: tokens, ai: {} }
"#;
        let error = Config::from_yaml(yaml, |_| None).unwrap_err().to_string();
        assert!(
            error.contains("routes[0].plan") && error.contains("counts tokens"),
            "{error}"
        );
        assert!(
            error.contains("routes[1].plan") && error.contains("per model"),
            "{error}"
        );
        assert!(
            !error.contains("routes[2]") && !error.contains("routes[3]"),
            "{error}"
        );
    }
}
