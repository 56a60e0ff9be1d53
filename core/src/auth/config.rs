//! The auth domain's part of the config: API-key cache, JWT issuers and
//! their keys, a route's auth policy and the admin API's key.

use std::time::Duration;

use super::jwt::{self, ConsumerMapping, JwksSource, JwtIssuer, VerifyKey};
use super::store::valid_consumer_id;
use super::{AdminConfig, AuthConfig, RouteAuth};
use crate::http::routing::PathPattern;
use crate::http::UpstreamBase;
use crate::schema::raw::{RawAdmin, RawAuth, RawJwtIssuer, RawJwtKey, RawRouteAuth};
use crate::schema::validate::Validator;

impl Validator<'_> {
    pub(crate) fn auth(&mut self, raw: RawAuth) -> AuthConfig {
        let defaults = AuthConfig::default();
        let ttl_ms = self.positive("auth.api_keys.cache_ttl_ms", raw.api_keys.cache_ttl_ms, 0);
        let key_cache_ttl = if ttl_ms == 0 {
            defaults.key_cache_ttl
        } else {
            Duration::from_millis(ttl_ms)
        };
        let key_cache_size = raw.api_keys.cache_size.unwrap_or(defaults.key_cache_size);
        let store_timeout = self.timeout(
            "auth.store_timeout_ms",
            raw.store_timeout_ms,
            defaults.store_timeout,
        );
        let mut issuers = Vec::new();
        for (name, raw_issuer) in raw.jwt {
            let path = format!("auth.jwt.{name}");
            if !valid_consumer_id(&name) {
                // It becomes part of consumer ids (`jwt:<name>:<sub>`).
                self.issue(
                    &path,
                    "issuer names are 1-64 characters of letters, digits, `.`, `_` and `-`",
                );
                continue;
            }
            if let Some(issuer) = self.jwt_issuer(&path, name, raw_issuer) {
                issuers.push(issuer);
            }
        }
        AuthConfig {
            key_cache_ttl,
            key_cache_size,
            store_timeout,
            issuers,
        }
    }

    pub(crate) fn jwt_issuer(
        &mut self,
        path: &str,
        name: String,
        raw: RawJwtIssuer,
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
        let consumer_mapping = match raw.consumer_mapping.as_deref() {
            None | Some("namespaced") => ConsumerMapping::Namespaced,
            Some("direct") => ConsumerMapping::Direct,
            Some(other) => {
                self.issue(
                    format!("{path}.consumer_mapping"),
                    format!("unknown mapping `{other}` (namespaced, direct)"),
                );
                ConsumerMapping::Namespaced
            }
        };
        for (subject, consumer) in &raw.consumer_map {
            let entry = format!("{path}.consumer_map.{subject}");
            if !jwt::valid_subject(subject) {
                self.issue(
                    &entry,
                    "a subject is 1-256 bytes without control characters",
                );
            }
            if !valid_consumer_id(consumer) {
                self.issue(
                    &entry,
                    "a consumer id is 1-64 characters of letters, digits, `.`, `_` and `-`",
                );
            }
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
            consumer_mapping,
            consumer_map: raw.consumer_map,
            default_plan: raw.default_plan,
        })
    }

    pub(crate) fn jwt_key(&mut self, path: &str, raw: RawJwtKey) -> Option<VerifyKey> {
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
                match jwt::jwk_algorithm(&jwk) {
                    None => {
                        self.issue(
                            &jwk_path,
                            "not an asymmetric signature key (RSA, EC P-256/P-384 or OKP; no `kty: oct`, no `use: enc`, an `alg` that fits the key)",
                        );
                        return None;
                    }
                    Some(a) if a != alg => {
                        self.issue(
                            &jwk_path,
                            format!("the JWK's algorithm differs from `alg: {}`", raw.alg),
                        );
                        return None;
                    }
                    Some(_) => {}
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

    pub(crate) fn route_auth(
        &mut self,
        path: &str,
        raw: RawRouteAuth,
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
        if !policy.required_scopes.is_empty() && policy.jwt_issuers.is_empty() {
            // API keys carry no scopes: every request would get 403.
            self.issue(
                format!("{path}.required_scopes"),
                "scopes come from JWTs: add a `jwt` method, or drop `required_scopes` (API keys carry no scopes)",
            );
            return None;
        }
        Some(policy)
    }
}

impl Validator<'_> {
    /// The admin API's settings (its key is an authentication matter).
    pub(crate) fn admin(&mut self, raw: RawAdmin) -> Option<AdminConfig> {
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
}
