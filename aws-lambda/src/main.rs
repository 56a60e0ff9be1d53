//! The `bootstrap` binary: JSON logs, the gateway built once, and the Lambda
//! runtime loop with response streaming — or, outside Lambda, the native
//! HTTP server.

use std::convert::Infallible;
use std::io::Write as _;

use gateway_aws_lambda::{background, build_gateway, convert, server};
use gateway_core::logging::{JsonLines, LineSink};
use gateway_core::RuntimeDeadline;
use lambda_http::{service_fn, Error, RequestExt};

/// JSON log lines on stdout ([`gateway_core::logging`]): a request's lines
/// with one system call when it has its response, others as they happen.
/// (Writing them from a background thread through a buffer,
/// `tracing-appender`, was measured on the native server: no CPU gain
/// beyond the noise in two A/B runs of scenario (a), and 5 MB more
/// resident memory; not kept. Nor was holding a serving thread's lines
/// until its runtime parks, one `write` for many requests: 53.5 against
/// 52.4 µs per request and the same p50 at one connection, 4 rounds.)
fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(JsonLines::new(Stdout))
        .init();
}

struct Stdout;

impl LineSink for Stdout {
    fn write_lines(&self, lines: &str) {
        // They end with a newline: stdout's line buffer passes them to one
        // `write` (a log line lost to a full pipe is not worth a panic).
        let _ = std::io::stdout().lock().write_all(lines.as_bytes());
    }
}

/// mimalloc instead of glibc's malloc: a request allocates and frees many
/// small buffers across tokio's worker threads, and glibc's malloc showed
/// as ~12% of the native server's CPU under load, with lock contention
/// (`perf`, scenario (a) of `scripts/bench`). Measured: 12% less CPU per
/// request in scenario (a) (A/B in alternating rounds), for ~12 MB more
/// resident memory (mimalloc's segments).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let native = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none();
    let gateway = build_gateway(native).await.map_err(|message| {
        tracing::error!(%message, "gateway failed to start");
        Error::from(message)
    })?;
    if native {
        let listen =
            std::env::var(server::ENV_LISTEN).unwrap_or_else(|_| server::DEFAULT_LISTEN.to_owned());
        let served = match server::threads_from_env() {
            Ok(threads) => server::run(gateway, &listen, threads).await,
            Err(message) => Err(message),
        };
        return served.map_err(|message| {
            tracing::error!(%message, "native server failed");
            Error::from(message)
        });
    }
    // The runtime loop ends when a call to the Lambda runtime API fails (a
    // dropped connection, say). Start it again instead of exiting: the
    // config and clients survive, and no cold start is paid for a transient
    // error. An invocation in flight at that moment is lost either way.
    loop {
        let gateway = gateway.clone();
        let handler = service_fn(move |request: lambda_http::Request| {
            let gateway = gateway.clone();
            async move {
                // Streams and upstream calls end (and settle) before the
                // invocation's deadline, not when Lambda kills it. Only a
                // deadline in the future is one: `cargo lambda watch` sends
                // the constant 600000 (ten minutes after 1970).
                let deadline = request
                    .lambda_context_ref()
                    .map(|context| context.deadline)
                    .filter(|&deadline| deadline > unix_now_ms())
                    .map(|unix_ms| RuntimeDeadline { unix_ms });
                let mut request = convert::into_core_request(request);
                if let Some(deadline) = deadline {
                    request.extensions_mut().insert(deadline);
                }
                let response = gateway.handle_body(request).await;
                Ok::<_, Infallible>(background::settled(response).await)
            }
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
