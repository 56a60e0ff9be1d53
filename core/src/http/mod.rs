//! HTTP mechanics the pipeline uses: path normalisation ([`normalize`]),
//! route matching ([`routing`]), the REST upstream proxy ([`proxy`]), their
//! config ([`config`]) and the bounded request-body reader ([`read_body`]).

pub mod config;
pub mod normalize;
pub mod proxy;
pub mod routing;

use std::fmt::Display;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;

pub use config::{PathRewrite, ProxyRoute, UpstreamBase};
pub use proxy::{ClientInfo, RuntimeDeadline, X_REQUEST_ID};

use crate::error::GatewayError;

/// The request's `Content-Length`, when it is a valid number.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Reads a request body into memory, never more than `limit` bytes of it.
///
/// 413 when the declared `Content-Length` (or the body's own size hint) is
/// above `limit`, before anything is read; 413 as soon as a body without
/// one (chunked) grows past `limit`, without reading the rest. 400 when the
/// body cannot be read (the client went away mid-body). Trailers are
/// ignored.
pub async fn read_body<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, GatewayError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Display,
{
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    let too_large = || GatewayError::PayloadTooLarge { limit };
    if declared_length(headers).is_some_and(|n| n > limit_u64)
        || body.size_hint().lower() > limit_u64
    {
        return Err(too_large());
    }
    let mut body = std::pin::pin!(body);
    // One data frame (the usual case on both runtimes) is returned as is.
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut total: usize = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            tracing::debug!(error = %e, "reading the request body failed");
            GatewayError::invalid_request("The request body could not be read.", None)
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total > limit {
            return Err(too_large());
        }
        match (&mut joined, first.take()) {
            (Some(joined), _) => joined.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (None, Some(previous)) => {
                let mut buffer = BytesMut::with_capacity(previous.len() + data.len());
                buffer.extend_from_slice(&previous);
                buffer.extend_from_slice(&data);
                joined = Some(buffer);
            }
        }
    }
    Ok(match joined {
        Some(joined) => joined.freeze(),
        None => first.unwrap_or_default(),
    })
}
