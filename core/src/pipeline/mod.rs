//! The request pipeline: one function, [`run`], takes a request through the
//! phases below in this fixed order. A [`RequestContext`] travels through
//! them; each phase reads what earlier phases added, adds its part, and
//! may end the request with a [`GatewayError`] (rendered in the route's
//! error shape by [`respond`]).
//!
//! | # | phase | file | reads | adds | errors |
//! |---|---|---|---|---|---|
//! | 1 | route: path normalisation, admin prefix, route match | [`route`] | request (its path is normalised) | `route`, `shape` | 400 path, 404, 405 |
//! | 2 | authenticate + authorize the route | [`authenticate`] | `route` | `identity` | 401, 403, 503 store |
//! | 3 | protect: read the body, bounded by the route's limit | [`protect`] | `route` | the request body | 400, 413 |
//! | 4 | limit: request limits of the route's and consumer's plans | [`limit`] | `route`, `identity`, `client` | `plans`, `subject`, `rate_limits` | 429, 503 |
//! | 5 | AI request: operation, body parse (and a dialect's stored state: Responses conversations), model and its authorization | [`ai_request`] | `route`, `identity`, `dialect` | `ai`, `model`, `prompt_estimate` | 400, 403, 404, 405, 503 store |
//! | 6 | reserve: token and spend limits (and per-model request limits) | [`limit`] | `ai`, `model`, `plans`, `subject` | `reservation`, `rate_limits` | 429, 503 |
//! | 7 | (transform, prompt, guard in — not yet) | | | | |
//! | 8 | (cache lookup — not yet) | | | | |
//! | 9 | dispatch: REST proxy, AI router or admin API; observers attached to the response body | [`dispatch`] | everything | `attempts`, `timings` | 4xx/5xx from upstream, 502, 504 |
//! | 10 | respond: error rendering, rate-limit and request-id headers, access log | [`respond`] | everything | — | — |
//!
//! Phases 1 and 2 see the request head only: the body is read in phase 3,
//! after routing and authentication, and never past the route's limit.
//! The admin API (below `admin.path_prefix`) skips phases 2–8: it checks
//! its own key, then reads the body (up to 64 KiB). A phase is a function of `(shared state, context,
//! request)`; a new capability is a new phase in [`phases`] or a new body
//! observer (`crate::body::observe`), not a branch inside another phase.

pub mod ai_request;
pub mod authenticate;
pub mod context;
pub mod dispatch;
pub mod limit;
pub mod protect;
pub mod respond;
pub mod route;

use std::fmt::Display;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body as HttpBody;
use tracing::Instrument;

pub use self::context::RequestContext;
use self::route::Matched;
use crate::auth::AuthState;
use crate::body::Body;
use crate::config::Config;
use crate::error::GatewayError;
use crate::http::routing::Router;
use crate::http::ClientInfo;
use crate::platform::{Clock, MaybeSend, Platform};
use crate::quota::QuotaState;

/// State shared by all requests of one instance: config, ports and the
/// per-instance caches.
pub struct Shared<P> {
    pub platform: Arc<P>,
    pub config: Config,
    pub router: Router,
    pub auth: AuthState,
    pub quota: QuotaState,
}

impl<P: Platform> Shared<P> {
    pub fn new(config: Config, platform: P) -> Self {
        let router = Router::new(config.routes.iter().map(|r| r.matcher.clone()).collect());
        let auth = AuthState::new(&config.auth);
        Self {
            platform: Arc::new(platform),
            config,
            router,
            auth,
            quota: QuotaState::default(),
        }
    }
}

/// Runs one request through the pipeline. Never fails and never panics on
/// input: every error becomes a response.
pub async fn run<P, B>(shared: &Arc<Shared<P>>, request: Request<B>) -> Response<Body>
where
    P: Platform,
    B: HttpBody<Data = Bytes> + MaybeSend,
    B::Error: Display,
{
    // Phases 1 and 2 see the head only; phase 3 reads the body (bounded).
    let (parts, body) = request.into_parts();
    let request = Request::from_parts(parts, Bytes::new());
    let received_ms = shared.platform.clock().now_unix_ms();
    let request_id = route::request_id(&*shared.platform, &request);
    let client = request.extensions().get::<ClientInfo>().copied();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    async {
        let mut ctx = RequestContext::new(request_id, client, received_ms);
        let result = phases(shared, &mut ctx, request, body).await;
        respond::respond(shared, &mut ctx, result)
    }
    .instrument(span)
    .await
}

/// Phases 1–9, in order; see the module docs.
async fn phases<P, B>(
    shared: &Arc<Shared<P>>,
    ctx: &mut RequestContext<P>,
    mut request: Request<Bytes>,
    body: B,
) -> Result<Response<Body>, GatewayError>
where
    P: Platform,
    B: HttpBody<Data = Bytes> + MaybeSend,
    B::Error: Display,
{
    if let Matched::Admin { subpath } = route::route(shared, ctx, &mut request)? {
        return dispatch::admin(shared, &subpath, request, body).await;
    }
    authenticate::authenticate(shared, ctx, &request).await?;
    protect::protect(shared, ctx, &mut request, body).await?;
    limit::requests(shared, ctx).await?;
    ai_request::ai_request(shared, ctx, &request).await?;
    limit::reserve(shared, ctx).await?;
    dispatch::dispatch(shared, ctx, request).await
}

/// The config of the matched route (`None` before phase 1 and for the
/// admin API).
fn route_config<'a, P: Platform>(
    shared: &'a Shared<P>,
    ctx: &RequestContext<P>,
) -> Option<&'a crate::config::Route> {
    let index = ctx.route.as_ref()?.index?;
    shared.config.routes.get(index)
}
