//! [`RequestContext`]: what the pipeline knows about one request. Created
//! when the request arrives; each phase reads what earlier phases added and
//! adds its own part; observers and the final response phase read it.
//! The cache and guardrail phases will add their status and verdicts here
//! when they land.

use crate::ai::dialects::Dialect;
use crate::ai::router::Attempt;
use crate::ai::AiRequest;
use crate::auth::Identity;
use crate::config::Config;
use crate::error::ErrorShape;
use crate::http::routing::Params;
use crate::http::ClientInfo;
use crate::quota::{RateLimitSnapshot, Reservation, Subject};

/// The matched route (phase 1).
#[derive(Debug, Clone)]
pub struct RouteRef {
    /// Index into `Config::routes`; `None` for the admin API.
    pub index: Option<usize>,
    /// `{name}` captures of the route's path template.
    pub params: Params,
    /// Length of the matched prefix of the path.
    pub matched_len: usize,
}

/// When things happened, in the platform clock's milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub received_ms: u64,
    /// The dispatch phase started (auth, limits and parsing are done).
    pub dispatched_ms: Option<u64>,
    /// The response head was ready.
    pub responded_ms: Option<u64>,
}

/// Everything the pipeline learned about one request.
///
/// It lives in every request's future, so it is kept small: the parts
/// only some routes have (an identity, quota subject, parsed AI request)
/// are boxed, allocated only where they exist (measured: an inline 720-byte
/// context made a proxy round trip ~10 % slower through future copies).
pub struct RequestContext<P: crate::platform::Platform> {
    /// The client's `X-Request-Id` if sane, else a new random one; echoed
    /// on the response.
    pub request_id: String,
    /// Client address and scheme, as the adapter saw them (a request
    /// extension; `None` when the adapter gave none).
    pub client: Option<ClientInfo>,
    /// The error shape of the route (OpenAI JSON on AI routes, Anthropic's
    /// on their Messages paths).
    pub shape: ErrorShape,
    /// The API the client speaks on an AI route (phase 1, from the path).
    pub dialect: Dialect,
    pub route: Option<RouteRef>,
    /// Who is calling (phase 2), when the route requires authentication.
    pub identity: Option<Box<Identity>>,
    /// Indexes into `Config::plans` of the plans that apply: the route's,
    /// then the consumer's (phase 4).
    pub plans: Vec<usize>,
    /// Who the quota counters are about (phase 4).
    pub subject: Option<Box<Subject>>,
    /// Rate-limit state for the response headers (phase 4).
    pub rate_limits: RateLimitSnapshot,
    /// The route has plans: its responses carry rate-limit headers.
    pub limited: bool,
    /// The parsed request of an `ai` route (phase 5).
    pub ai: Option<Box<AiRequest>>,
    /// Index into `Config::models` of the requested model (phase 5).
    pub model: Option<usize>,
    /// The request's prompt tokens, estimated once (phase 5) for the
    /// reservation and for accounting when the provider reports none.
    pub prompt_estimate: u64,
    /// Token and spend limits held until the reply is accounted (phase 6);
    /// moved into the dispatch, which settles it.
    pub reservation: Option<Reservation<P>>,
    /// Deployments tried, in order (dispatch).
    pub attempts: Vec<Attempt>,
    pub timings: Timings,
}

impl<P: crate::platform::Platform> RequestContext<P> {
    pub fn new(request_id: String, client: Option<ClientInfo>, received_ms: u64) -> Self {
        Self {
            request_id,
            client,
            shape: ErrorShape::Gateway,
            dialect: Dialect::OpenAiChat,
            route: None,
            identity: None,
            plans: Vec::new(),
            subject: None,
            rate_limits: RateLimitSnapshot::default(),
            limited: false,
            ai: None,
            model: None,
            prompt_estimate: 0,
            reservation: None,
            attempts: Vec::new(),
            timings: Timings {
                received_ms,
                ..Timings::default()
            },
        }
    }

    /// The route name for logs (empty before routing; `admin` for the
    /// admin API).
    pub fn route_name<'a>(&self, config: &'a Config) -> &'a str {
        match &self.route {
            None => "",
            Some(RouteRef { index: None, .. }) => "admin",
            Some(RouteRef {
                index: Some(index), ..
            }) => config.routes.get(*index).map_or("", |r| r.name.as_str()),
        }
    }

    /// The consumer id for logs and quota subjects.
    pub fn consumer_id(&self) -> Option<&str> {
        self.identity.as_ref().map(|i| i.consumer_id.as_str())
    }
}
