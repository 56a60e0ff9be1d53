//! HTTP mechanics the pipeline uses: path normalisation ([`normalize`]),
//! route matching ([`routing`]), the REST
//! upstream proxy ([`proxy`]) and their config ([`config`]).

pub mod config;
pub mod normalize;
pub mod proxy;
pub mod routing;

pub use config::{PathRewrite, ProxyRoute, UpstreamBase};
pub use proxy::{ClientInfo, X_REQUEST_ID};
