//! The passed-through OpenAI endpoints (`ai::passthrough`) through
//! `Gateway::handle` on the in-memory platform: what reaches the upstream,
//! what comes back, and the 400 where the provider lacks the endpoint.

use bytes::Bytes;
use futures_executor::block_on;
use futures_util::stream;
use http::{header, Request, Response, StatusCode};
use serde_json::Value;

use crate::body::BodyError;
use crate::testing::{FakeHttp, FakeReply, TestPlatform};
use crate::{Body, Config, Gateway};

const CONFIG: &str = r"
providers:
  mock: { kind: mock }
  upstream: { kind: openai, base_url: 'http://llm.internal/v1', api_key: '${env:LLM_KEY}' }
  azure: { kind: azure, base_url: 'https://res.openai.azure.com', api_key: '${env:LLM_KEY}', api_version: '2024-10-21' }
models:
  - { name: mock-gpt, provider: mock }
  - { name: transcriber, provider: upstream, upstream_model: gpt-4o-transcribe }
  - { name: voice, provider: upstream, upstream_model: gpt-4o-mini-tts }
  - { name: azure-image, provider: azure, upstream_model: image-deployment }
model_aliases:
  - { name: 'whisper-*', model: transcriber }
routes:
  - name: ai
    match: { path_prefix: /v1 }
    ai: { timeout_ms: 1000 }
";

const BOUNDARY: &str = "gateway-test-boundary";

fn gateway(http: FakeHttp) -> Gateway<TestPlatform> {
    let config = Config::from_yaml(CONFIG, |name| {
        (name == "LLM_KEY").then(|| "sk-test-key".to_owned())
    })
    .unwrap();
    Gateway::new(config, TestPlatform::new(http))
}

fn post(path: &str, content_type: &str, body: impl Into<Bytes>) -> Request<Bytes> {
    Request::post(path)
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap()
}

fn respond(content_type: &'static str, body: Body) -> FakeReply {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type.parse().unwrap());
    FakeReply::Respond(response)
}

/// A transcription form with binary audio and `model` second.
fn form(model: &str) -> Vec<u8> {
    let mut body = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n").into_bytes();
    body.extend((0..=255u8).chain(*b"\r\n--x\r\n"));
    body.extend_from_slice(format!("\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

#[test]
fn a_form_reaches_the_upstream_with_only_the_model_rewritten() {
    let http = FakeHttp::new(|_| respond("application/json", Body::from(r#"{"text":"hi"}"#)));
    let gw = gateway(http.clone());
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let response = block_on(gw.handle(post(
        "/v1/audio/transcriptions",
        &content_type,
        form("whisper-1"),
    )));
    assert_eq!(response.status(), StatusCode::OK);
    let body = block_on(response.into_body().collect(usize::MAX)).unwrap();
    assert_eq!(&body[..], br#"{"text":"hi"}"#);

    let sent = &http.requests()[0];
    assert_eq!(
        sent.uri().to_string(),
        "http://llm.internal/v1/audio/transcriptions"
    );
    assert_eq!(sent.headers()[header::CONTENT_TYPE], content_type.as_str());
    assert_eq!(sent.headers()[header::AUTHORIZATION], "Bearer sk-test-key");
    assert_eq!(&sent.body()[..], &form("gpt-4o-transcribe")[..]);
}

#[test]
fn speech_comes_back_as_the_upstream_streams_it() {
    let http = FakeHttp::new(|_| {
        let chunks = vec![
            Ok::<_, BodyError>(Bytes::from_static(b"ID3\x00\xff")),
            Ok(Bytes::from_static(b"\x01\x02")),
        ];
        respond("audio/mpeg", Body::from_stream(stream::iter(chunks)))
    });
    let gw = gateway(http.clone());
    let response = block_on(gw.handle(post(
        "/v1/audio/speech",
        "application/json",
        r#"{"model":"voice","input":"Hello","voice":"alloy"}"#,
    )));
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "audio/mpeg");
    // Relayed as a stream, not collected first.
    assert!(response.body().is_stream());
    let body = block_on(response.into_body().collect(usize::MAX)).unwrap();
    assert_eq!(&body[..], b"ID3\x00\xff\x01\x02");
    let sent: Value = serde_json::from_slice(http.requests()[0].body()).unwrap();
    assert_eq!(sent["model"], "gpt-4o-mini-tts");
    assert_eq!(sent["voice"], "alloy");
}

#[test]
fn azure_gets_its_deployment_url_and_has_no_moderations() {
    let http = FakeHttp::new(|_| {
        respond(
            "application/json",
            Body::from(r#"{"created":1,"data":[{"url":"u1"},{"url":"u2"}]}"#),
        )
    });
    let gw = gateway(http.clone());
    let response = block_on(gw.handle(post(
        "/v1/images/generations",
        "application/json",
        r#"{"model":"azure-image","prompt":"a cat","n":2}"#,
    )));
    assert_eq!(response.status(), StatusCode::OK);
    let sent = &http.requests()[0];
    assert_eq!(
        sent.uri().to_string(),
        "https://res.openai.azure.com/openai/deployments/image-deployment/images/generations?api-version=2024-10-21"
    );
    assert_eq!(sent.headers()["api-key"], "sk-test-key");

    let response = block_on(gw.handle(post(
        "/v1/moderations",
        "application/json",
        r#"{"model":"azure-image","input":"x"}"#,
    )));
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(http.requests().len(), 1, "nothing more was sent upstream");
}

#[test]
fn other_providers_and_bad_forms_are_400_before_any_upstream_call() {
    let http = FakeHttp::new(|_| respond("application/json", Body::from("{}")));
    let gw = gateway(http.clone());
    let error = |request| {
        let response = block_on(gw.handle(request));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = block_on(response.into_body().collect(usize::MAX)).unwrap();
        serde_json::from_slice::<Value>(&body).unwrap()["error"].clone()
    };
    let body = error(post(
        "/v1/audio/speech",
        "application/json",
        r#"{"model":"mock-gpt","input":"x","voice":"alloy"}"#,
    ));
    assert_eq!(
        body["message"],
        "The model `mock-gpt` is served by a mock deployment, which has no /audio/speech endpoint."
    );
    assert_eq!(body["type"], "invalid_request_error");
    // A form without its closing boundary, and one with no model.
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let truncated = form("whisper-1")[..100].to_vec();
    error(post("/v1/audio/transcriptions", &content_type, truncated));
    let body = error(post(
        "/v1/audio/translations",
        &content_type,
        format!("--{BOUNDARY}--\r\n"),
    ));
    assert_eq!(body["param"], "model");
    // A GET is a 405, not a pass-through.
    let response =
        block_on(gw.handle(Request::get("/v1/audio/speech").body(Bytes::new()).unwrap()));
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(http.requests().is_empty());
}
