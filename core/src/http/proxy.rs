//! The REST upstream proxy (the `proxy` action of the dispatch phase).
//!
//! Forwards method, path (kept, prefix-stripped or rewritten), query, headers
//! and body. Hop-by-hop headers are dropped in both directions; the upstream
//! gets `X-Forwarded-For`/`-Proto`/`-Host` and the request id. The route's
//! timeout bounds the wait for the upstream's response headers; the body then
//! streams through unbuffered.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};

use super::config::{PathRewrite, ProxyRoute};
use super::routing::Params;
use crate::body::Body;
use crate::error::GatewayError;
use crate::platform::{with_timeout, Clock, HttpClient, HttpClientError, HttpClientErrorKind};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the non-standard ones proxies
/// still see). They describe one connection and are never forwarded.
/// Typed names, so removing them is a hash lookup, not a parse per call.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Who is calling, as the adapter saw it. Adapters insert it as a request
/// extension; when absent, forwarding headers carry what the request has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    /// `true` when the client connected over TLS.
    pub https: bool,
}

/// When the runtime will stop the request (a Lambda invocation's deadline),
/// as a Unix time in milliseconds. Adapters insert it as a request
/// extension; the AI router ends upstream calls and streams early enough
/// to settle their reservations first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeDeadline {
    pub unix_ms: u64,
}

/// Removes hop-by-hop headers, including those named in `Connection`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if headers.is_empty() {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        remove_connection_named(headers);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Removes the headers a `Connection` header names (RFC 9110 §7.6.1).
fn remove_connection_named(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
}

/// Appends the client to `X-Forwarded-For` (unless a front end such as a
/// Lambda Function URL already put it last), and sets `-Proto` and `-Host`.
fn set_forwarding_headers(
    headers: &mut HeaderMap,
    client: Option<&ClientInfo>,
    original_host: Option<HeaderValue>,
) {
    if let Some(ip) = client.and_then(|c| c.ip) {
        let ip = ip.to_string();
        let chain = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ");
        let already_last = chain.rsplit(',').next().map(str::trim) == Some(ip.as_str());
        let value = match (chain.is_empty(), already_last) {
            (true, _) => ip,
            (false, true) => chain,
            (false, false) => format!("{chain}, {ip}"),
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
    if let Some(client) = client {
        let proto = if client.https { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if let Some(host) = original_host {
        headers.insert(X_FORWARDED_HOST, host);
    }
}

/// Maps a transport failure (or timeout) to the client-facing error.
pub fn upstream_error(
    result: Option<Result<Response<Body>, HttpClientError>>,
    timeout: Duration,
) -> Result<Response<Body>, GatewayError> {
    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    match result {
        None => Err(GatewayError::UpstreamTimeout { timeout_ms }),
        Some(Ok(response)) => Ok(response),
        Some(Err(err)) => Err(match err.kind {
            HttpClientErrorKind::Connect => GatewayError::UpstreamUnreachable {
                detail: err.message,
            },
            HttpClientErrorKind::Timeout => GatewayError::UpstreamTimeout { timeout_ms },
            HttpClientErrorKind::Other => GatewayError::UpstreamInvalid {
                detail: err.message,
            },
        }),
    }
}

/// What the proxy needs from the matched route and request.
pub struct ProxyCall<'a> {
    pub route: &'a ProxyRoute,
    pub params: &'a Params,
    pub matched_len: usize,
    pub request_id: &'a str,
    /// Credential headers to remove (the route does not forward them).
    pub strip_headers: &'a [&'a str],
    /// Sent as `X-Consumer-Id` when the route forwards the consumer.
    pub consumer_id: Option<&'a str>,
}

pub const X_CONSUMER_ID: HeaderName = HeaderName::from_static("x-consumer-id");

/// Forwards `request` to the route's upstream and relays the response.
pub async fn forward(
    http: &impl HttpClient,
    clock: &impl Clock,
    call: ProxyCall<'_>,
    request: Request<Bytes>,
) -> Result<Response<Body>, GatewayError> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path();
    let upstream_path = match &call.route.rewrite {
        PathRewrite::Keep => path.to_owned(),
        PathRewrite::StripPrefix => path.get(call.matched_len..).unwrap_or_default().to_owned(),
        PathRewrite::Template(template) => template.render(call.params),
    };
    let uri = call
        .route
        .upstream
        .uri(&upstream_path, parts.uri.query())
        .map_err(|e| {
            GatewayError::invalid_request(format!("cannot build upstream URL: {e}"), None)
        })?;

    let client = parts.extensions.get::<ClientInfo>().copied();
    let original_host = parts.headers.get(header::HOST).cloned();
    let headers = &mut parts.headers;
    remove_hop_by_hop(headers);
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    set_forwarding_headers(headers, client.as_ref(), original_host);
    // Only the gateway says who the consumer is.
    headers.remove(&X_CONSUMER_ID);
    for name in call.strip_headers {
        headers.remove(*name);
    }
    if let Some(consumer_id) = call.consumer_id {
        if let Ok(value) = HeaderValue::from_str(consumer_id) {
            headers.insert(X_CONSUMER_ID, value);
        }
    }
    if let Ok(id) = HeaderValue::from_str(call.request_id) {
        headers.insert(X_REQUEST_ID, id);
    }

    let mut upstream_request = Request::new(body);
    *upstream_request.method_mut() = parts.method;
    *upstream_request.uri_mut() = uri;
    *upstream_request.headers_mut() = parts.headers;

    let timeout = call.route.timeout;
    let result = with_timeout(clock, timeout, http.send(upstream_request)).await;
    let mut response = upstream_error(result, timeout)?;
    remove_hop_by_hop(response.headers_mut());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        headers.insert("x-keep", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-keep"));
    }

    #[test]
    fn forwarded_for_appends_once() {
        let client = ClientInfo {
            ip: Some("203.0.113.9".parse().unwrap()),
            https: true,
        };
        let mut headers = HeaderMap::new();
        set_forwarding_headers(
            &mut headers,
            Some(&client),
            Some(HeaderValue::from_static("gw.example")),
        );
        assert_eq!(headers["x-forwarded-for"], "203.0.113.9");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "gw.example");

        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.1, 203.0.113.9"),
        );
        set_forwarding_headers(&mut headers, Some(&client), None);
        assert_eq!(headers["x-forwarded-for"], "198.51.100.1, 203.0.113.9");

        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.1"));
        set_forwarding_headers(&mut headers, Some(&client), None);
        assert_eq!(headers["x-forwarded-for"], "198.51.100.1, 203.0.113.9");
    }
}
