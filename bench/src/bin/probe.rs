//! Streaming probe for `scripts/bench` scenario (c): sends the same
//! streaming request `N` times, one after the other on one keep-alive
//! HTTP/1.1 connection, and records for each the time to the response
//! headers, to the first body byte and to the last body byte, and how many
//! separate body frames arrived (a gateway that buffers a stream delivers
//! fewer, later frames). oha reports none of this.
//!
//! Usage: `bench-probe --url http://127.0.0.1:PORT/path --body JSON
//! [--header 'name: value']... [--n 30]`. Prints one JSON object:
//! `{"status": [...], "headers_ms": [...], "first_byte_ms": [...],
//! "last_byte_ms": [...], "frames": [...], "bytes": [...]}`.

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

fn args_named(args: &[String], name: &str) -> Vec<String> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].clone())
        .collect()
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url: http::Uri = args_named(&args, "--url")
        .pop()
        .ok_or("--url is required")?
        .parse()?;
    let body = Bytes::from(args_named(&args, "--body").pop().unwrap_or_default());
    let n: usize = args_named(&args, "--n")
        .pop()
        .map_or(Ok(30), |v| v.parse())?;
    let headers = args_named(&args, "--header");
    let authority = url.authority().ok_or("the URL has no host")?.clone();
    if url.host() != Some("127.0.0.1") && url.host() != Some("localhost") {
        return Err("the probe only talks to 127.0.0.1".into());
    }

    let mut connection = None;
    let mut out: [Vec<f64>; 6] = Default::default();
    for _ in 0..n {
        if connection.is_none() {
            let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
            stream.set_nodelay(true)?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            connection = Some(sender);
        }
        let Some(sender) = connection.as_mut() else {
            continue;
        };
        sender.ready().await?;
        // Origin form (`/path?query`) on the request line, as clients send
        // it to a server; some servers refuse the absolute form.
        let target = url.path_and_query().map_or("/", |p| p.as_str());
        let mut request = http::Request::post(target)
            .header(http::header::HOST, authority.as_str())
            .header(http::header::CONTENT_TYPE, "application/json");
        for header in &headers {
            if let Some((name, value)) = header.split_once(':') {
                request = request.header(name.trim(), value.trim());
            }
        }
        let request = request.body(Full::new(body.clone()))?;
        let start = Instant::now();
        let response = sender.send_request(request).await?;
        let headers_ms = ms(start);
        let status = response.status().as_u16();
        let keep_alive = response
            .headers()
            .get(http::header::CONNECTION)
            .is_none_or(|v| !v.as_bytes().eq_ignore_ascii_case(b"close"));
        let mut body = response.into_body();
        let (mut first, mut last, mut frames, mut bytes) = (f64::NAN, f64::NAN, 0.0, 0.0);
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame?.data_ref() {
                if data.is_empty() {
                    continue;
                }
                let now = ms(start);
                if first.is_nan() {
                    first = now;
                }
                last = now;
                frames += 1.0;
                bytes += data.len() as f64;
            }
        }
        for (list, value) in
            out.iter_mut()
                .zip([f64::from(status), headers_ms, first, last, frames, bytes])
        {
            list.push(value);
        }
        if !keep_alive {
            connection = None;
        }
    }
    let [status, headers_ms, first, last, frames, bytes] = out;
    let report = serde_json::json!({
        "status": status,
        "headers_ms": headers_ms,
        "first_byte_ms": first,
        "last_byte_ms": last,
        "frames": frames,
        "bytes": bytes,
    });
    println!("{report}");
    Ok(())
}
