//! The request pipeline. [`Gateway::handle`] runs, in this order:
//!
//! 1. request id: the client's `X-Request-Id` if it is sane, else a new one;
//!    echoed on every response;
//! 2. route match (config order, first match wins) → 404 / 405;
//! 3. body limit of the route → 413;
//! 4. dispatch: REST proxy or AI API;
//! 5. account: one access log event per request (route, status, latency),
//!    and a `gateway::usage` event per completion.
//!
//! (Authentication, authorization and quotas slot in between 2 and 4 as they
//! land.) Every failure is a [`GatewayError`], logged once here and rendered
//! in the route's error shape; `handle` never panics on input and never
//! fails: it always returns a response.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use tracing::Instrument;

use crate::ai::{self, hex};
use crate::ai::{AiCall, QuotaCall};
use crate::auth::{self, AuthState};
use crate::body::Body;
use crate::config::{Config, RouteAction};
use crate::error::{ErrorOrigin, ErrorShape, GatewayError};
use crate::platform::{Clock, MaybeSend, Platform};
use crate::proxy::ClientInfo;
use crate::proxy::{self, ProxyCall, X_REQUEST_ID};
use crate::quota::{self, LimitStatus, Plan, QuotaState, RateLimitSnapshot, Subject, Unit};
use crate::routing::{check_path, RouteMatch, Router};

/// Longest client-supplied request id that is kept.
const MAX_REQUEST_ID_LEN: usize = 128;

/// State shared by all requests of one instance.
pub(crate) struct Shared<P> {
    pub(crate) platform: P,
    pub(crate) config: Config,
    router: Router,
    pub(crate) auth: AuthState,
    pub(crate) quota: QuotaState,
}

impl<P: Platform> Shared<P> {
    /// A `'static`, cloneable handle on the platform clock, for streams that
    /// outlive the request handler.
    pub(crate) fn clock(self: &Arc<Self>) -> PlatformClock<P> {
        PlatformClock(Arc::clone(self))
    }
}

/// The platform's clock behind an `Arc`, so it can move into streams.
pub(crate) struct PlatformClock<P>(Arc<Shared<P>>);

impl<P> Clone for PlatformClock<P> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<P: Platform> Clock for PlatformClock<P> {
    fn now_unix_ms(&self) -> u64 {
        self.0.platform.clock().now_unix_ms()
    }

    fn sleep(
        &self,
        duration: Duration,
    ) -> impl std::future::Future<Output = ()> + MaybeSend + use<P> {
        self.0.platform.clock().sleep(duration)
    }
}

/// The gateway: config plus the ports of one runtime. Cheap to clone.
pub struct Gateway<P> {
    shared: Arc<Shared<P>>,
}

impl<P> Clone for Gateway<P> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// What a routed request is, for the error shape and the access log.
struct Routed {
    name: String,
    shape: ErrorShape,
    consumer: Option<String>,
    /// The route has quota plans: its responses carry rate-limit headers.
    limited: bool,
    snapshot: RateLimitSnapshot,
}

impl<P: Platform> Gateway<P> {
    pub fn new(config: Config, platform: P) -> Self {
        let router = Router::new(config.routes.iter().map(|r| r.matcher.clone()).collect());
        let auth = AuthState::new(&config.auth);
        Self {
            shared: Arc::new(Shared {
                platform,
                config,
                router,
                auth,
                quota: QuotaState::default(),
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    pub fn platform(&self) -> &P {
        &self.shared.platform
    }

    /// Handles one request. Always returns a response; see the module docs
    /// for the phases.
    pub async fn handle(&self, request: Request<Bytes>) -> Response<Body> {
        let clock = self.shared.platform.clock();
        let started = clock.now_unix_ms();
        let request_id = self.request_id(&request);
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            method = %request.method(),
            path = %request.uri().path(),
        );
        async {
            let mut routed = Routed {
                name: String::new(),
                shape: ErrorShape::Gateway,
                consumer: None,
                limited: false,
                snapshot: RateLimitSnapshot::default(),
            };
            let result = self.dispatch(request, &request_id, &mut routed).await;
            let mut response = match result {
                Ok(response) => response,
                Err(error) => {
                    log_error(&error);
                    if let GatewayError::RateLimited { snapshot, .. } = &error {
                        routed.snapshot.merge(*snapshot);
                    }
                    error.into_response(routed.shape, &request_id)
                }
            };
            if routed.limited {
                if let Some(tokens) = response.extensions().get::<RateLimitSnapshot>().copied() {
                    routed.snapshot.merge(tokens);
                }
                set_rate_limit_headers(
                    response.headers_mut(),
                    &routed.snapshot,
                    clock.now_unix_ms(),
                    routed.shape == ErrorShape::OpenAi,
                );
            }
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(X_REQUEST_ID, value);
            }
            let latency_ms = clock.now_unix_ms().saturating_sub(started);
            tracing::info!(
                route = %routed.name,
                consumer = routed.consumer.as_deref().unwrap_or_default(),
                status = response.status().as_u16(),
                latency_ms,
                streaming = response.body().is_stream(),
                "request"
            );
            response
        }
        .instrument(span)
        .await
    }

    async fn dispatch(
        &self,
        request: Request<Bytes>,
        request_id: &str,
        routed: &mut Routed,
    ) -> Result<Response<Body>, GatewayError> {
        let shared = &self.shared;
        let path = request.uri().path();
        check_path(path).map_err(GatewayError::InvalidPath)?;
        if let Some(admin) = &shared.config.admin {
            if let Some(subpath) = below_prefix(path, &admin.path_prefix) {
                routed.name = "admin".into();
                let subpath = subpath.to_owned();
                return auth::admin::handle_admin(
                    &shared.config,
                    &shared.platform,
                    &shared.auth,
                    admin,
                    &subpath,
                    request,
                )
                .await;
            }
        }
        let host = request_host(&request);
        let (index, params, matched_len) =
            match shared.router.find(request.method(), host.as_deref(), path) {
                RouteMatch::Found {
                    route,
                    params,
                    matched_len,
                } => (route, params, matched_len),
                RouteMatch::MethodNotAllowed { allow } => {
                    return Err(GatewayError::MethodNotAllowed {
                        method: request.method().clone(),
                        path: path.to_owned(),
                        allow,
                    })
                }
                RouteMatch::NotFound => {
                    return Err(GatewayError::RouteNotFound {
                        method: request.method().clone(),
                        path: path.to_owned(),
                    })
                }
            };
        let route = &shared.config.routes[index];
        routed.name.clone_from(&route.name);
        if matches!(route.action, RouteAction::Ai(_)) {
            routed.shape = ErrorShape::OpenAi;
        }

        let identity = match &route.auth {
            Some(policy) => {
                let identity = auth::authenticate(
                    &shared.config,
                    &shared.platform,
                    &shared.auth,
                    policy,
                    request.headers(),
                )
                .await?;
                routed.consumer = Some(identity.consumer_id.clone());
                auth::authorize_route(&identity, policy, &route.name)?;
                Some(identity)
            }
            None => None,
        };

        let declared_len = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let too_large = |n: u64| n > route.max_body_bytes as u64;
        if declared_len.is_some_and(too_large) || too_large(request.body().len() as u64) {
            return Err(GatewayError::PayloadTooLarge {
                limit: route.max_body_bytes,
            });
        }

        // Phase 4: request limits of the route's and the consumer's plans.
        let mut plans: Vec<&Plan> = Vec::new();
        if let Some(plan) = route.plan.map(|i| &shared.config.plans[i]) {
            plans.push(plan);
        }
        let consumer_plan = identity
            .as_ref()
            .and_then(|i| i.consumer.as_ref())
            .and_then(|c| c.plan.as_deref())
            .and_then(|name| shared.config.plan(name));
        if let Some(plan) = consumer_plan.filter(|p| !plans.iter().any(|q| q.name == p.name)) {
            plans.push(plan);
        }
        let subject = Subject {
            consumer: identity.as_ref().map(|i| i.consumer_id.clone()),
            route: route.name.clone(),
            model: None,
            ip: request.extensions().get::<ClientInfo>().and_then(|c| c.ip),
        };
        if !plans.is_empty() {
            routed.limited = true;
            let consumed = quota::consume(
                &shared.platform,
                &shared.quota,
                &plans,
                &subject,
                |_, limit| (limit.unit == Unit::Requests).then_some(1),
            )
            .await;
            match consumed {
                Ok((_, snapshot)) => routed.snapshot.merge(snapshot),
                Err(GatewayError::RateLimited { ref snapshot, .. }) => {
                    routed.snapshot.merge(*snapshot);
                    return Err(consumed.err().unwrap_or(GatewayError::QuotaUnavailable));
                }
                Err(error) => return Err(error),
            }
        }

        match &route.action {
            RouteAction::Proxy(proxy_route) => {
                let call = ProxyCall {
                    route: proxy_route,
                    params: &params,
                    matched_len,
                    request_id,
                    auth: route.auth.as_ref(),
                    identity: identity.as_ref(),
                };
                proxy::forward(
                    shared.platform.http(),
                    shared.platform.clock(),
                    call,
                    request,
                )
                .await
            }
            RouteAction::Ai(ai_route) => {
                let subpath = path.get(matched_len..).unwrap_or_default().to_owned();
                let call = AiCall {
                    route_name: &route.name,
                    route: ai_route,
                    request_id,
                    identity: identity.as_ref(),
                    quota: QuotaCall { plans, subject },
                };
                ai::handle_ai(shared, call, &subpath, request).await
            }
        }
    }

    /// Keeps a client's `X-Request-Id` when it is 1–128 visible ASCII
    /// characters; otherwise makes a new random one.
    fn request_id(&self, request: &Request<Bytes>) -> String {
        if let Some(id) = request
            .headers()
            .get(X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
        {
            if !id.is_empty()
                && id.len() <= MAX_REQUEST_ID_LEN
                && id.bytes().all(|b| b.is_ascii_graphic())
            {
                return id.to_owned();
            }
        }
        let mut bytes = [0u8; 16];
        self.shared.platform.fill_random(&mut bytes);
        hex(&bytes)
    }
}

/// `RateLimit-Limit`/`-Remaining`/`-Reset` (the IETF draft's fields, for
/// the most constrained request limit, else token limit) and, on AI routes,
/// OpenAI's `x-ratelimit-*-requests` / `-tokens` (they replace any the
/// upstream sent: clients see the gateway's limits, not the provider's).
fn set_rate_limit_headers(
    headers: &mut http::HeaderMap,
    snapshot: &RateLimitSnapshot,
    now_ms: u64,
    openai: bool,
) {
    let reset_s = |s: &LimitStatus| s.reset_ms.saturating_sub(now_ms).div_ceil(1000);
    if let Some(primary) = snapshot.requests.or(snapshot.tokens) {
        headers.insert("ratelimit-limit", HeaderValue::from(primary.max));
        headers.insert("ratelimit-remaining", HeaderValue::from(primary.remaining));
        headers.insert("ratelimit-reset", HeaderValue::from(reset_s(&primary)));
    }
    if !openai {
        return;
    }
    for (kind, status) in [("requests", snapshot.requests), ("tokens", snapshot.tokens)] {
        for name in ["limit", "remaining", "reset"] {
            headers.remove(format!("x-ratelimit-{name}-{kind}"));
        }
        if let Some(status) = status {
            let pairs = [
                ("limit", status.max.to_string()),
                ("remaining", status.remaining.to_string()),
                ("reset", format!("{}s", reset_s(&status))),
            ];
            for (name, value) in pairs {
                if let (Ok(name), Ok(value)) = (
                    http::HeaderName::try_from(format!("x-ratelimit-{name}-{kind}")),
                    HeaderValue::try_from(value),
                ) {
                    headers.insert(name, value);
                }
            }
        }
    }
}

/// The rest of `path` when it is `prefix` or below it (segment boundary).
fn below_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// The request's host without port: the `Host` header, else the URI's.
fn request_host(request: &Request<Bytes>) -> Option<String> {
    let raw = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().host())?;
    let host = if raw.starts_with('[') {
        // IPv6 literal: keep the brackets, drop the port.
        raw.split_inclusive(']').next().unwrap_or(raw)
    } else {
        raw.split(':').next().unwrap_or(raw)
    };
    Some(host.to_owned())
}

/// Logs an error once, at the level its origin deserves, with the detail
/// that the client does not see.
fn log_error(error: &GatewayError) {
    let status = error.status().as_u16();
    let code = error.code();
    match error.origin() {
        ErrorOrigin::Client => tracing::info!(status, code, error = %error, "request rejected"),
        ErrorOrigin::Upstream => {
            tracing::warn!(status, code, error = %error, detail = error.detail().unwrap_or_default(), "upstream failed");
        }
        ErrorOrigin::Internal => {
            tracing::error!(
                status,
                code,
                detail = error.detail().unwrap_or_default(),
                "internal error"
            );
        }
    }
}
