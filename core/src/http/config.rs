//! The HTTP domain's part of the config: route matchers, path rewrites and
//! proxy upstreams, validated from the raw config.

use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{Method, Uri};

use super::routing::{HostPattern, PathPattern, PathTemplate, RouteMatcher};
use crate::schema::raw::{RawMatch, RawProxy};
use crate::schema::validate::{join_or_none, Validator};

/// Default request body limit when neither the route nor `server` sets one.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Default time a proxy route waits for upstream response headers.
pub const DEFAULT_PROXY_TIMEOUT: Duration = Duration::from_secs(30);

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

impl Validator<'_> {
    pub(crate) fn matcher(&mut self, path: &str, raw: &RawMatch) -> Option<RouteMatcher> {
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
            allow_semicolons: raw.allow_semicolons,
        })
    }

    pub(crate) fn rewrite(
        &mut self,
        path: &str,
        proxy: &RawProxy,
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

    /// A `proxy` action: upstream URL, rewrite and timeout.
    pub(crate) fn proxy_route(
        &mut self,
        path: &str,
        proxy: RawProxy,
        matcher: Option<&RouteMatcher>,
    ) -> Option<ProxyRoute> {
        let rewrite = self.rewrite(path, &proxy, matcher.map(|m| &m.path));
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
        Some(ProxyRoute {
            upstream: upstream?,
            rewrite: rewrite?,
            timeout,
        })
    }
}
