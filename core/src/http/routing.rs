//! Phase 1: route matching.
//!
//! Routes are tried **in the order they are written in the config**; the
//! first whose host, path and method all match wins. When some route matches
//! host and path but none matches the method, the answer is 405 with an
//! `Allow` header listing the methods those routes accept; when no route
//! matches host and path, 404.
//!
//! Path patterns:
//! - `path: /users/{id}/orders/{*rest}` — exact segments, `{name}` captures
//!   one segment, a final `{*name}` captures the rest (possibly empty).
//! - `path_prefix: /api` — matches `/api` and anything below `/api/`, not
//!   `/apix`.
//!
//! Host patterns: `api.example.com` (exact, case-insensitive, port ignored)
//! or `*.example.com` (any subdomain, not the apex).

use http::Method;

/// One captured `{param}`: name and raw (still percent-encoded) value.
pub type Params = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    /// `{*name}`: the remaining segments, joined with `/`.
    CatchAll(String),
}

/// A parsed `path:` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    segments: Vec<Segment>,
}

impl PathTemplate {
    /// Parses `/a/{b}/{*c}`. Errors say what is wrong with the pattern.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let Some(rest) = pattern.strip_prefix('/') else {
            return Err(format!("`{pattern}` must start with `/`"));
        };
        let mut segments = Vec::new();
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let count = parts.len();
        for (index, part) in parts.into_iter().enumerate() {
            let segment = if let Some(name) =
                part.strip_prefix("{*").and_then(|p| p.strip_suffix('}'))
            {
                if index + 1 != count {
                    return Err(format!(
                        "`{{*{name}}}` must be the last segment of `{pattern}`"
                    ));
                }
                Segment::CatchAll(valid_param_name(name, pattern)?)
            } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Segment::Param(valid_param_name(name, pattern)?)
            } else if part.contains(['{', '}']) {
                return Err(format!("segment `{part}` of `{pattern}` mixes text and a parameter; a parameter must be a whole segment"));
            } else {
                Segment::Literal(part.to_owned())
            };
            if let Segment::Param(name) | Segment::CatchAll(name) = &segment {
                if segments
                    .iter()
                    .any(|s| matches!(s, Segment::Param(n) | Segment::CatchAll(n) if n == name))
                {
                    return Err(format!("parameter `{name}` appears twice in `{pattern}`"));
                }
            }
            segments.push(segment);
        }
        Ok(Self { segments })
    }

    /// Names of the captured parameters.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) | Segment::CatchAll(n) => Some(n.as_str()),
            Segment::Literal(_) => None,
        })
    }

    fn matches(&self, path: &str, params: &mut Params) -> bool {
        let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
        let trailing_empty = path == "/";
        let mut consumed_all = false;
        for segment in &self.segments {
            match segment {
                Segment::CatchAll(name) => {
                    let rest: Vec<&str> = parts.by_ref().collect();
                    params.push((name.clone(), rest.join("/")));
                    consumed_all = true;
                    break;
                }
                Segment::Literal(literal) => match parts.next() {
                    Some(part) if part == literal => {}
                    _ => return false,
                },
                Segment::Param(name) => match parts.next() {
                    Some(part) if !part.is_empty() => params.push((name.clone(), part.to_owned())),
                    _ => return false,
                },
            }
        }
        if consumed_all {
            return true;
        }
        match parts.next() {
            None => true,
            // `/` against the empty pattern.
            Some("") if self.segments.is_empty() && trailing_empty => true,
            Some(_) => false,
        }
    }

    /// Renders the template with `params` (used for path rewrites). Unknown
    /// names are rejected when the config is validated, so they cannot occur.
    pub fn render(&self, params: &Params) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            out.push('/');
            match segment {
                Segment::Literal(literal) => out.push_str(literal),
                Segment::Param(name) | Segment::CatchAll(name) => {
                    if let Some((_, value)) = params.iter().find(|(n, _)| n == name) {
                        out.push_str(value);
                    }
                }
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }
}

fn valid_param_name(name: &str, pattern: &str) -> Result<String, String> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "invalid parameter name `{name}` in `{pattern}` (letters, digits and `_` only)"
        ))
    }
}

/// How a route matches the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    Template(PathTemplate),
    /// Normalised without a trailing slash (`/` is the empty prefix).
    Prefix(String),
}

impl PathPattern {
    pub fn prefix(prefix: &str) -> Result<Self, String> {
        if !prefix.starts_with('/') {
            return Err(format!("`{prefix}` must start with `/`"));
        }
        if prefix.contains(['{', '}', '?', '#']) {
            return Err(format!("`{prefix}` is a prefix: parameters, `?` and `#` are not allowed (use `path:` for parameters)"));
        }
        Ok(Self::Prefix(prefix.trim_end_matches('/').to_owned()))
    }

    /// On a match, returns the length of the path the pattern consumed (the
    /// whole path for templates, the prefix for prefixes).
    fn matches(&self, path: &str, params: &mut Params) -> Option<usize> {
        match self {
            Self::Template(template) => template.matches(path, params).then_some(path.len()),
            Self::Prefix(prefix) => {
                let rest = path.strip_prefix(prefix.as_str())?;
                (rest.is_empty() || rest.starts_with('/')).then_some(prefix.len())
            }
        }
    }
}

/// `api.example.com` or `*.example.com`, stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// The suffix including its leading dot: `.example.com`.
    Wildcard(String),
}

impl HostPattern {
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let lower = pattern.to_ascii_lowercase();
        if let Some(suffix) = lower.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(format!("invalid host pattern `{pattern}`"));
            }
            return Ok(Self::Wildcard(format!(".{suffix}")));
        }
        if lower.is_empty() || lower.contains(['*', '/', ' ', ':']) {
            return Err(format!(
                "invalid host `{pattern}`: a name like `api.example.com` or `*.example.com`, without port"
            ));
        }
        Ok(Self::Exact(lower))
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(exact) => host.eq_ignore_ascii_case(exact),
            Self::Wildcard(suffix) => {
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

/// Everything a route needs to match a request.
#[derive(Debug, Clone)]
pub struct RouteMatcher {
    pub host: Option<HostPattern>,
    /// `None` matches every method.
    pub methods: Option<Vec<Method>>,
    pub path: PathPattern,
    /// Paths with `;` may match (refused otherwise; see `http::normalize`).
    pub allow_semicolons: bool,
}

/// The outcome of matching a request against all routes.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteMatch {
    Found {
        route: usize,
        params: Params,
        /// Bytes of the path consumed by the pattern (for prefix stripping).
        matched_len: usize,
    },
    MethodNotAllowed {
        allow: Vec<Method>,
    },
    NotFound,
}

/// Matches requests against routes in config order.
#[derive(Debug, Clone, Default)]
pub struct Router {
    matchers: Vec<RouteMatcher>,
}

impl Router {
    pub fn new(matchers: Vec<RouteMatcher>) -> Self {
        Self { matchers }
    }

    /// `host` is the request's host without port, if known.
    pub fn find(&self, method: &Method, host: Option<&str>, path: &str) -> RouteMatch {
        let mut allow: Vec<Method> = Vec::new();
        let mut path_matched = false;
        for (index, matcher) in self.matchers.iter().enumerate() {
            if let Some(pattern) = &matcher.host {
                if !host.is_some_and(|h| pattern.matches(h)) {
                    continue;
                }
            }
            let mut params = Params::new();
            let Some(matched_len) = matcher.path.matches(path, &mut params) else {
                continue;
            };
            match &matcher.methods {
                Some(methods) if !methods.contains(method) => {
                    path_matched = true;
                    for m in methods {
                        if !allow.contains(m) {
                            allow.push(m.clone());
                        }
                    }
                }
                _ => {
                    return RouteMatch::Found {
                        route: index,
                        params,
                        matched_len,
                    }
                }
            }
        }
        if path_matched {
            RouteMatch::MethodNotAllowed { allow }
        } else {
            RouteMatch::NotFound
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: PathPattern, methods: Option<&[Method]>, host: Option<&str>) -> RouteMatcher {
        RouteMatcher {
            host: host.map(|h| HostPattern::parse(h).unwrap()),
            methods: methods.map(<[Method]>::to_vec),
            path,
            allow_semicolons: false,
        }
    }

    fn template(p: &str) -> PathPattern {
        PathPattern::Template(PathTemplate::parse(p).unwrap())
    }

    #[test]
    fn template_captures_params_and_rest() {
        let router = Router::new(vec![route(
            template("/users/{id}/files/{*path}"),
            None,
            None,
        )]);
        let found = router.find(&Method::GET, None, "/users/42/files/a/b.txt");
        assert_eq!(
            found,
            RouteMatch::Found {
                route: 0,
                params: vec![
                    ("id".into(), "42".into()),
                    ("path".into(), "a/b.txt".into())
                ],
                matched_len: 23,
            }
        );
        assert_eq!(
            router.find(&Method::GET, None, "/users//files/x"),
            RouteMatch::NotFound
        );
        assert_eq!(
            router.find(&Method::GET, None, "/users/42"),
            RouteMatch::NotFound
        );
    }

    #[test]
    fn prefix_respects_segment_boundary() {
        let router = Router::new(vec![route(
            PathPattern::prefix("/api/").unwrap(),
            None,
            None,
        )]);
        assert!(matches!(
            router.find(&Method::GET, None, "/api"),
            RouteMatch::Found { matched_len: 4, .. }
        ));
        assert!(matches!(
            router.find(&Method::GET, None, "/api/x"),
            RouteMatch::Found { .. }
        ));
        assert_eq!(
            router.find(&Method::GET, None, "/apix"),
            RouteMatch::NotFound
        );
    }

    #[test]
    fn first_match_wins_in_config_order() {
        let router = Router::new(vec![
            route(PathPattern::prefix("/a").unwrap(), None, None),
            route(template("/a/b"), None, None),
        ]);
        assert!(matches!(
            router.find(&Method::GET, None, "/a/b"),
            RouteMatch::Found { route: 0, .. }
        ));
    }

    #[test]
    fn method_mismatch_is_405_with_union_of_allowed_methods() {
        let router = Router::new(vec![
            route(template("/x"), Some(&[Method::GET]), None),
            route(template("/x"), Some(&[Method::POST, Method::GET]), None),
        ]);
        assert_eq!(
            router.find(&Method::DELETE, None, "/x"),
            RouteMatch::MethodNotAllowed {
                allow: vec![Method::GET, Method::POST]
            }
        );
        assert!(matches!(
            router.find(&Method::POST, None, "/x"),
            RouteMatch::Found { route: 1, .. }
        ));
    }

    #[test]
    fn host_patterns() {
        let router = Router::new(vec![
            route(
                PathPattern::prefix("/").unwrap(),
                None,
                Some("*.example.com"),
            ),
            route(
                PathPattern::prefix("/").unwrap(),
                None,
                Some("API.other.org"),
            ),
        ]);
        assert!(matches!(
            router.find(&Method::GET, Some("a.example.com"), "/"),
            RouteMatch::Found { route: 0, .. }
        ));
        assert_eq!(
            router.find(&Method::GET, Some("example.com"), "/"),
            RouteMatch::NotFound
        );
        assert!(matches!(
            router.find(&Method::GET, Some("api.OTHER.org"), "/"),
            RouteMatch::Found { route: 1, .. }
        ));
        assert_eq!(router.find(&Method::GET, None, "/"), RouteMatch::NotFound);
    }

    #[test]
    fn invalid_templates_are_explained() {
        assert!(PathTemplate::parse("x")
            .unwrap_err()
            .contains("must start with `/`"));
        assert!(PathTemplate::parse("/{*a}/b")
            .unwrap_err()
            .contains("last segment"));
        assert!(PathTemplate::parse("/{a}/{a}")
            .unwrap_err()
            .contains("twice"));
        assert!(PathTemplate::parse("/a{b}")
            .unwrap_err()
            .contains("whole segment"));
    }

    #[test]
    fn render_substitutes_params() {
        let t = PathTemplate::parse("/v2/{id}/{*rest}").unwrap();
        let params = vec![("id".into(), "7".into()), ("rest".into(), "a/b".into())];
        assert_eq!(t.render(&params), "/v2/7/a/b");
        assert_eq!(PathTemplate::parse("/").unwrap().render(&vec![]), "/");
    }
}
