//! Phase 1: the request id, path normalisation (`http::normalize`), the
//! admin prefix and the route match (config order, first match wins; see
//! `http::routing`).
//!
//! Reads the request and rewrites its path to the normalised one, which is
//! what later phases see and the upstream receives. Adds `route`,
//! `dialect` and `shape` (on `ai` routes: the dialect of the path below
//! the prefix, and its error shape — OpenAI JSON, or Anthropic's on the
//! Messages paths — so later phases' errors are in the client's shape). Errors: 400 for a path it refuses
//! (also a `;` on a route that does not allow it), 404, 405.

use std::borrow::Cow;

use bytes::Bytes;
use http::{header, Request};

use super::context::RouteRef;
use super::{RequestContext, Shared};
use crate::ai::dialects::Dialect;
use crate::config::RouteAction;
use crate::error::GatewayError;
use crate::http::normalize::normalize_path;
use crate::http::routing::RouteMatch;
use crate::http::X_REQUEST_ID;
use crate::platform::Platform;
use crate::util::hex;

/// Longest client-supplied request id that is kept.
const MAX_REQUEST_ID_LEN: usize = 128;

/// What the request is for.
pub enum Matched {
    /// A configured route (`ctx.route` says which).
    Route,
    /// The admin API; `subpath` is below its prefix.
    Admin { subpath: String },
}

/// Matches the request; see the module docs.
pub fn route<P: Platform>(
    shared: &Shared<P>,
    ctx: &mut RequestContext<P>,
    request: &mut Request<Bytes>,
) -> Result<Matched, GatewayError> {
    let normalized = normalize_path(request.uri().path()).map_err(GatewayError::InvalidPath)?;
    if let Cow::Owned(path) = normalized {
        set_path(request, &path)?;
    }
    let request = &*request;
    let path = request.uri().path();
    if let Some(admin) = &shared.config.admin {
        if let Some(subpath) = below_prefix(path, &admin.path_prefix) {
            ctx.route = Some(RouteRef {
                index: None,
                params: Vec::new(),
                matched_len: admin.path_prefix.len(),
            });
            return Ok(Matched::Admin {
                subpath: subpath.to_owned(),
            });
        }
    }
    let host = request_host(request);
    match shared.router.find(request.method(), host.as_deref(), path) {
        RouteMatch::Found {
            route,
            params,
            matched_len,
        } => {
            let config = &shared.config.routes[route];
            if path.contains(';') && !config.matcher.allow_semicolons {
                return Err(GatewayError::InvalidPath(
                    "`;` is not allowed in this route's paths",
                ));
            }
            if matches!(config.action, RouteAction::Ai(_)) {
                ctx.dialect = Dialect::of_subpath(path.get(matched_len..).unwrap_or_default());
                ctx.shape = ctx.dialect.error_shape();
            }
            ctx.route = Some(RouteRef {
                index: Some(route),
                params,
                matched_len,
            });
            Ok(Matched::Route)
        }
        RouteMatch::MethodNotAllowed { allow } => Err(GatewayError::MethodNotAllowed {
            method: request.method().clone(),
            path: path.to_owned(),
            allow,
        }),
        RouteMatch::NotFound => Err(GatewayError::RouteNotFound {
            method: request.method().clone(),
            path: path.to_owned(),
        }),
    }
}

/// Replaces the path of `request`'s URI, keeping its query.
fn set_path(request: &mut Request<Bytes>, path: &str) -> Result<(), GatewayError> {
    let uri = request.uri();
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query =
        Some(path_and_query.parse().map_err(|_| {
            GatewayError::InvalidPath("the normalised path is not a valid URI path")
        })?);
    *request.uri_mut() = http::Uri::from_parts(parts)
        .map_err(|_| GatewayError::InvalidPath("the normalised path is not a valid URI path"))?;
    Ok(())
}

/// Keeps a client's `X-Request-Id` when it is 1–128 visible ASCII
/// characters; otherwise makes a new random one.
pub fn request_id<P: Platform>(platform: &P, request: &Request<Bytes>) -> String {
    if let Some(id) = request
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
    {
        if !id.is_empty()
            && id.len() <= MAX_REQUEST_ID_LEN
            && id.bytes().all(|b| b.is_ascii_graphic())
        {
            return id.to_owned();
        }
    }
    let mut bytes = [0u8; 16];
    platform.fill_random(&mut bytes);
    hex(&bytes)
}

/// The rest of `path` when it is `prefix` or below it (segment boundary).
fn below_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// The request's host without port: the `Host` header, else the URI's.
fn request_host(request: &Request<Bytes>) -> Option<String> {
    let raw = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().host())?;
    let host = if raw.starts_with('[') {
        // IPv6 literal: keep the brackets, drop the port.
        raw.split_inclusive(']').next().unwrap_or(raw)
    } else {
        raw.split(':').next().unwrap_or(raw)
    };
    Some(host.to_owned())
}
