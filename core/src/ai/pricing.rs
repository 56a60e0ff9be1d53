//! Cost from usage: prices per million tokens from `config/pricing.json`
//! (versioned in the repo, with the date it was taken) or a model's own
//! `pricing` in the config.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::usage::Usage;
use crate::schema::raw::RawPrice;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    /// Prompt tokens served from the provider's cache.
    pub cached_input: f64,
    pub output: f64,
}

impl Price {
    /// Cost of `usage` in USD: uncached prompt, cached prompt and
    /// completion tokens at their own rates.
    pub fn cost_usd(&self, usage: &Usage) -> f64 {
        self.cost_micro_usd(usage) / 1_000_000.0
    }

    /// The same cost in millionths of a dollar: a price per million tokens
    /// is exactly micro-dollars per token, so no division rounds here.
    pub fn cost_micro_usd(&self, usage: &Usage) -> f64 {
        let cached = usage.cached_tokens.min(usage.prompt_tokens);
        let uncached = usage.prompt_tokens - cached;
        uncached as f64 * self.input
            + cached as f64 * self.cached_input
            + usage.completion_tokens as f64 * self.output
    }
}

impl From<RawPrice> for Price {
    fn from(raw: RawPrice) -> Self {
        Self {
            input: raw.input,
            cached_input: raw.cached_input,
            output: raw.output,
        }
    }
}

#[derive(Deserialize)]
struct PricingFile {
    taken: String,
    models: HashMap<String, Price>,
}

const PRICING_JSON: &str = include_str!("../../../config/pricing.json");

fn table() -> &'static PricingFile {
    static TABLE: OnceLock<PricingFile> = OnceLock::new();
    TABLE.get_or_init(|| {
        serde_json::from_str(PRICING_JSON).unwrap_or_else(|_| PricingFile {
            taken: String::new(),
            models: HashMap::new(),
        })
    })
}

/// The date the built-in prices were taken.
pub fn pricing_date() -> &'static str {
    &table().taken
}

/// The price a deployment is charged at: its configured `pricing`, else the
/// built-in price of its upstream model.
pub fn deployment_price(configured: Option<Price>, upstream_model: &str) -> Option<Price> {
    configured.or_else(|| builtin_price(upstream_model))
}

/// The built-in price of `upstream_model`: an exact id, else the longest
/// priced name it starts with followed by `-` (dated variants).
pub fn builtin_price(upstream_model: &str) -> Option<Price> {
    let models = &table().models;
    if let Some(price) = models.get(upstream_model) {
        return Some(*price);
    }
    models
        .iter()
        .filter(|(name, _)| {
            upstream_model
                .strip_prefix(name.as_str())
                .is_some_and(|rest| rest.starts_with('-'))
        })
        .max_by_key(|(name, _)| name.len())
        .map(|(_, price)| *price)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pricing_file_parses_and_dated_ids_match() {
        assert!(!pricing_date().is_empty());
        let mini = builtin_price("gpt-4o-mini").unwrap();
        assert_eq!(builtin_price("gpt-4o-mini-2024-07-18"), Some(mini));
        assert_ne!(
            builtin_price("gpt-4o-2024-08-06"),
            Some(mini),
            "longest prefix wins"
        );
        assert_eq!(builtin_price("unknown-model"), None);
    }

    #[test]
    fn cost_prices_cached_tokens_separately() {
        let price = Price {
            input: 3.0,
            cached_input: 0.3,
            output: 15.0,
        };
        let usage = Usage {
            prompt_tokens: 1_000_000,
            completion_tokens: 100_000,
            total_tokens: 1_100_000,
            cached_tokens: 500_000,
        };
        let cost = price.cost_usd(&usage);
        assert!((cost - (1.5 + 0.15 + 1.5)).abs() < 1e-9, "{cost}");
    }
}
