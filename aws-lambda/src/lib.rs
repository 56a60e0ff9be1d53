//! AWS Lambda adapter: runs `gateway_core::Gateway` behind a Function URL or
//! API Gateway with response streaming, so SSE reaches the client chunk by
//! chunk. The binary (`src/main.rs`) is `bootstrap` in the deployed zip;
//! outside Lambda (no `AWS_LAMBDA_RUNTIME_API`) it serves HTTP itself
//! ([`server`], on `GATEWAY_LISTEN`, default `127.0.0.1:9100`).
//!
//! Environment (the names are the contract with `infra/`; a test checks the
//! Terraform uses them):
//! - `GATEWAY_CONFIG_PATH`: YAML config file; unset → the embedded example
//!   config (mock provider, no key needed).
//! - `GATEWAY_STORE`: `memory` (default) or `dynamodb` (consumers and API
//!   keys in the table named by `GATEWAY_TABLE`).
//! - `GATEWAY_SSM_PREFIX`: SSM Parameter Store path whose parameters the
//!   config can reference as `${env:NAME}` (provider keys), read at cold start.
//! - `RUST_LOG`: log filter, default `info`. Logs are JSON lines.
//! - `GATEWAY_THREADS` (native server only): how many threads serve, each
//!   with a runtime of its own; default: one per CPU.
//!
//! Config, secrets, upstream client and stores are built once per cold start.

pub mod background;
pub mod convert;
pub mod dynamodb;
pub mod platform;
pub mod secrets;
pub mod server;

use std::collections::HashMap;

use gateway_core::{Config, Gateway};

use crate::platform::{LambdaPlatform, ReqwestClient, StoreChoice};

/// Environment variable naming the config file.
pub const ENV_CONFIG_PATH: &str = "GATEWAY_CONFIG_PATH";
/// Environment variable choosing the store: `memory` or `dynamodb`.
pub const ENV_STORE: &str = "GATEWAY_STORE";
/// Environment variable naming the DynamoDB table (with `dynamodb`).
pub const ENV_TABLE: &str = "GATEWAY_TABLE";
/// Environment variable naming the SSM path of provider secrets.
pub const ENV_SSM_PREFIX: &str = "GATEWAY_SSM_PREFIX";
/// The Lambda runtime the binary is built for (`cargo lambda build`).
pub const LAMBDA_RUNTIME: &str = "provided.al2023";
/// The default architecture (`cargo lambda build --arm64`).
pub const LAMBDA_ARCHITECTURE: &str = "arm64";

fn load_config(secrets: &HashMap<String, String>) -> Result<Config, String> {
    let (source, yaml) = match std::env::var(ENV_CONFIG_PATH) {
        Ok(path) => {
            let yaml = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {ENV_CONFIG_PATH}={path}: {e}"))?;
            (path, yaml)
        }
        Err(_) => (
            "embedded example config".to_owned(),
            gateway_core::config::EXAMPLE_CONFIG.to_owned(),
        ),
    };
    let lookup = |name: &str| {
        secrets
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    };
    let config = Config::from_yaml(&yaml, lookup).map_err(|e| format!("{source}: {e}"))?;
    tracing::info!(config = %source, routes = config.routes.len(), models = config.models.len(), secrets = secrets.len(), "config loaded");
    Ok(config)
}

/// Builds the gateway from the environment (once per cold start). The
/// native server asks for an upstream connection pool per thread
/// (`http_per_thread`); Lambda shares one.
pub async fn build_gateway(http_per_thread: bool) -> Result<Gateway<LambdaPlatform>, String> {
    let store = StoreChoice::from_env(
        std::env::var(ENV_STORE).ok().as_deref(),
        std::env::var(ENV_TABLE).ok(),
    )?;
    let ssm_prefix = std::env::var(ENV_SSM_PREFIX).ok().filter(|p| !p.is_empty());
    // Credentials and region come from the Lambda environment (the function's
    // role); AWS_ENDPOINT_URL_* point tests at an emulator.
    let sdk = match (&store, &ssm_prefix) {
        (StoreChoice::Memory, None) => None,
        _ => Some(aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await),
    };
    let secrets = match (&sdk, &ssm_prefix) {
        (Some(sdk), Some(prefix)) => secrets::load_parameters(sdk, prefix).await?,
        _ => HashMap::new(),
    };
    let config = load_config(&secrets)?;
    tracing::info!(store = ?store, "store selected");
    let http = if http_per_thread {
        ReqwestClient::PerThread
    } else {
        ReqwestClient::shared().map_err(|e| format!("cannot build the HTTP client: {e}"))?
    };
    Ok(Gateway::new(
        config,
        LambdaPlatform::new(http, store, sdk.as_ref()),
    ))
}
