//! The config checker every domain uses to validate its part of the raw
//! config: it collects every issue (with the path of the value) instead of
//! stopping at the first, and resolves `${env:NAME}` references.
//!
//! Each domain adds its checks in an `impl Validator` block in its own
//! `config.rs` (`http::config`, `auth::config`, `quota::config`,
//! `ai::config`, `admin::config`); `crate::config` orchestrates them.

use std::fmt;
use std::time::Duration;

use crate::util::Secret;

/// One problem in the config, with the path of the value it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a config, one per line.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid gateway config:")?;
        for issue in &self.issues {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}

/// Collects config issues; see the module docs.
pub(crate) struct Validator<'e> {
    pub(crate) env: &'e dyn Fn(&str) -> Option<String>,
    pub(crate) issues: Vec<ConfigIssue>,
}

impl<'e> Validator<'e> {
    pub(crate) fn new(env: &'e dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            env,
            issues: Vec::new(),
        }
    }

    pub(crate) fn issue(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
        });
    }

    /// A number that must be greater than zero when it is set.
    pub(crate) fn positive<T: Copy + PartialEq + From<u8>>(
        &mut self,
        path: &str,
        value: Option<T>,
        default: T,
    ) -> T {
        match value {
            Some(n) if n == T::from(0) => {
                self.issue(path, "must be greater than 0");
                default
            }
            Some(n) => n,
            None => default,
        }
    }

    pub(crate) fn timeout(
        &mut self,
        path: &str,
        value: Option<u64>,
        default: Duration,
    ) -> Duration {
        match self.positive(path, value, 0) {
            0 => default,
            ms => Duration::from_millis(ms),
        }
    }

    /// Replaces every `${env:NAME}` in `value`.
    pub(crate) fn interpolate(&mut self, path: &str, value: &str) -> Option<String> {
        match interpolate(value, self.env) {
            Ok(s) => Some(s),
            Err(m) => {
                self.issue(path, m);
                None
            }
        }
    }

    /// A credential field: must be exactly one `${env:NAME}` reference.
    pub(crate) fn secret(&mut self, path: &str, value: &str) -> Option<Secret> {
        let Some(name) = value
            .strip_prefix("${env:")
            .and_then(|v| v.strip_suffix('}'))
        else {
            self.issue(
                path,
                "secrets are never written in the config: use a reference like `${env:OPENAI_API_KEY}`",
            );
            return None;
        };
        match (self.env)(name) {
            Some(secret) if !secret.is_empty() => Some(Secret::new(secret)),
            _ => {
                self.issue(path, format!("environment variable `{name}` is not set"));
                None
            }
        }
    }
}

/// Replaces `${env:NAME}` references; names are `[A-Za-z0-9_]+`.
pub fn interpolate(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unterminated `${{` in `{value}`"));
        };
        let reference = &after[..end];
        let Some(name) = reference.strip_prefix("env:") else {
            return Err(format!(
                "unknown reference `${{{reference}}}`: only `${{env:NAME}}` is supported"
            ));
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid environment variable name `{name}`"));
        }
        match env(name) {
            Some(v) => out.push_str(&v),
            None => return Err(format!("environment variable `{name}` is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub(crate) fn join_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
