//! JSON log lines to the Worker console (`wrangler tail`, Workers Logs),
//! the same shape the Lambda adapter writes, filtered by the `RUST_LOG`
//! variable like on Lambda.

use gateway_core::logging::{JsonLines, LineSink};
use tracing_subscriber::filter::Targets;

/// Each line straight to `console.log` (`worker::console_log!` would format
/// it into a second String first).
pub struct Console;

impl LineSink for Console {
    fn write_lines(&self, lines: &str) {
        // One call per line: Workers Logs parses each entry as one object.
        for line in lines.lines() {
            web_sys::console::log_1(&wasm_bindgen::JsValue::from_str(line));
        }
    }
}

/// Installs the JSON console subscriber once per isolate, filtered by
/// `filter`: the `RUST_LOG` variable's value (`info` when unset), in the
/// usual `target=level,level` syntax without span or regex filters (e.g.
/// `warn`, `gateway_core=debug,info`). A filter that does not parse falls
/// back to `info` and says so once.
pub fn init(filter: Option<&str>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let parsed = filter.map(str::parse::<Targets>);
    let targets = match &parsed {
        Some(Ok(targets)) => targets.clone(),
        _ => Targets::new().with_default(tracing::Level::INFO),
    };
    let _ = tracing_subscriber::registry()
        .with(JsonLines::new(Console))
        .with(targets)
        .try_init();
    if let Some(Err(error)) = parsed {
        tracing::warn!(%error, "RUST_LOG does not parse; logging at info");
    }
}
