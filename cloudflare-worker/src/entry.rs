//! The fetch handler: converts the Workers request to the core's types,
//! builds the gateway once per isolate, and returns its (streaming)
//! response.

use std::cell::RefCell;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use futures_util::Stream as _;
use gateway_core::{Body, ClientInfo, Config, Gateway};
use worker::{event, web_sys, Context, Env};

use crate::js_http::{header_map, read_body, ByteStream, JsBody};
use crate::platform::WorkerPlatform;

thread_local! {
    /// Workers run one request handler at a time per isolate thread; the
    /// gateway (config, clients, bindings) lives as long as the isolate.
    static GATEWAY: RefCell<Option<Gateway<WorkerPlatform>>> = const { RefCell::new(None) };
}

fn env_string(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .or_else(|_| env.var(name))
        .ok()
        .map(|v| v.to_string())
}

/// The config text and where it came from, in this order:
/// - the KV entry named by `GATEWAY_CONFIG_KV_KEY` in the `GATEWAY_KV`
///   namespace (Terraform writes the config there under a key that changes
///   with its content; KV values may be 25 MiB, so the config can grow);
/// - the `GATEWAY_CONFIG` variable (Workers caps a plain-text variable at
///   5 KB, and refuses the upload above that);
/// - the embedded example config.
///
/// `${env:…}` references are resolved afterwards, from the Worker's secrets
/// and variables, whatever the source.
async fn config_text(env: &Env) -> Result<(String, String), String> {
    if let Some(key) = env_string(env, crate::ENV_CONFIG_KV_KEY) {
        let source = format!("KV {} key {key:?}", crate::KV_BINDING);
        let kv = env
            .kv(crate::KV_BINDING)
            .map_err(|e| format!("{source}: no KV binding {}: {e}", crate::KV_BINDING))?;
        let text = kv
            .get(&key)
            .text()
            .await
            .map_err(|e| format!("{source}: {e}"))?;
        return match text {
            Some(yaml) => Ok((source, yaml)),
            None => Err(format!(
                "{source}: {} names a key that is not in the namespace (was the config written before the deploy?)",
                crate::ENV_CONFIG_KV_KEY
            )),
        };
    }
    Ok(match env_string(env, crate::ENV_CONFIG) {
        Some(yaml) => (format!("{} variable", crate::ENV_CONFIG), yaml),
        None => (
            "embedded example config".to_owned(),
            gateway_core::config::EXAMPLE_CONFIG.to_owned(),
        ),
    })
}

async fn build_gateway(env: &Env) -> Result<Gateway<WorkerPlatform>, String> {
    let (source, yaml) = config_text(env).await?;
    let config = Config::from_yaml(&yaml, |name| env_string(env, name))
        .map_err(|e| format!("{source}: {e}"))?;
    let platform = WorkerPlatform::from_env(env).map_err(|e| format!("bindings: {e}"))?;
    tracing::info!(config = %source, routes = config.routes.len(), models = config.models.len(), "config loaded");
    Ok(Gateway::new(config, platform))
}

async fn gateway(env: &Env) -> Result<Gateway<WorkerPlatform>, String> {
    if let Some(gateway) = GATEWAY.with_borrow(Clone::clone) {
        return Ok(gateway);
    }
    crate::log::init(env_string(env, crate::ENV_LOG).as_deref());
    let gateway = build_gateway(env).await?;
    GATEWAY.set(Some(gateway.clone()));
    Ok(gateway)
}

/// A config or binding error: the client learns only that the gateway is
/// misconfigured; the details (paths, reasons; never secret values) go to
/// the log.
fn startup_failure(message: &str) -> http::Response<Body> {
    tracing::error!(%message, "gateway failed to start");
    json_error(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        r#"{"error":{"message":"The gateway is misconfigured; see its logs.","code":"gateway_misconfigured"}}"#,
    )
}

fn json_error(status: http::StatusCode, body: &'static str) -> http::Response<Body> {
    let mut response = http::Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Attaches the caller's address and scheme; the body stays a stream: the
/// core reads it after routing and authentication, up to the route's limit.
fn with_client_info<B>(mut request: http::Request<B>) -> http::Request<B> {
    let https = request.uri().scheme_str() == Some("https");
    let ip = request
        .headers()
        .get("cf-connecting-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<IpAddr>().ok());
    request.extensions_mut().insert(ClientInfo { ip, https });
    request
}

/// The request body: read at once when small and sized (see
/// [`js_http`](crate::js_http)), else the JS stream, shared with the
/// handler so that what the core left unread can be drained afterwards.
enum RequestBody {
    Full(Option<bytes::Bytes>),
    Stream(Rc<RefCell<ByteStream>>),
}

impl http_body::Body for RequestBody {
    type Data = bytes::Bytes;
    type Error = gateway_core::BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(http_body::Frame::data(b)))),
            Self::Stream(body) => Pin::new(&mut *body.borrow_mut())
                .poll_next(cx)
                .map_ok(http_body::Frame::data),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Self::Full(bytes) => {
                http_body::SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Self::Stream(_) => http_body::SizeHint::default(),
        }
    }
}

/// The JS request as an `http` request: method, URL, headers (invalid ones
/// dropped) and the body, read at once or streamed. The error (a body
/// that failed to arrive, mostly) is answered 400 by the fetch handler.
async fn http_request(
    request: &web_sys::Request,
) -> Result<(http::Request<RequestBody>, Option<Rc<RefCell<ByteStream>>>), String> {
    let headers = header_map(&request.headers());
    let body = read_body(&headers, request.body(), || request.array_buffer())
        .await
        .map_err(|e| format!("reading the request body: {e:?}"))?;
    let (body, stream) = match body {
        None => (RequestBody::Full(None), None),
        Some(JsBody::Full(bytes)) => (
            RequestBody::Full((!bytes.is_empty()).then_some(bytes)),
            None,
        ),
        Some(JsBody::Stream(stream)) => {
            let stream = Rc::new(RefCell::new(stream));
            (RequestBody::Stream(Rc::clone(&stream)), Some(stream))
        }
    };
    let mut http_request = http::Request::new(body);
    *http_request.method_mut() = http::Method::from_bytes(request.method().as_bytes())
        .map_err(|e| format!("method: {e}"))?;
    *http_request.uri_mut() = request.url().parse().map_err(|e| format!("URL: {e}"))?;
    *http_request.headers_mut() = headers;
    Ok((http_request, stream))
}

/// Unread request bytes drained (read and dropped) after a refusal.
const MAX_DRAIN_BYTES: usize = 1024 * 1024;

/// Reads and drops up to [`MAX_DRAIN_BYTES`] of what the core left unread
/// (it answered 401, 404 or 413 without reading the body). Nothing is
/// kept; larger remainders are left to the runtime. Without it `wrangler
/// dev`'s proxy reports an answer given before the body was read as a
/// worker restart (503).
async fn drain(body: &RefCell<ByteStream>) {
    let mut drained = 0;
    while drained <= MAX_DRAIN_BYTES {
        let next = std::future::poll_fn(|cx| Pin::new(&mut *body.borrow_mut()).poll_next(cx)).await;
        match next {
            Some(Ok(chunk)) => drained += chunk.len(),
            _ => return,
        }
    }
}

#[event(fetch)]
async fn fetch(
    request: worker::Request,
    env: Env,
    ctx: Context,
) -> worker::Result<worker::Response> {
    let gateway = match gateway(&env).await {
        Ok(gateway) => gateway,
        Err(message) => return into_worker_response(startup_failure(&message)),
    };
    #[cfg(feature = "test-hooks")]
    if request.path().starts_with(crate::test_hooks::PREFIX) {
        let request = worker::HttpRequest::try_from(request)?;
        return into_worker_response(crate::test_hooks::handle(request, gateway.platform()).await?);
    }
    let (request, stream) = match http_request(request.inner()).await {
        Ok(converted) => converted,
        Err(message) => {
            // The client left while sending it, mostly; no route is known
            // yet, so the error has the plain JSON shape.
            tracing::info!(%message, "request unreadable");
            return into_worker_response(json_error(
                http::StatusCode::BAD_REQUEST,
                r#"{"error":{"message":"The request could not be read.","code":"invalid_request"}}"#,
            ));
        }
    };
    let response = gateway.handle_body(with_client_info(request)).await;
    if let Some(stream) = stream {
        drain(&stream).await;
    }
    into_worker_response(hold_background_work(&ctx, response))
}

/// Hands the response to workerd. A complete body goes over as one byte
/// array (one copy out of wasm memory; workerd sends it with a
/// `Content-Length`). Only a stream becomes a `ReadableStream` that
/// workerd pulls chunk by chunk through wasm-bindgen: `worker`'s generic
/// `http::Response` conversion would make every body such a stream, and
/// each pull is a promise round trip between JS and wasm (measured with
/// `scripts/bench --emulators`; see docs/benchmarks.md).
fn into_worker_response(response: http::Response<Body>) -> worker::Result<worker::Response> {
    let Some(bytes) = response.body().as_full() else {
        return worker::Response::try_from(response);
    };
    let body = if bytes.is_empty() {
        worker::ResponseBody::Empty
    } else {
        worker::ResponseBody::Body(bytes.to_vec())
    };
    Ok(worker::ResponseBuilder::new()
        .with_status(response.status().as_u16())
        .with_headers(worker::Headers::from(response.headers()))
        .body(body))
}

/// Keeps the request alive (`waitUntil`) until the settlement its response
/// may still trigger has run: streams settle when they end or when the
/// client leaves; a complete reply settled before it was returned, unless
/// something was left to the background.
fn hold_background_work(ctx: &Context, response: http::Response<Body>) -> http::Response<Body> {
    use crate::background::{busy, idle, watch_end};
    if response.body().is_stream() {
        let (parts, body) = response.into_parts();
        let (body, ended) = watch_end(body);
        ctx.wait_until(async move {
            ended.await;
            idle().await;
        });
        return http::Response::from_parts(parts, body);
    }
    if busy() {
        ctx.wait_until(idle());
    }
    response
}
