//! Conversion between lambda_http's request and the core's `http` types.

use std::net::IpAddr;

use bytes::Bytes;
use gateway_core::ClientInfo;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;

/// Turns the Lambda event request into the core's request, with the caller's
/// address attached as [`ClientInfo`].
pub fn into_core_request(request: lambda_http::Request) -> http::Request<Bytes> {
    let client = client_info(&request);
    let (mut parts, body) = request.into_parts();
    let body = match body {
        lambda_http::Body::Empty => Bytes::new(),
        lambda_http::Body::Text(text) => Bytes::from(text),
        lambda_http::Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    parts.extensions.insert(client);
    http::Request::from_parts(parts, body)
}

fn client_info(request: &lambda_http::Request) -> ClientInfo {
    let source_ip = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.as_deref(),
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.identity.source_ip.as_deref(),
        _ => None,
    };
    // Function URLs and API Gateway terminate TLS and say so here.
    let https = request
        .headers()
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    ClientInfo {
        ip: source_ip.and_then(|ip| ip.parse::<IpAddr>().ok()),
        https,
    }
}
