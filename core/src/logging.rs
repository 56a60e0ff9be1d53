//! The gateway's log line: one JSON object per event, the same on every
//! runtime, handed whole to a [`LineSink`] (stdout on Lambda and the native
//! server, `console.log` on the Worker).
//!
//! ```json
//! {"level":"INFO","message":"request","route":"openai-api","status":200,
//!  "target":"gateway_core::pipeline::respond",
//!  "span":{"name":"request","request_id":"3a4b…","method":"POST","path":"/v1/chat/completions"}}
//! ```
//!
//! Fields in the order they were declared; strings, `%Display` and `?Debug`
//! values as JSON strings, integers and booleans as themselves, floats as
//! numbers (`null` when not finite); `span` holds the innermost span's
//! fields and name. No timestamp: CloudWatch and Workers Logs stamp lines.
//!
//! Written by hand rather than with `tracing-subscriber`'s JSON formatter,
//! which builds a `serde_json::Value` per field and parses the span's stored
//! JSON back on every event: on the native server, two log lines per request
//! through it were about a fifth of the CPU per request of scenario (a) of
//! `scripts/bench`. This writes straight into one reused buffer.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Where finished lines go: `lines` is one or more complete JSON objects,
/// each followed by a newline (so a line-buffered stdout writes them with
/// one system call).
pub trait LineSink: 'static {
    fn write_lines(&self, lines: &str);
}

/// A `tracing` layer writing each event as one JSON line to `S`.
pub struct JsonLines<S> {
    sink: S,
}

impl<S: LineSink> JsonLines<S> {
    pub fn new(sink: S) -> Self {
        Self { sink }
    }
}

/// A span's fields, formatted once when it is created: `,"k":v,"k2":v2`.
struct SpanFields(String);

/// The lines logged inside a root span (the pipeline's `request` span),
/// written together when it closes: one write per request instead of one
/// per line (the `write` calls were most of what logging still cost the
/// native server). The span closes when the request has its response, so
/// lines wait milliseconds; those logged after it (a stream's usage) are
/// written at once.
struct HeldLines(String);

thread_local! {
    /// One buffer per thread, reused across events (no allocation once it
    /// has grown to the longest line).
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
}

impl<S, Sub> Layer<Sub> for JsonLines<S>
where
    S: LineSink,
    Sub: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, Sub>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = String::new();
        attrs.record(&mut FieldWriter(&mut fields));
        let mut extensions = span.extensions_mut();
        extensions.insert(SpanFields(fields));
        if span.parent().is_none() {
            extensions.insert(HeldLines(String::new()));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, Sub>) {
        let Some(span) = ctx.span(&id) else { return };
        let held = span.extensions_mut().remove::<HeldLines>();
        if let Some(HeldLines(lines)) = held.filter(|held| !held.0.is_empty()) {
            self.sink.write_lines(&lines);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, Sub>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut FieldWriter(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, Sub>) {
        let write = |line: &mut String| {
            line.clear();
            line.push_str("{\"level\":\"");
            line.push_str(level_name(*event.metadata().level()));
            line.push('"');
            event.record(&mut FieldWriter(line));
            line.push_str(",\"target\":");
            push_json_str(line, event.metadata().target());
            let span = ctx.event_span(event);
            if let Some(span) = &span {
                line.push_str(",\"span\":{\"name\":");
                push_json_str(line, span.name());
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    line.push_str(fields);
                }
                line.push('}');
            }
            line.push_str("}\n");
            // Held by the root span, if it holds lines (see `HeldLines`).
            let mut root = span;
            while let Some(parent) = root.as_ref().and_then(|span| span.parent()) {
                root = Some(parent);
            }
            if let Some(root) = root {
                if let Some(HeldLines(held)) = root.extensions_mut().get_mut::<HeldLines>() {
                    held.push_str(line);
                    return;
                }
            }
            self.sink.write_lines(line);
        };
        // A value's Debug impl that logs would find the buffer taken: it
        // gets a buffer of its own instead of a panic.
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => write(&mut line),
            Err(_) => write(&mut String::new()),
        });
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// Appends `,"name":value` for each field to a buffer.
struct FieldWriter<'a>(&'a mut String);

impl FieldWriter<'_> {
    fn key(&mut self, field: &Field) {
        self.0.push(',');
        push_json_str(self.0, field.name());
        self.0.push(':');
    }
}

impl Visit for FieldWriter<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            // Debug keeps the point (`-1.0`), as serde_json writes floats.
            let _ = write!(self.0, "{value:?}");
        } else {
            self.0.push_str("null");
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.0, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.0, "{value}");
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.0.push_str(if value { "true" } else { "false" });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        push_json_str(self.0, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        self.0.push('"');
        let _ = write!(Escaped(self.0), "{value:?}");
        self.0.push('"');
    }
}

/// Appends `value` as a JSON string literal.
fn push_json_str(out: &mut String, value: &str) {
    out.push('"');
    let _ = Escaped(out).write_str(value);
    out.push('"');
}

/// A `fmt::Write` that escapes what it is given for inside a JSON string.
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let out = &mut *self.0;
        let mut clean = 0;
        for (i, byte) in s.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            out.push_str(&s[clean..i]);
            if escape.is_empty() {
                let _ = write!(out, "\\u{byte:04x}");
            } else {
                out.push_str(escape);
            }
            clean = i + 1;
        }
        out.push_str(&s[clean..]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<String>>>);

    impl LineSink for Lines {
        fn write_lines(&self, lines: &str) {
            assert!(lines.ends_with('\n'), "lines end with a newline: {lines:?}");
            self.0.lock().unwrap().push(lines.to_owned());
        }
    }

    /// The lines `body` logs, in order (each sink write split into lines).
    fn capture(body: impl FnOnce()) -> Vec<serde_json::Value> {
        capture_writes(|_| body())
            .iter()
            .flat_map(|write| write.lines().map(str::to_owned).collect::<Vec<_>>())
            .map(|line| {
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect()
    }

    /// What `body` makes the layer write, one string per sink call; `body`
    /// sees the writes so far.
    fn capture_writes(body: impl FnOnce(&Lines)) -> Vec<String> {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(JsonLines::new(lines.clone()));
        tracing::subscriber::with_default(subscriber, || body(&lines));
        let writes = lines.0.lock().unwrap().clone();
        writes
    }

    #[test]
    fn lines_of_a_request_span_are_written_together_when_it_closes() {
        let writes = capture_writes(|lines| {
            tracing::info!("before");
            let span = tracing::info_span!("request", request_id = "r-2");
            {
                let _entered = span.enter();
                tracing::info!(tokens = 1u64, "usage");
                let inner = tracing::info_span!("inner", step = 2u64);
                inner.in_scope(|| tracing::warn!("nested"));
                tracing::info!(status = 200u64, "request");
            }
            assert_eq!(
                lines.0.lock().unwrap().len(),
                1,
                "held until the span closes"
            );
            drop(span);
            tracing::info!("after");
        });
        assert_eq!(writes.len(), 3, "{writes:#?}");
        let held: Vec<serde_json::Value> = writes[1]
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let messages: Vec<_> = held
            .iter()
            .map(|l| l["message"].as_str().unwrap())
            .collect();
        assert_eq!(messages, ["usage", "nested", "request"]);
        assert_eq!(
            held[1]["span"],
            serde_json::json!({"step": 2, "name": "inner"})
        );
        assert_eq!(held[2]["span"]["request_id"], "r-2");
        assert!(writes[2].contains("\"after\""));
    }

    #[test]
    fn an_event_in_a_span_carries_its_fields_and_the_span() {
        let lines = capture(|| {
            let span = tracing::info_span!("request", request_id = %"r-1", path = "/v1/x");
            let _entered = span.enter();
            tracing::info!(
                target: "gateway::usage",
                route = %"api",
                tokens = 12u64,
                delta = -3i64,
                cost_usd = -1.0f64,
                streaming = false,
                "usage"
            );
        });
        assert_eq!(
            lines,
            vec![serde_json::json!({
                "level": "INFO",
                "message": "usage",
                "route": "api",
                "tokens": 12,
                "delta": -3,
                "cost_usd": -1.0,
                "streaming": false,
                "target": "gateway::usage",
                "span": {"request_id": "r-1", "path": "/v1/x", "name": "request"},
            })]
        );
    }

    #[test]
    fn strings_are_escaped_and_odd_numbers_stay_json() {
        let hostile = "quote \" backslash \\ newline \n tab \t bell \u{7} é 🦀";
        let lines = capture(|| {
            tracing::warn!(error = %hostile, debug = ?hostile, nan = f64::NAN, "bad {}", "input");
        });
        let line = &lines[0];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "bad input");
        assert_eq!(line["error"], hostile);
        assert_eq!(line["debug"], format!("{hostile:?}"));
        assert_eq!(line["nan"], serde_json::Value::Null);
        assert!(line.get("span").is_none());
    }

    #[test]
    fn recorded_span_fields_and_events_without_fields_are_kept() {
        let lines = capture(|| {
            let span = tracing::info_span!("job", id = 7u64, late = tracing::field::Empty);
            span.record("late", "yes");
            let _entered = span.enter();
            tracing::error!("plain");
        });
        assert_eq!(
            lines[0],
            serde_json::json!({
                "level": "ERROR",
                "message": "plain",
                "target": "gateway_core::logging::tests",
                "span": {"id": 7, "late": "yes", "name": "job"},
            })
        );
    }
}
