//! [`Gateway`]: the config plus one runtime's ports, built once per cold
//! start (Lambda) or isolate (Workers); [`Gateway::handle`] runs the request
//! pipeline (`crate::pipeline`, where the phases and their order are
//! documented).

use std::fmt::Display;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body as HttpBody;
use http_body_util::Full;

use crate::body::Body;
use crate::config::Config;
use crate::pipeline::{self, Shared};
use crate::platform::{MaybeSend, Platform};

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

impl<P: Platform> Gateway<P> {
    pub fn new(config: Config, platform: P) -> Self {
        Self {
            shared: Arc::new(Shared::new(config, platform)),
        }
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    pub fn platform(&self) -> &P {
        &self.shared.platform
    }

    /// Handles one request whose body is already in memory. Always returns
    /// a response: every failure is rendered in the route's error shape,
    /// and input never panics.
    pub async fn handle(&self, request: Request<Bytes>) -> Response<Body> {
        pipeline::run(&self.shared, request.map(Full::new)).await
    }

    /// Handles one request with a body still to be read (what the adapters
    /// call). The body is read only once the request is routed and
    /// authenticated, and never past the route's `max_body_bytes` (the
    /// admin API's limit for admin calls): a larger `Content-Length` is
    /// refused unread, a chunked body is cut at the limit (413).
    pub async fn handle_body<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: HttpBody<Data = Bytes> + MaybeSend,
        B::Error: Display,
    {
        pipeline::run(&self.shared, request).await
    }

    /// Ends this instance's quota leases and gives their unused part back
    /// to the counters (plans with `lease:`); returns how many units went
    /// back. Call it when the instance is about to stop: a lease that is
    /// never returned is lost capacity until its window ends (see
    /// `quota::lease`).
    pub async fn return_leases(&self) -> u64 {
        crate::quota::return_leases(&*self.shared.platform, &self.shared.quota).await
    }

    /// Units this instance holds unused in quota leases.
    pub fn leased_units(&self) -> u64 {
        self.shared.quota.leases.held()
    }
}
