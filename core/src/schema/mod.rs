//! The config file's schema and the checker domains validate it with.
//!
//! [`raw`] is the file as written (serde types, unknown fields refused);
//! [`validate`] collects path-precise issues. Each domain turns its part of
//! the raw config into typed values (`http::config`, `auth::config`,
//! `quota::config`, `ai::config`, `admin::config`); [`crate::config`]
//! assembles them into the [`crate::Config`] the pipeline runs on. The
//! schema sits below the domains so that each can validate its part without
//! depending on the assembly.

pub mod raw;
pub(crate) mod validate;
pub(crate) mod yaml;
