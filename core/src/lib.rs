//! # gateway-core
//!
//! Everything the gateway does, independent of where it runs: routing, the
//! REST proxy, the OpenAI-compatible AI API, errors, config. Runtime adapters
//! (AWS Lambda, Cloudflare Workers) implement the ports in [`platform`] and
//! call [`Gateway::handle`].
//!
//! No tokio, reqwest, AWS SDK or worker crate here: the core builds for
//! native targets and `wasm32-unknown-unknown`.

#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod ai;
pub mod auth;
#[cfg(test)]
mod auth_tests;
pub mod aws;
pub mod body;
#[cfg(test)]
mod compat_tests;
pub mod config;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod gateway;
#[cfg(test)]
mod gateway_tests;
pub mod http;
#[cfg(test)]
mod lease_tests;
pub mod logging;
#[cfg(test)]
mod messages_tests;
#[cfg(test)]
mod passthrough_tests;
mod pipeline;
pub mod platform;
pub mod quota;
#[cfg(test)]
mod quota_tests;
#[cfg(test)]
mod reservation_tests;
#[cfg(test)]
mod responses_tests;
pub mod schema;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod util;

pub use body::{Body, BodyError};
pub use config::{Config, ConfigError};
pub use error::GatewayError;
pub use gateway::Gateway;
pub use http::{ClientInfo, RuntimeDeadline};
pub use platform::Platform;
