//! HTTP mechanics the pipeline uses: path normalisation ([`normalize`]),
//! route matching ([`routing`]), the REST upstream proxy ([`proxy`]), their
//! config ([`config`]) and the body-size check.

pub mod config;
pub mod normalize;
pub mod proxy;
pub mod routing;

use bytes::Bytes;
use http::{header, Request};

pub use config::{PathRewrite, ProxyRoute, UpstreamBase};
pub use proxy::{ClientInfo, RuntimeDeadline, X_REQUEST_ID};

use crate::error::GatewayError;

/// 413 when `request`'s declared (`Content-Length`) or actual body is
/// larger than `limit` bytes.
pub fn check_body_size(request: &Request<Bytes>, limit: usize) -> Result<(), GatewayError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = |n: u64| n > limit as u64;
    if declared.is_some_and(too_large) || too_large(request.body().len() as u64) {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    Ok(())
}
