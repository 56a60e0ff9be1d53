//! Cloudflare Workers adapter: runs `gateway_core::Gateway` in workerd.
//!
//! - Config: the `GATEWAY_KV` entry named by `GATEWAY_CONFIG_KV_KEY`
//!   (Terraform writes it there; no 5 KB cap), else the `GATEWAY_CONFIG`
//!   variable with the YAML text (`wrangler.toml` `[vars]` or `--var`; at
//!   most 5 KB), else the embedded example config. Read once per isolate.
//!   `${env:NAME}` references resolve from Worker secrets and variables.
//! - Ports: `worker::Fetch` upstream (streaming bodies), the JS clock,
//!   `crypto.getRandomValues`, KV (`GATEWAY_KV`) and the `QuotaCounter`
//!   Durable Object (`GATEWAY_QUOTA`, one object per quota key).
//! - Logs: JSON lines to the console, filtered by the `RUST_LOG` variable
//!   (`info` when unset).
//! - The gateway is built once per isolate and reused across requests.
//!
//! The binding and variable names below are the contract with
//! `wrangler.toml` and Terraform; they compile on every target so tests can
//! check that infra and code agree.

/// Variable holding the YAML config (at most 5 KB: Workers' cap on a
/// plain-text variable).
pub const ENV_CONFIG: &str = "GATEWAY_CONFIG";
/// Variable naming the `GATEWAY_KV` key that holds the YAML config; takes
/// precedence over `GATEWAY_CONFIG`. Terraform uses it (no 5 KB cap).
pub const ENV_CONFIG_KV_KEY: &str = "GATEWAY_CONFIG_KV_KEY";
/// Variable holding the log filter (`info` when unset; `warn`,
/// `gateway_core=debug,info`, …: levels per target, no span filters).
pub const ENV_LOG: &str = "RUST_LOG";
/// KV namespace binding (API keys, cached responses, JWKS).
pub const KV_BINDING: &str = "GATEWAY_KV";
/// Durable Object namespace binding for quota counters.
pub const QUOTA_BINDING: &str = "GATEWAY_QUOTA";
/// The Durable Object class implementing quota counters.
pub const QUOTA_CLASS: &str = "QuotaCounter";

#[cfg(target_arch = "wasm32")]
mod background;
#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
mod js_http;
#[cfg(target_arch = "wasm32")]
mod log;
#[cfg(target_arch = "wasm32")]
mod platform;
#[cfg(target_arch = "wasm32")]
mod quota_object;
#[cfg(all(target_arch = "wasm32", feature = "test-hooks"))]
mod test_hooks;
