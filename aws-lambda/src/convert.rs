//! Conversion between lambda_http's request and the core's `http` types.

use std::net::IpAddr;

use gateway_core::ClientInfo;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;

/// Attaches the caller's address to the Lambda event request as
/// [`ClientInfo`]. The body stays a `lambda_http::Body`, read by the core
/// through its `http_body::Body` implementation (after routing and
/// authentication, bounded by the route's limit): the crate that defines
/// the body's variants converts them, so a variant added upstream cannot
/// silently become an empty body here.
pub fn into_core_request(mut request: lambda_http::Request) -> lambda_http::Request {
    let client = client_info(&request);
    request.extensions_mut().insert(client);
    request
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
