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
//!
//! Thread per core, as nginx runs a worker process per core: [`run`] starts
//! `GATEWAY_THREADS` threads (default: one per CPU), each with a
//! single-threaded tokio runtime, its own listening socket on the same port
//! (`SO_REUSEPORT` on Linux: the kernel spreads new connections) and its own
//! upstream connection pool, so a request never changes thread. On the
//! bench's scenario (a) this took about a fifth off the CPU per request
//! against one multi-threaded runtime (its work stealing and cross-thread
//! wake-ups). Stores, caches and config are shared by all threads.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use gateway_core::platform::Platform as _;
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
/// Environment variable with the number of serving threads.
pub const ENV_THREADS: &str = "GATEWAY_THREADS";
/// Where the server listens by default: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9100";
/// How long open connections may take to finish after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How many threads serve: `GATEWAY_THREADS`, else one per CPU.
pub fn threads_from_env() -> Result<usize, String> {
    match std::env::var(ENV_THREADS) {
        Ok(value) => match value.trim().parse::<usize>() {
            Ok(threads) if (1..=1024).contains(&threads) => Ok(threads),
            _ => Err(format!(
                "{ENV_THREADS}={value} is not a thread count (1 to 1024)"
            )),
        },
        Err(_) => Ok(std::thread::available_parallelism().map_or(1, usize::from)),
    }
}

/// `threads` listening sockets on `listen`, all on the same port (the
/// first one's, when `listen` asks for port 0), and the address they have.
fn bind(listen: &str, threads: usize) -> Result<(SocketAddr, Vec<std::net::TcpListener>), String> {
    use std::net::ToSocketAddrs as _;
    let address = listen
        .to_socket_addrs()
        .map_err(|e| format!("{ENV_LISTEN}={listen} is not an address: {e}"))?
        .next()
        .ok_or_else(|| format!("{ENV_LISTEN}={listen} resolves to no address"))?;
    let first = listener(address, threads > 1)?;
    let address = first
        .local_addr()
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        let next = if cfg!(target_os = "linux") {
            listener(address, true)?
        } else {
            // Elsewhere SO_REUSEPORT does not spread connections: the
            // threads share one socket.
            listeners[0]
                .try_clone()
                .map_err(|e| format!("cannot share the listening socket: {e}"))?
        };
        listeners.push(next);
    }
    Ok((address, listeners))
}

fn listener(address: SocketAddr, reuse_port: bool) -> Result<std::net::TcpListener, String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let fail = |e: std::io::Error| format!("cannot listen on {address}: {e}");
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    #[cfg(target_os = "linux")]
    if reuse_port {
        socket.set_reuse_port(true).map_err(fail)?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = reuse_port;
    socket.set_nonblocking(true).map_err(fail)?;
    socket.bind(&address.into()).map_err(fail)?;
    socket.listen(1024).map_err(fail)?;
    Ok(socket.into())
}

/// The native server: `threads` threads serving `gateway` on `listen` until
/// SIGTERM or Ctrl-C, then drained; then the quota leases go back.
pub async fn run(
    gateway: Gateway<LambdaPlatform>,
    listen: &str,
    threads: usize,
) -> Result<(), String> {
    let (address, listeners) = bind(listen, threads)?;
    tracing::info!(%address, threads, "serving HTTP (not on Lambda: AWS_LAMBDA_RUNTIME_API is unset)");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // A thread that could not build its HTTP client or start its runtime or
    // socket says so here, and the others stop: half a server is not left
    // running silently.
    let (failed, mut failures) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut serving = Vec::with_capacity(threads);
    for (index, listener) in listeners.into_iter().enumerate() {
        let gateway = gateway.clone();
        let mut stopped = stopped.clone();
        let failed = failed.clone();
        let thread = std::thread::Builder::new()
            .name(format!("gateway-{index}"))
            .spawn(move || {
                let served = gateway
                    .platform()
                    .http()
                    .prepare_thread()
                    .map_err(|e| format!("cannot build the HTTP client: {e}"))
                    .and_then(|()| {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .map_err(|e| format!("cannot start a runtime: {e}"))
                    })
                    .and_then(|runtime| {
                        runtime.block_on(async move {
                            let listener = TcpListener::from_std(listener)
                                .map_err(|e| format!("cannot listen on {address}: {e}"))?;
                            let shutdown = async move {
                                let _ = stopped.wait_for(|&stop| stop).await;
                            };
                            serve(gateway, listener, shutdown).await;
                            Ok(())
                        })
                    });
                if let Err(message) = &served {
                    let _ = failed.send(message.clone());
                }
                served
            })
            .map_err(|e| format!("cannot start a serving thread: {e}"))?;
        serving.push(thread);
    }
    drop(failed);
    tokio::select! {
        () = shutdown_signal() => {}
        Some(message) = failures.recv() => {
            tracing::error!(%message, "a serving thread failed; stopping the others");
        }
    }
    tracing::info!("shutting down: draining open connections");
    let _ = stop.send(true);
    let results = tokio::task::spawn_blocking(move || {
        serving
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|_| Err("a serving thread panicked".into()))
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| format!("cannot wait for the serving threads: {e}"))?;
    // Quota this instance leased and did not use goes back to the counters
    // (plans with `lease:`); otherwise it would be lost until its window ends.
    let returned = gateway.return_leases().await;
    if returned > 0 {
        tracing::info!(units = returned, "quota leases returned");
    }
    results.into_iter().collect()
}

/// Serves `gateway` on `listener` until `shutdown` resolves, then drains
/// its connections and waits for the background settlements.
async fn serve(
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
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("connections still open after the drain timeout");
        }
    }
    // This thread's runtime ends with this function: the settlements it
    // started must have run (the count is global; any thread's will do).
    crate::background::idle().await;
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
