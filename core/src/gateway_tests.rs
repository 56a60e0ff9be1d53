//! `Gateway::handle` end to end on the in-memory platform: no sockets.

use bytes::Bytes;
use futures_executor::block_on;
use futures_util::StreamExt;
use http::{header, Request, Response, StatusCode};
use serde_json::Value;

use crate::platform::{HttpClientError, HttpClientErrorKind};
use crate::testing::{EndlessBody, FakeHttp, FakeReply, TestPlatform};
use crate::{Body, ClientInfo, Config, Gateway};

const CONFIG: &str = r"
providers:
  mock: { kind: mock }
  upstream: { kind: openai, base_url: 'http://llm.internal/v1', api_key: '${env:LLM_KEY}' }
  gemini: { kind: gemini, base_url: 'http://gemini.internal/v1beta', api_key: '${env:LLM_KEY}' }
  azure: { kind: azure, base_url: 'https://res.openai.azure.com', api_key: '${env:LLM_KEY}', api_version: '2024-10-21' }
models:
  - { name: mock-gpt, provider: mock }
  - { name: big, provider: upstream, upstream_model: big-2025-01 }
  - { name: azure-gpt, provider: azure, upstream_model: my-deployment }
  - { name: gemini-embed, provider: gemini, upstream_model: gemini-embedding-001 }
  - name: tuned
    provider: upstream
    upstream_model: big-2025-01
    params: { temperature: 0.1, reasoning_effort: low, dimensions: 256, max_completion_tokens: 1000 }
  - name: resilient
    provider: upstream
    upstream_model: primary
    fallbacks:
      - { provider: azure, upstream_model: backup-deployment }
      - { provider: mock }
routes:
  - name: ai
    match: { path_prefix: /v1 }
    ai: { timeout_ms: 1000 }
  - name: items
    match: { path: '/items/{id}', methods: [GET] }
    proxy: { url: 'http://rest.internal/base', rewrite: '/v2/things/{id}' }
  - name: rest
    match: { path_prefix: /api, methods: [GET, POST] }
    max_body_bytes: 16
    proxy: { url: 'http://rest.internal/base', strip_prefix: true, timeout_ms: 500 }
";

fn gateway(http: FakeHttp) -> Gateway<TestPlatform> {
    let config = Config::from_yaml(CONFIG, |name| {
        (name == "LLM_KEY").then(|| "sk-test-key".to_owned())
    })
    .unwrap();
    Gateway::new(config, TestPlatform::new(http))
}

fn echo_upstream() -> FakeHttp {
    FakeHttp::new(|_| {
        let mut response = Response::new(Body::from("upstream-body"));
        response
            .headers_mut()
            .insert("x-upstream", "yes".parse().unwrap());
        response
            .headers_mut()
            .insert("connection", "close".parse().unwrap());
        FakeReply::Respond(response)
    })
}

fn send(gw: &Gateway<TestPlatform>, request: Request<Bytes>) -> (http::response::Parts, Bytes) {
    let response = block_on(gw.handle(request));
    let (parts, body) = response.into_parts();
    let bytes = block_on(body.collect(usize::MAX)).unwrap();
    (parts, bytes)
}

fn json(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

#[test]
fn proxy_forwards_method_path_query_headers_body() {
    let http = echo_upstream();
    let gw = gateway(http.clone());
    let mut request = Request::post("/api/a/b?q=1&r=two")
        .header("host", "gw.example:8443")
        .header("x-custom", "kept")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "dropped")
        .header("te", "trailers")
        .header("x-request-id", "client-id-1")
        .body(Bytes::from_static(b"payload"))
        .unwrap();
    request.extensions_mut().insert(ClientInfo {
        ip: Some("198.51.100.7".parse().unwrap()),
        https: true,
    });
    let (parts, body) = send(&gw, request);
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, "upstream-body");
    assert_eq!(parts.headers["x-upstream"], "yes");
    assert!(!parts.headers.contains_key("connection"));
    assert_eq!(parts.headers["x-request-id"], "client-id-1");

    let sent = &http.requests()[0];
    assert_eq!(sent.method(), http::Method::POST);
    assert_eq!(
        sent.uri().to_string(),
        "http://rest.internal/base/a/b?q=1&r=two"
    );
    assert_eq!(sent.body(), "payload");
    let h = sent.headers();
    assert_eq!(h["x-custom"], "kept");
    assert!(!h.contains_key("x-hop") && !h.contains_key("te") && !h.contains_key("connection"));
    assert!(
        !h.contains_key(header::HOST),
        "the client's Host must not reach the upstream"
    );
    assert_eq!(h["x-forwarded-for"], "198.51.100.7");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "gw.example:8443");
    assert_eq!(h["x-request-id"], "client-id-1");
}

#[test]
fn request_id_is_generated_when_missing_or_unsafe() {
    let http = echo_upstream();
    let gw = gateway(http.clone());
    let (parts, _) = send(
        &gw,
        Request::get("/api/x")
            .header("x-request-id", "bad id\t")
            .body(Bytes::new())
            .unwrap(),
    );
    let id = parts.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(http.requests()[0].headers()["x-request-id"], id.as_str());
    let (parts2, _) = send(&gw, Request::get("/api/x").body(Bytes::new()).unwrap());
    assert_ne!(parts2.headers["x-request-id"], id.as_str());
}

#[test]
fn path_rewrite_uses_captured_params() {
    let http = echo_upstream();
    let gw = gateway(http.clone());
    let (parts, _) = send(
        &gw,
        Request::get("/items/42?full=1").body(Bytes::new()).unwrap(),
    );
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(
        http.requests()[0].uri().to_string(),
        "http://rest.internal/base/v2/things/42?full=1"
    );
}

#[test]
fn unknown_path_is_404_json_and_wrong_method_405() {
    let gw = gateway(echo_upstream());
    let (parts, body) = send(&gw, Request::get("/nowhere").body(Bytes::new()).unwrap());
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    assert_eq!(parts.headers[header::CONTENT_TYPE], "application/json");
    let body = json(&body);
    assert_eq!(body["error"]["code"], "route_not_found");
    assert_eq!(
        body["error"]["request_id"],
        parts.headers["x-request-id"].to_str().unwrap()
    );

    let (parts, body) = send(&gw, Request::delete("/api/x").body(Bytes::new()).unwrap());
    assert_eq!(parts.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(parts.headers[header::ALLOW], "GET, POST");
    assert_eq!(json(&body)["error"]["code"], "method_not_allowed");
}

#[test]
fn oversized_body_is_413_before_any_upstream_call() {
    let http = echo_upstream();
    let gw = gateway(http.clone());
    let (parts, body) = send(
        &gw,
        Request::post("/api/x")
            .body(Bytes::from(vec![b'a'; 17]))
            .unwrap(),
    );
    assert_eq!(parts.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json(&body)["error"]["code"], "payload_too_large");
    let (parts, _) = send(
        &gw,
        Request::post("/api/x")
            .header("content-length", "999999")
            .body(Bytes::new())
            .unwrap(),
    );
    assert_eq!(parts.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(http.requests().is_empty());
    let (parts, _) = send(
        &gw,
        Request::post("/api/x")
            .body(Bytes::from(vec![b'a'; 16]))
            .unwrap(),
    );
    assert_eq!(parts.status, StatusCode::OK);
}

#[test]
fn chunked_body_is_cut_at_the_limit_and_a_large_content_length_is_not_read() {
    let http = echo_upstream();
    let gw = gateway(http.clone());
    // No Content-Length: reading stops at the first frame past the limit.
    let body = EndlessBody::default();
    let request = Request::post("/api/x").body(body.clone()).unwrap();
    let (parts, bytes) = block_on(gw.handle_body(request)).into_parts();
    assert_eq!(parts.status, StatusCode::PAYLOAD_TOO_LARGE);
    let bytes = block_on(bytes.collect(usize::MAX)).unwrap();
    assert_eq!(json(&bytes)["error"]["code"], "payload_too_large");
    assert_eq!(body.bytes_read(), EndlessBody::FRAME as u64);
    // A Content-Length above the limit: nothing is read at all.
    let body = EndlessBody::default();
    let request = Request::post("/api/x")
        .header("content-length", "52428800")
        .body(body.clone())
        .unwrap();
    let (parts, _) = block_on(gw.handle_body(request)).into_parts();
    assert_eq!(parts.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body.bytes_read(), 0);
    // Nor on a path no route matches (404 without reading).
    let body = EndlessBody::default();
    let request = Request::post("/nowhere").body(body.clone()).unwrap();
    let (parts, _) = block_on(gw.handle_body(request)).into_parts();
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    assert_eq!(body.bytes_read(), 0);
    assert!(http.requests().is_empty());
}

#[test]
fn dot_segments_are_refused() {
    let http = echo_upstream();
    let gw = gateway(http.clone());
    let (parts, _) = send(
        &gw,
        Request::get("/api/../admin").body(Bytes::new()).unwrap(),
    );
    assert_eq!(parts.status, StatusCode::BAD_REQUEST);
    assert!(http.requests().is_empty());
}

#[test]
fn upstream_unreachable_is_502_and_hang_is_504() {
    let gw = gateway(FakeHttp::new(|_| {
        FakeReply::Fail(HttpClientError::new(
            HttpClientErrorKind::Connect,
            "connection refused 10.1.2.3",
        ))
    }));
    let (parts, body) = send(&gw, Request::get("/api/x").body(Bytes::new()).unwrap());
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
    assert!(!String::from_utf8_lossy(&body).contains("10.1.2.3"));

    let gw = gateway(FakeHttp::new(|_| FakeReply::Hang));
    let (parts, body) = send(&gw, Request::get("/api/x").body(Bytes::new()).unwrap());
    assert_eq!(parts.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(json(&body)["error"]["code"], "upstream_timeout");
}

fn chat(body: &str) -> Request<Bytes> {
    Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_owned()))
        .unwrap()
}

#[test]
fn models_lists_configured_names() {
    let gw = gateway(echo_upstream());
    let (parts, body) = send(&gw, Request::get("/v1/models").body(Bytes::new()).unwrap());
    assert_eq!(parts.status, StatusCode::OK);
    let ids: Vec<_> = json(&body)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(
        ids,
        [
            "mock-gpt",
            "big",
            "azure-gpt",
            "gemini-embed",
            "tuned",
            "resilient"
        ]
    );
}

#[test]
fn mock_completion_is_deterministic_with_usage() {
    let gw = gateway(echo_upstream());
    let (parts, body) = send(
        &gw,
        chat(r#"{"model":"mock-gpt","messages":[{"role":"user","content":"ping"}]}"#),
    );
    assert_eq!(parts.status, StatusCode::OK);
    let body = json(&body);
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "mock-gpt");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.ends_with("You said: ping"), "{content}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"],
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn mock_stream_sends_chunks_then_usage_then_done() {
    let gw = gateway(echo_upstream());
    let response = block_on(gw.handle(chat(
        r#"{"model":"mock-gpt","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two"}]}"#,
    )));
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let chunks: Vec<Bytes> = block_on(response.into_body().map(Result::unwrap).collect());
    assert!(
        chunks.len() > 5,
        "streamed as separate chunks, got {}",
        chunks.len()
    );
    let text: String = chunks
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    let payloads: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let content: String = payloads
        .iter()
        .filter_map(|p| {
            p["choices"].get(0)?["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(content.ends_with("You said: one two"), "{content}");
    let usage_chunk = payloads.last().unwrap();
    assert_eq!(usage_chunk["choices"].as_array().unwrap().len(), 0);
    assert!(usage_chunk["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn mock_honours_max_tokens() {
    let gw = gateway(echo_upstream());
    let (_, body) = send(
        &gw,
        chat(
            r#"{"model":"mock-gpt","max_tokens":2,"messages":[{"role":"user","content":"ping"}]}"#,
        ),
    );
    let body = json(&body);
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 2);
}

#[test]
fn bad_json_is_400_in_openai_shape() {
    let gw = gateway(echo_upstream());
    let (parts, body) = send(&gw, chat(r#"{"model": "mock-gpt", "messages": [}"#));
    assert_eq!(parts.status, StatusCode::BAD_REQUEST);
    let body = json(&body);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "invalid_json");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("line 1"));
}

#[test]
fn unknown_model_is_404_model_not_found() {
    let gw = gateway(echo_upstream());
    let (parts, body) = send(
        &gw,
        chat(r#"{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}"#),
    );
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    let body = json(&body);
    assert_eq!(body["error"]["code"], "model_not_found");
    assert_eq!(body["error"]["param"], "model");
}

#[test]
fn ai_errors_use_openai_shape_for_404_and_405() {
    let gw = gateway(echo_upstream());
    let (parts, body) = send(
        &gw,
        Request::get("/v1/chat/completions")
            .body(Bytes::new())
            .unwrap(),
    );
    assert_eq!(parts.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(parts.headers[header::ALLOW], "POST");
    assert_eq!(json(&body)["error"]["type"], "invalid_request_error");
    let (parts, body) = send(&gw, Request::get("/v1/unknown").body(Bytes::new()).unwrap());
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    assert!(json(&body)["error"]["type"].is_string());
}

/// An OpenAI-compatible upstream answering every call with one completion
/// (usage 3 + 4) and `headers`.
fn completion_upstream(headers: &'static [(&'static str, &'static str)]) -> FakeHttp {
    FakeHttp::new(move |_| {
        let body = r#"{"id":"c1","object":"chat.completion","model":"big-2025-01","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        let mut response = Response::new(Body::from(body));
        for (name, value) in headers {
            response.headers_mut().insert(*name, value.parse().unwrap());
        }
        FakeReply::Respond(response)
    })
}

#[test]
fn openai_upstream_gets_upstream_model_and_key_not_client_credentials() {
    let http = completion_upstream(&[
        ("x-ratelimit-remaining-requests", "99"),
        ("set-cookie", "tracking=1"),
    ]);
    let gw = gateway(http.clone());
    let mut request =
        chat(r#"{"model":"big","temperature":0.2,"messages":[{"role":"user","content":"x"}]}"#);
    request
        .headers_mut()
        .insert("authorization", "Bearer client-token".parse().unwrap());
    let (parts, body) = send(&gw, request);
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(json(&body)["usage"]["total_tokens"], 7);
    // The provider's rate limits describe the gateway's account: not relayed
    // unless the route opts in (see the next test).
    assert!(!parts.headers.contains_key("x-ratelimit-remaining-requests"));
    assert!(!parts.headers.contains_key("set-cookie"));

    let sent = &http.requests()[0];
    assert_eq!(
        sent.uri().to_string(),
        "http://llm.internal/v1/chat/completions"
    );
    assert_eq!(sent.headers()["authorization"], "Bearer sk-test-key");
    let sent_body = json(sent.body());
    assert_eq!(sent_body["model"], "big-2025-01");
    assert_eq!(sent_body["temperature"], 0.2);
}

#[test]
fn openai_upstream_client_error_passes_through_and_5xx_becomes_502() {
    let gw = gateway(FakeHttp::new(|_| {
        let mut response = Response::new(Body::from(
            r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
        ));
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        response
            .headers_mut()
            .insert("retry-after", "7".parse().unwrap());
        FakeReply::Respond(response)
    }));
    let (parts, body) = send(
        &gw,
        chat(r#"{"model":"big","messages":[{"role":"user","content":"x"}]}"#),
    );
    assert_eq!(parts.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(parts.headers["retry-after"], "7");
    assert_eq!(json(&body)["error"]["code"], "rate_limit_exceeded");

    let gw = gateway(FakeHttp::new(|_| {
        let mut response = Response::new(Body::from("<html>internal stack trace</html>"));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        FakeReply::Respond(response)
    }));
    let (parts, body) = send(
        &gw,
        chat(r#"{"model":"big","messages":[{"role":"user","content":"x"}]}"#),
    );
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
    assert!(!String::from_utf8_lossy(&body).contains("stack trace"));
    assert_eq!(json(&body)["error"]["type"], "upstream_error");
}

#[test]
fn openai_upstream_unreachable_is_502_openai_shape() {
    let gw = gateway(FakeHttp::new(|_| {
        FakeReply::Fail(HttpClientError::new(
            HttpClientErrorKind::Connect,
            "refused",
        ))
    }));
    let (parts, body) = send(
        &gw,
        chat(r#"{"model":"big","messages":[{"role":"user","content":"x"}]}"#),
    );
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
    assert_eq!(json(&body)["error"]["code"], "upstream_unreachable");
}

#[test]
fn no_panic_on_odd_input() {
    let gw = gateway(echo_upstream());
    for body in [
        "",
        "null",
        "1",
        "\"s\"",
        "{\"model\":1}",
        "{\"model\":\"mock-gpt\",\"messages\":\"x\"}",
        "\u{0}\u{1}",
    ] {
        let (parts, _) = send(&gw, chat(body));
        assert_eq!(parts.status, StatusCode::BAD_REQUEST, "body {body:?}");
    }
    let (parts, _) = send(&gw, Request::get("*").body(Bytes::new()).unwrap());
    assert_eq!(parts.status, StatusCode::BAD_REQUEST);
}

#[test]
fn azure_uses_the_deployment_url_api_version_and_api_key_header() {
    let http = FakeHttp::new(|_| {
        FakeReply::Respond(Response::new(Body::from(
            r#"{"id":"c","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
        )))
    });
    let gw = gateway(http.clone());
    let (parts, _) = send(
        &gw,
        chat(r#"{"model":"azure-gpt","messages":[{"role":"user","content":"x"}]}"#),
    );
    assert_eq!(parts.status, StatusCode::OK);
    let sent = &http.requests()[0];
    assert_eq!(
        sent.uri().to_string(),
        "https://res.openai.azure.com/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(sent.headers()["api-key"], "sk-test-key");
    assert!(!sent.headers().contains_key("authorization"));
}

#[test]
fn streams_always_ask_the_upstream_for_usage() {
    let http = FakeHttp::new(|_| FakeReply::Respond(Response::new(Body::from("data: [DONE]\n\n"))));
    let gw = gateway(http.clone());
    let response = block_on(gw.handle(chat(
        r#"{"model":"big","stream":true,"messages":[{"role":"user","content":"x"}]}"#,
    )));
    drop(block_on(StreamExt::collect::<Vec<_>>(response.into_body())));
    let sent = json(http.requests()[0].body());
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[test]
fn unavailable_deployments_fall_back_in_order_before_the_first_byte() {
    // The primary is unreachable, the Azure backup answers 429: the mock serves it.
    let http = FakeHttp::new(|request| {
        if request.uri().host() == Some("llm.internal") {
            return FakeReply::Fail(HttpClientError::new(
                HttpClientErrorKind::Connect,
                "refused",
            ));
        }
        let mut response = Response::new(Body::from(
            r#"{"error":{"message":"slow down","type":"requests","code":"429"}}"#,
        ));
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        FakeReply::Respond(response)
    });
    let gw = gateway(http.clone());
    let (parts, body) = send(
        &gw,
        chat(r#"{"model":"resilient","messages":[{"role":"user","content":"hi"}]}"#),
    );
    assert_eq!(
        parts.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(json(&body)["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .ends_with("You said: hi"));
    assert_eq!(
        http.requests().len(),
        2,
        "primary, then the Azure backup, then the mock"
    );

    // A client error is not an outage: no fallback.
    let http = FakeHttp::new(|_| {
        let mut response = Response::new(Body::from(
            r#"{"error":{"message":"bad","type":"invalid_request_error","code":null}}"#,
        ));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        FakeReply::Respond(response)
    });
    let gw = gateway(http.clone());
    let (parts, _) = send(
        &gw,
        chat(r#"{"model":"resilient","messages":[{"role":"user","content":"hi"}]}"#),
    );
    assert_eq!(parts.status, StatusCode::BAD_REQUEST);
    assert_eq!(http.requests().len(), 1);
}

#[test]
fn deployment_params_are_defaults_the_client_can_override() {
    let http = FakeHttp::new(|_| {
        let body = r#"{"object":"list","data":[],"usage":{"prompt_tokens":1,"total_tokens":1}}"#;
        FakeReply::Respond(Response::new(Body::from(body)))
    });
    let gw = gateway(http.clone());
    send(
        &gw,
        chat(
            r#"{"model":"tuned","temperature":0.9,"max_tokens":50,"messages":[{"role":"user","content":"x"}]}"#,
        ),
    );
    let sent = json(http.requests()[0].body());
    assert_eq!(sent["temperature"], 0.9, "the client's value wins");
    assert_eq!(sent["max_tokens"], 50);
    assert!(
        sent.get("max_completion_tokens").is_none(),
        "the default limit does not override the client's under its other name"
    );
    assert_eq!(
        sent["reasoning_effort"], "low",
        "absent fields get the default"
    );
    assert_eq!(sent["model"], "big-2025-01");

    let embeddings = Request::post("/v1/embeddings")
        .body(Bytes::from(r#"{"model":"tuned","input":"x"}"#))
        .unwrap();
    let (parts, _) = send(&gw, embeddings);
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(json(http.requests()[1].body())["dimensions"], 256);
}

#[test]
fn deployment_params_cannot_change_what_is_asked() {
    let config = CONFIG.replace(
        "params: { temperature: 0.1,",
        "params: { model: other, stream: true, temperature: 0.1,",
    );
    let error = Config::from_yaml(&config, |_| Some("k".into()))
        .unwrap_err()
        .to_string();
    assert!(error.contains("params.model"), "{error}");
    assert!(error.contains("params.stream"), "{error}");
}

#[test]
fn gemini_embeddings_go_out_in_batches_of_100_and_come_back_in_order() {
    let http = FakeHttp::new(|request| {
        let body: Value = serde_json::from_slice(request.body()).unwrap();
        let embeddings: Vec<Value> = body["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let text = r["content"]["parts"][0]["text"].as_str().unwrap();
                serde_json::json!({"values": [text.parse::<f64>().unwrap()]})
            })
            .collect();
        let reply = serde_json::json!({"embeddings": embeddings}).to_string();
        FakeReply::Respond(Response::new(Body::from(reply)))
    });
    let gw = gateway(http.clone());
    let inputs: Vec<String> = (0..250).map(|i| i.to_string()).collect();
    let request = Request::post("/v1/embeddings")
        .body(Bytes::from(
            serde_json::json!({"model": "gemini-embed", "input": inputs}).to_string(),
        ))
        .unwrap();
    let (parts, body) = send(&gw, request);
    assert_eq!(parts.status, StatusCode::OK);
    let sizes: Vec<usize> = http
        .requests()
        .iter()
        .map(|r| json(r.body())["requests"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
    let data = json(&body)["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 250);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_eq!(item["embedding"][0], i as f64, "vector {i} in input order");
    }
}

/// Routes where a weaker route follows a protected one with the same
/// prefix: a path trick must not reach the protected upstream through it.
const BYPASS_CONFIG: &str = r"
routes:
  - name: admin-api
    match: { path_prefix: /api/admin }
    auth: { methods: [api_key] }
    proxy: { url: 'http://admin.internal' }
  - name: public-api
    match: { path_prefix: /api }
    proxy: { url: 'http://rest.internal' }
  - name: matrix
    match: { path_prefix: /matrix, allow_semicolons: true }
    proxy: { url: 'http://matrix.internal' }
";

#[test]
fn encoded_or_doubled_paths_cannot_bypass_a_protected_route() {
    let http = echo_upstream();
    let config = Config::from_yaml(BYPASS_CONFIG, |_| None).unwrap();
    let gw = Gateway::new(config, TestPlatform::new(http.clone()));
    let get = |path: &str| send(&gw, Request::get(path).body(Bytes::new()).unwrap());
    for path in [
        "/api/admin/users",
        "/api/%61dmin/users",
        "/api//admin/users",
        "//api/%61dmin//users",
    ] {
        let (parts, _) = get(path);
        assert_eq!(
            parts.status,
            StatusCode::UNAUTHORIZED,
            "{path} missed the admin route"
        );
    }
    for path in [
        "/api/admin;x/users",
        "/api/admin%5Cusers",
        "/api/admin\\users",
        "/api/%2e%2e/admin",
        "/api/a%2fb",
    ] {
        let (parts, body) = get(path);
        assert_eq!(parts.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(json(&body)["error"]["code"], "invalid_path", "{path}");
    }
    assert!(http.requests().is_empty(), "nothing reached an upstream");

    // What is forwarded is the normalised path.
    let (parts, _) = get("/api//v1/%7Euser/caf%c3%a9?q=%2f");
    assert_eq!(parts.status, StatusCode::OK);
    let (parts, _) = get("/matrix/a;v=1/b");
    assert_eq!(parts.status, StatusCode::OK);
    let sent: Vec<String> = http
        .requests()
        .iter()
        .map(|r| r.uri().to_string())
        .collect();
    assert_eq!(
        sent,
        [
            "http://rest.internal/api/v1/~user/caf%C3%A9?q=%2f",
            "http://matrix.internal/matrix/a;v=1/b"
        ]
    );
}

#[test]
fn a_max_tokens_near_u64_max_is_a_400_not_a_500() {
    let gw = gateway(echo_upstream());
    for field in ["max_tokens", "max_completion_tokens"] {
        let body = format!(
            r#"{{"model":"mock-gpt","messages":[{{"role":"user","content":"hi"}}],"{field}":18446744073709551615}}"#
        );
        let request = Request::post("/v1/chat/completions")
            .body(Bytes::from(body))
            .unwrap();
        let (parts, body) = send(&gw, request);
        assert_eq!(parts.status, StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(json(&body)["error"]["param"], "max_tokens", "{field}");
    }
}

#[test]
fn an_upstream_401_about_the_provider_key_is_a_502_that_does_not_echo_it() {
    let http = FakeHttp::new(|_| {
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-test-***-key. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        FakeReply::Respond(response)
    });
    let gw = gateway(http);
    let request = Request::post("/v1/chat/completions")
        .body(Bytes::from_static(
            br#"{"model":"big","messages":[{"role":"user","content":"hi"}]}"#,
        ))
        .unwrap();
    let (parts, body) = send(&gw, request);
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
    let text = String::from_utf8_lossy(&body);
    assert!(
        !text.contains("sk-test") && !text.contains("API key"),
        "{text}"
    );
    assert_eq!(json(&body)["error"]["code"], "upstream_error");
}

#[test]
fn provider_rate_limit_headers_are_relayed_only_where_the_route_opts_in() {
    let config = CONFIG.replace(
        "ai: { timeout_ms: 1000 }",
        "ai: { timeout_ms: 1000, forward_provider_rate_limits: true }",
    );
    let config = Config::from_yaml(&config, |_| Some("sk-test-key".to_owned())).unwrap();
    let http = completion_upstream(&[("x-ratelimit-remaining-requests", "99")]);
    let gw = Gateway::new(config, TestPlatform::new(http));
    let (parts, _) = send(
        &gw,
        chat(r#"{"model":"big","messages":[{"role":"user","content":"x"}]}"#),
    );
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["x-ratelimit-remaining-requests"], "99");
}

/// A Gemini stream whose second event is larger than the SSE decoder's
/// limit (4 MiB), arriving in pieces as over a network or in one chunk: the
/// client sees what came before it, then an error event — not a `[DONE]`
/// that would pass the truncated answer off as complete, nor what follows.
#[test]
fn a_streamed_event_over_the_limit_ends_with_an_error_event() {
    let huge = format!(
        "data: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":\"{}\"}}],\"role\":\"model\"}}}}]}}\n\n",
        "x".repeat(5 * 1024 * 1024)
    );
    for piece in [64 * 1024, huge.len()] {
        let huge = Bytes::from(huge.clone());
        let http = FakeHttp::new(move |_| {
            let mut chunks: Vec<Result<Bytes, crate::body::BodyError>> = vec![Ok(
                Bytes::from_static(
                    b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"}}]}\n\n",
                ),
            )];
            chunks.extend(
                (0..huge.len())
                    .step_by(piece)
                    .map(|at| Ok(huge.slice(at..(at + piece).min(huge.len())))),
            );
            chunks.push(Ok(Bytes::from_static(
                b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" there\"}],\"role\":\"model\"},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2,\"totalTokenCount\":5}}\n\n",
            )));
            FakeReply::Respond(Response::new(Body::from_stream(
                futures_util::stream::iter(chunks),
            )))
        });
        let config = CONFIG.replace(
            "  - { name: gemini-embed,",
            "  - { name: gemini-chat, provider: gemini, upstream_model: gemini-2.5-flash }\n  - { name: gemini-embed,",
        );
        let config = Config::from_yaml(&config, |_| Some("sk-test-key".to_owned())).unwrap();
        let gw = Gateway::new(config, TestPlatform::new(http));
        let (parts, body) = send(
            &gw,
            chat(
                r#"{"model":"gemini-chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
            ),
        );
        assert_eq!(parts.status, StatusCode::OK);
        let text = String::from_utf8(body.to_vec()).unwrap();
        let shown = &text[..text.len().min(300)];
        assert!(text.contains("Hi"), "{piece}: {shown}");
        assert!(
            !text.contains("[DONE]"),
            "{piece}: a truncated stream must not look complete"
        );
        assert!(
            !text.contains("there"),
            "{piece}: nothing past the large event"
        );
        let last = text.trim_end().rsplit("\n\n").next().unwrap();
        assert!(last.starts_with("data: {\"error\""), "{piece}: {last}");
    }
}

/// The embedded example config (what `scripts/dev` runs) serves coding
/// agents with no key: Claude Code's model ids over Messages and the Codex
/// CLI's over Chat Completions reach the scripted `mock-agent`, which asks
/// for their shell tool, then quotes what the tool said.
#[test]
fn example_config_scripts_tool_calls_for_agents_model_ids() {
    let config = Config::from_yaml(crate::config::EXAMPLE_CONFIG, |_| None).unwrap();
    let gw = Gateway::new(config, TestPlatform::new(echo_upstream()));
    let post = |path: &str, body: Value| {
        Request::post(path)
            .header("content-type", "application/json")
            .header("anthropic-version", "2023-06-01")
            .body(Bytes::from(body.to_string()))
            .unwrap()
    };

    let bash = serde_json::json!({"name": "Bash", "input_schema": {"type": "object",
        "properties": {"command": {"type": "string"}}, "required": ["command"]}});
    let (parts, body) = send(
        &gw,
        post(
            "/v1/messages?beta=true",
            serde_json::json!({"model": "claude-opus-4-8", "max_tokens": 64000, "tools": [bash],
                "messages": [{"role": "user", "content": "run it"}]}),
        ),
    );
    assert_eq!(parts.status, StatusCode::OK, "{body:?}");
    let message = json(&body);
    assert_eq!(message["model"], "claude-opus-4-8");
    assert_eq!(message["stop_reason"], "tool_use");
    let tool_use = &message["content"][0];
    assert_eq!(tool_use["type"], "tool_use");
    assert_eq!(tool_use["name"], "Bash");
    assert_eq!(
        tool_use["input"],
        serde_json::json!({"command": "echo gateway-mock-tool"})
    );
    let (_, body) = send(
        &gw,
        post(
            "/v1/messages",
            serde_json::json!({"model": "claude-opus-4-8", "max_tokens": 64000, "tools": [bash],
            "messages": [
                {"role": "user", "content": "run it"},
                {"role": "assistant", "content": [tool_use]},
                {"role": "user", "content": [{"type": "tool_result",
                    "tool_use_id": tool_use["id"], "content": "gateway-mock-tool"}]},
            ]}),
        ),
    );
    let message = json(&body);
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(
        message["content"][0]["text"],
        "Tool said: gateway-mock-tool"
    );

    for model in ["gpt-5.5", "codex-mini-latest"] {
        let (parts, body) = send(
            &gw,
            post(
                "/v1/chat/completions",
                serde_json::json!({"model": model, "tools": [{"type": "function", "function": {
                    "name": "exec_command", "parameters": {"type": "object",
                    "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}}}],
                    "messages": [{"role": "user", "content": "run it"}]}),
            ),
        );
        assert_eq!(parts.status, StatusCode::OK, "{model}");
        let call = &json(&body)["choices"][0]["message"]["tool_calls"][0]["function"];
        assert_eq!(call["name"], "exec_command", "{model}");
        assert_eq!(call["arguments"], r#"{"cmd":"echo gateway-mock-tool"}"#);
    }
}
