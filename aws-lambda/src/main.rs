//! AWS Lambda adapter: runs `gateway_core::Gateway` behind a Function URL or
//! API Gateway with response streaming, so SSE reaches the client chunk by
//! chunk.
//!
//! Environment:
//! - `GATEWAY_CONFIG_PATH`: YAML config file; unset → the embedded example
//!   config (mock provider, no key needed).
//! - `GATEWAY_STORE`: `memory` (default) or `dynamodb` (consumers and API
//!   keys in the table named by `GATEWAY_TABLE`).
//! - `RUST_LOG`: log filter, default `info`. Logs are JSON lines.
//! - Anything the config references as `${env:NAME}`.
//!
//! Config, upstream client and stores are built once per cold start.

mod convert;
mod dynamodb;
mod platform;

use std::convert::Infallible;

use gateway_core::{Config, Gateway};
use lambda_http::{service_fn, Error};

use crate::platform::{LambdaPlatform, ReqwestClient, StoreChoice, ENV_STORE, ENV_TABLE};

/// Environment variable naming the config file.
pub const ENV_CONFIG_PATH: &str = "GATEWAY_CONFIG_PATH";

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(true)
        .without_time()
        .init();
}

fn load_config() -> Result<Config, String> {
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
    let config = Config::from_yaml(&yaml, |name| std::env::var(name).ok())
        .map_err(|e| format!("{source}: {e}"))?;
    tracing::info!(config = %source, routes = config.routes.len(), models = config.models.len(), "config loaded");
    Ok(config)
}

async fn build_gateway() -> Result<Gateway<LambdaPlatform>, String> {
    let config = load_config()?;
    let store = StoreChoice::from_env(
        std::env::var(ENV_STORE).ok().as_deref(),
        std::env::var(ENV_TABLE).ok(),
    )?;
    tracing::info!(store = ?store, "store selected");
    let http = ReqwestClient::new().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    Ok(Gateway::new(config, LambdaPlatform::new(http, store).await))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let gateway = build_gateway().await.map_err(|message| {
        tracing::error!(%message, "gateway failed to start");
        Error::from(message)
    })?;
    // The runtime loop ends when a call to the Lambda runtime API fails (a
    // dropped connection, say). Start it again instead of exiting: the
    // config and clients survive, and no cold start is paid for a transient
    // error. An invocation in flight at that moment is lost either way.
    loop {
        let gateway = gateway.clone();
        let handler = service_fn(move |request: lambda_http::Request| {
            let gateway = gateway.clone();
            async move { Ok::<_, Infallible>(gateway.handle(convert::into_core_request(request)).await) }
        });
        match lambda_http::run_with_streaming_response_concurrent(handler).await {
            Ok(()) => return Ok(()),
            Err(error) => {
                tracing::error!(error = %error, "Lambda runtime loop failed; restarting it");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
