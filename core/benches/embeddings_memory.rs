//! Peak memory of one large translated embeddings request: 2048 texts to a
//! Gemini deployment answering 3072-dimension vectors (21 batches), through
//! `Gateway::handle` on the in-memory platform, response body drained.
//!
//! Run: `cargo bench -p gateway-core --features test-util --bench
//! embeddings_memory`. Prints the process's peak resident set (`VmHWM`,
//! Linux only) before and after the request, and the response size. The
//! upstream replies are built once, before the first measurement, so the
//! growth is the gateway's own.

use bytes::Bytes;
use futures_executor::block_on;
use futures_util::StreamExt;
use gateway_core::testing::{FakeHttp, FakeReply, TestPlatform};
use gateway_core::{Body, Config, Gateway};
use http::{Request, Response};

const INPUTS: usize = 2048;
const DIMENSIONS: usize = 3072;
const BATCH: usize = 100;

const CONFIG: &str = r"
providers:
  gemini: { kind: gemini, base_url: 'http://gemini.internal/v1beta', api_key: '${env:KEY}' }
models:
  - { name: embed, provider: gemini, upstream_model: gemini-embedding-001 }
routes:
  - { name: ai, match: { path_prefix: /v1 }, ai: {} }
";

/// Peak resident set size in KiB (0 where `/proc` is missing).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A `batchEmbedContents` answer with `n` vectors of plausible floats.
fn gemini_reply(n: usize) -> Bytes {
    let mut out = String::from("{\"embeddings\":[");
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"values\":[");
        for d in 0..DIMENSIONS {
            if d > 0 {
                out.push(',');
            }
            let x = ((i * DIMENSIONS + d) as f64 * 0.618_033_988_7).fract() - 0.5;
            out.push_str(&format!("{:.9}", x / 16.0));
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    Bytes::from(out)
}

fn main() {
    let format = std::env::args()
        .skip(1)
        .find(|a| a == "base64" || a == "float")
        .unwrap_or_else(|| "float".to_owned());
    let full = gemini_reply(BATCH);
    let last = gemini_reply(INPUTS % BATCH);
    let http = FakeHttp::unrecorded(move |request| {
        let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap_or_default();
        let n = body["requests"].as_array().map_or(0, Vec::len);
        let reply = if n == BATCH {
            full.clone()
        } else {
            last.clone()
        };
        FakeReply::Respond(Response::new(Body::from(reply)))
    });
    let config = Config::from_yaml(CONFIG, |_| Some("k".to_owned())).expect("bench config");
    let gateway = Gateway::new(config, TestPlatform::new(http));
    let inputs: Vec<String> = (0..INPUTS).map(|i| format!("text number {i}")).collect();
    let body = serde_json::json!({"model": "embed", "input": inputs, "encoding_format": format});
    let request = Request::post("/v1/embeddings")
        .body(Bytes::from(body.to_string()))
        .expect("request");

    let before = peak_rss_kib();
    let response = block_on(gateway.handle(request));
    let status = response.status();
    let bytes = block_on(
        response
            .into_body()
            .map(|c| c.map_or(0, |b| b.len()))
            .fold(0usize, |a, n| async move { a + n }),
    );
    let after = peak_rss_kib();
    println!(
        "embeddings {INPUTS}x{DIMENSIONS} ({format}): status {status}, response {:.1} MiB, \
         peak RSS {:.1} MiB before, {:.1} MiB after (+{:.1} MiB)",
        bytes as f64 / 1048576.0,
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / 1024.0,
    );
}
