//! Native HTTP server mode. Outside Lambda (no `AWS_LAMBDA_RUNTIME_API`)
//! the `gateway` binary serves HTTP itself, with the same config, stores
//! and secrets as on Lambda: the fast local development server, and a way to
//! run the gateway in a container (ECS/Fargate, Cloud Run, Kubernetes).
//!
//! hyper 1 through hyper-util's `auto` builder: HTTP/1.1 with keep-alive
//! and h2c (HTTP/2 over cleartext, prior knowledge) on one port, response
//! bodies streamed chunk by chunk, `TCP_NODELAY` so small SSE chunks leave
//! at once. SIGTERM or Ctrl-C stops accepting, lets open connections finish
//! (at most [`DRAIN_TIMEOUT`]) and waits for background settlements.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use gateway_core::{Body, ClientInfo, Gateway};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::platform::LambdaPlatform;

/// Environment variable with the address to listen on.
pub const ENV_LISTEN: &str = "GATEWAY_LISTEN";
/// Where the server listens by default: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9100";
/// How long open connections may take to finish after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `gateway` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    gateway: Gateway<LambdaPlatform>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        let gateway = gateway.clone();
        let service = service_fn(move |request| respond(gateway.clone(), peer, request));
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining open connections");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("connections still open after the drain timeout");
        }
    }
    crate::background::idle().await;
    // Quota this instance leased and did not use goes back to the counters
    // (plans with `lease:`); otherwise it would be lost until its window ends.
    let returned = gateway.return_leases().await;
    if returned > 0 {
        tracing::info!(units = returned, "quota leases returned");
    }
}

/// One request: the caller's address attached; the body stays a stream,
/// read by the gateway after routing and authentication, never past the
/// route's `max_body_bytes` (413 in the route's shape).
async fn respond(
    gateway: Gateway<LambdaPlatform>,
    peer: SocketAddr,
    request: hyper::Request<Incoming>,
) -> Result<http::Response<Body>, Infallible> {
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(ClientInfo {
        ip: Some(peer.ip()),
        https: false,
    });
    Ok(gateway
        .handle_body(http::Request::from_parts(parts, body))
        .await)
}

/// Resolves on SIGTERM (what container runtimes send) or Ctrl-C.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
