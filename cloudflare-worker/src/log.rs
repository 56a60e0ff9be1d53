//! JSON log lines to the Worker console (`wrangler tail`, Workers Logs),
//! the same shape the Lambda adapter writes, filtered by the `RUST_LOG`
//! variable like on Lambda.

use std::io::Write;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;

/// Buffers one formatted event and hands it to `console.log` when dropped.
pub struct ConsoleLine(Vec<u8>);

impl Write for ConsoleLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ConsoleLine {
    fn drop(&mut self) {
        let line = String::from_utf8_lossy(&self.0);
        let line = line.trim_end();
        if !line.is_empty() {
            // Straight to `console.log`: `worker::console_log!` would
            // format the line into a second String first.
            web_sys::console::log_1(&wasm_bindgen::JsValue::from_str(line));
        }
    }
}

pub struct Console;

impl<'a> MakeWriter<'a> for Console {
    type Writer = ConsoleLine;

    fn make_writer(&'a self) -> ConsoleLine {
        ConsoleLine(Vec::with_capacity(256))
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
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(Console)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(true)
        .without_time();
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(targets)
        .try_init();
    if let Some(Err(error)) = parsed {
        tracing::warn!(%error, "RUST_LOG does not parse; logging at info");
    }
}
