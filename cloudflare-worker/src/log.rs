//! JSON log lines to the Worker console (`wrangler tail`, Workers Logs),
//! the same shape the Lambda adapter writes.

use std::io::Write;

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
            worker::console_log!("{line}");
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

/// Installs the JSON console subscriber once per isolate.
pub fn init() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_writer(Console)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(true)
        .without_time()
        .with_max_level(tracing::Level::INFO)
        .try_init();
}
