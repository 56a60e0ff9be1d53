//! Lambda cold-start harness for `scripts/bench`: a minimal Lambda runtime
//! API (`GET /2018-06-01/runtime/invocation/next`, `POST
//! …/invocation/{id}/response` and the `…/error` endpoints) on 127.0.0.1,
//! so a bootstrap binary's init can be timed without the Lambda service or
//! an emulator in between.
//!
//! Each run starts the binary with `AWS_LAMBDA_RUNTIME_API` pointing here and
//! records: **init** (process start until its first `next` call, i.e. ready
//! for an invocation: config parsed, clients built), **first invocation**
//! (the event handed out until the streamed response has fully arrived), and
//! the process's peak RSS (`VmHWM`) right after the first response. Then the
//! process is killed and the next run starts.
//!
//! Usage: `bench-coldstart --bin PATH [--runs 10] [--path /v1/chat/completions]
//! [--body JSON] [--env NAME=VALUE]...`. Prints one JSON object with a list
//! per measure.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::{mpsc, Mutex};

const PREFIX: &str = "/2018-06-01/runtime";

#[derive(Debug)]
enum Event {
    Next,
    Response { status: u16, bytes: usize },
    Error(String),
}

struct Harness {
    events: mpsc::UnboundedSender<(Event, Instant)>,
    handed_out: Mutex<bool>,
    event: String,
}

fn args_named(args: &[String], name: &str) -> Vec<String> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].clone())
        .collect()
}

/// A Lambda Function URL event (payload format 2.0), as the Function URL
/// sends it to `lambda_http`.
fn function_url_event(path: &str, body: &str) -> String {
    serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "host": "bench.lambda-url.us-east-1.on.aws",
            "content-type": "application/json",
            "user-agent": "bench-coldstart",
            "x-forwarded-proto": "https",
            "x-forwarded-for": "127.0.0.1"
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "bench",
            "domainName": "bench.lambda-url.us-east-1.on.aws",
            "domainPrefix": "bench",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "bench-coldstart"
            },
            "requestId": "bench-request",
            "routeKey": "$default",
            "stage": "$default",
            "time": "30/Nov/2026:00:00:00 +0000",
            "timeEpoch": 1_764_460_800_000_u64
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

fn reply(status: u16, body: impl Into<Bytes>) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(body.into()));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    response
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The HTTP status in a streamed response's JSON prelude (the part before
/// the eight NUL bytes), or 200 for a buffered response.
fn streamed_status(body: &[u8]) -> u16 {
    let Some(end) = body.windows(8).position(|w| w == [0u8; 8]) else {
        return 200;
    };
    serde_json::from_slice::<serde_json::Value>(&body[..end])
        .ok()
        .and_then(|prelude| {
            prelude
                .get("statusCode")
                .and_then(serde_json::Value::as_u64)
        })
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(0)
}

async fn runtime_api(
    harness: Arc<Harness>,
    request: hyper::Request<Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(reply(404, "not a runtime API path"));
    };
    if rest == "/invocation/next" {
        let _ = harness.events.send((Event::Next, Instant::now()));
        let first = !std::mem::replace(&mut *harness.handed_out.lock().await, true);
        if !first {
            // One invocation per process: later polls wait until the kill.
            std::future::pending::<()>().await;
        }
        let mut response = reply(200, harness.event.clone());
        let headers = response.headers_mut();
        let deadline = (unix_ms() + 60_000).to_string();
        for (name, value) in [
            ("lambda-runtime-aws-request-id", "bench-invocation-1"),
            ("lambda-runtime-deadline-ms", deadline.as_str()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:gateway",
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-6748e000-000000000000000000000000;Parent=0000000000000000;Sampled=0",
            ),
            ("content-type", "application/json"),
        ] {
            if let Ok(value) = http::HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        }
        return Ok(response);
    }
    let body = request
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let event = if rest.ends_with("/response") {
        Event::Response {
            status: streamed_status(&body),
            bytes: body.len(),
        }
    } else {
        Event::Error(format!("{rest}: {}", String::from_utf8_lossy(&body)))
    };
    let _ = harness.events.send((event, Instant::now()));
    Ok(reply(202, r#"{"status":"OK"}"#))
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

struct Run {
    init_ms: f64,
    first_invoke_ms: f64,
    status: u16,
    bytes: usize,
    hwm_kb: u64,
}

async fn one_run(
    bin: &str,
    envs: &[(String, String)],
    event: String,
) -> Result<Run, Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let harness = Arc::new(Harness {
        events: tx,
        handed_out: Mutex::new(false),
        event,
    });
    let server = tokio::spawn(async move {
        let builder = auto::Builder::new(TokioExecutor::new());
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let harness = Arc::clone(&harness);
            let builder = builder.clone();
            tokio::spawn(async move {
                let service = service_fn(move |r| runtime_api(Arc::clone(&harness), r));
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let start = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "gateway")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/gateway")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("the child exited at once")?;

    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        let mut init_at = None;
        while let Some((event, at)) = rx.recv().await {
            match event {
                Event::Next if init_at.is_none() => init_at = Some(at),
                Event::Next => {}
                Event::Response { status, bytes } => {
                    let hwm_kb = vm_hwm_kb(pid).unwrap_or(0);
                    let init_at = init_at.ok_or("a response before any `next` call")?;
                    return Ok(Run {
                        init_ms: (init_at - start).as_secs_f64() * 1000.0,
                        first_invoke_ms: (at - init_at).as_secs_f64() * 1000.0,
                        status,
                        bytes,
                        hwm_kb,
                    });
                }
                Event::Error(message) => return Err(format!("the function reported: {message}")),
            }
        }
        Err("the harness stopped".to_owned())
    })
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    server.abort();
    match outcome {
        Ok(Ok(run)) => Ok(run),
        Ok(Err(message)) => Err(message.into()),
        Err(_) => Err("no response within 30 s".into()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let bin = args_named(&args, "--bin")
        .pop()
        .ok_or("--bin is required")?;
    let runs: usize = args_named(&args, "--runs")
        .pop()
        .map_or(Ok(10), |v| v.parse())?;
    let path = args_named(&args, "--path")
        .pop()
        .unwrap_or_else(|| "/v1/chat/completions".to_owned());
    let body = args_named(&args, "--body").pop().unwrap_or_else(|| {
        r#"{"model":"mock-gpt","messages":[{"role":"user","content":"Hello"}],"max_tokens":16}"#
            .to_owned()
    });
    let envs: Vec<(String, String)> = args_named(&args, "--env")
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let event = function_url_event(&path, &body);
    let mut lists: [Vec<f64>; 5] = Default::default();
    for _ in 0..runs {
        let run = one_run(&bin, &envs, event.clone()).await?;
        for (list, value) in lists.iter_mut().zip([
            run.init_ms,
            run.first_invoke_ms,
            f64::from(run.status),
            run.bytes as f64,
            run.hwm_kb as f64,
        ]) {
            list.push(value);
        }
    }
    let [init_ms, first_invoke_ms, status, bytes, hwm_kb] = lists;
    println!(
        "{}",
        serde_json::json!({
            "init_ms": init_ms,
            "first_invoke_ms": first_invoke_ms,
            "status": status,
            "response_bytes": bytes,
            "vm_hwm_kb": hwm_kb,
        })
    );
    Ok(())
}
