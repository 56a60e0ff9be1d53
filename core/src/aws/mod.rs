//! The two pieces of the AWS wire protocol the gateway speaks without the
//! AWS SDK (which cannot run on wasm32): Signature Version 4 request
//! signing and the `application/vnd.amazon.eventstream` framing used by
//! Bedrock's streaming APIs. Both are pure functions over bytes.

pub mod event_stream;
pub mod sigv4;
