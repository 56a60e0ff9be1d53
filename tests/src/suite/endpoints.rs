//! Conformance cases of OpenAI's other endpoints, passed through to
//! OpenAI-compatible and Azure deployments (`core/src/ai/passthrough`):
//! legacy completions (stream and not, tokens settled), moderations, image
//! generation (images counted), audio transcriptions and translations
//! (multipart forwarded byte for byte but the model), audio speech (binary,
//! streamed), the 400 on providers without the endpoint, and auth.

use super::*;
use crate::endpoints_mock::{
    speech_chunk, COMPLETION_PIECES, COMPLETION_USAGE, SPEECH_CHUNKS, TRANSCRIPT,
    TRANSCRIPTION_USAGE,
};

/// A POST of `body` as JSON to `path` on the keyed AI route with `key`.
fn keyed_post(ctx: &Ctx, key: &str, path: &str, request_id: &str) -> reqwest::RequestBuilder {
    ctx.client
        .post(ctx.url(&format!("/keyed/v1{path}")))
        .header("authorization", format!("Bearer {key}"))
        .header("x-request-id", request_id)
}

/// What the upstream mock received for `request_id`.
fn seen_body(ctx: &Ctx, request_id: &str) -> Result<Value, String> {
    ctx.openai
        .seen(request_id)
        .map(|seen| seen.body)
        .ok_or(format!("the upstream never saw {request_id}"))
}

/// The runtime's `gateway::usage` event for `request_id` (polled: it may be
/// logged just after the reply).
async fn usage_event(ctx: &Ctx, request_id: &str) -> Result<Value, String> {
    let log_path = ctx.log_path.clone().ok_or(
        "this case reads the runtime's log: it runs only against a runtime the suite started",
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let event = log
            .lines()
            .filter(|l| l.contains(request_id) && l.contains("gateway::usage"))
            .find_map(|l| serde_json::from_str::<Value>(&l[l.find('{')?..]).ok());
        if let Some(event) = event {
            // Fields at the top level or under `fields`, by formatter.
            return Ok(event.get("fields").cloned().unwrap_or(event));
        }
        check!(
            Instant::now() < deadline,
            "no usage event for {request_id} in {} within 10 s",
            log_path.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A legacy completion: the upstream gets the deployment's model and the
/// client's limit; the reply names the public model, and the budget is
/// charged exactly the reported usage.
pub(super) async fn completions_pass_through_and_settle_tokens(ctx: &Ctx) -> CaseResult {
    let (id, key, _) = consumer_with_key(ctx, "completions", json!({"plan": "budget"})).await?;
    let request_id = unique_id("completions");
    let body = json!({"model": "text-completion", "prompt": "Say this is a test", "max_tokens": 10, "temperature": 0});
    let response = send(keyed_post(ctx, &key, "/completions", &request_id).json(&body)).await?;
    check_eq!(response.status(), StatusCode::OK);
    let reply = json_body(response).await?;
    check_eq!(reply["object"], json!("text_completion"));
    check_eq!(reply["model"], json!("text-completion"));
    check_eq!(
        reply["choices"][0]["text"],
        json!(COMPLETION_PIECES.concat())
    );
    let (prompt, completion) = COMPLETION_USAGE;
    check_eq!(reply["usage"]["total_tokens"], json!(prompt + completion));
    let seen = seen_body(ctx, &request_id)?;
    let mut expected = body.clone();
    expected["model"] = json!("gpt-3.5-turbo-instruct");
    check_eq!(seen, expected);
    check_eq!(used_by(ctx, &id).await?, prompt + completion);
    Ok(())
}

/// A streamed legacy completion is relayed chunk by chunk, with the usage
/// the gateway asked for folded into the finish chunk (the client did not
/// ask), `max_tokens` written at OpenAI's default, and tokens settled.
pub(super) async fn completions_stream_is_incremental_and_settled(ctx: &Ctx) -> CaseResult {
    let (id, key, _) =
        consumer_with_key(ctx, "completions-stream", json!({"plan": "budget"})).await?;
    let request_id = unique_id("completions-stream");
    let body =
        json!({"model": "text-completion", "prompt": ["Say this is a test"], "stream": true});
    let response = send(keyed_post(ctx, &key, "/completions", &request_id).json(&body)).await?;
    check_eq!(response.status(), StatusCode::OK);
    let events = read_events(response).await?;
    check_eq!(events.last().map(|(_, d)| d.as_str()), Some("[DONE]"));
    let chunks: Vec<Value> = events
        .iter()
        .filter_map(|(_, d)| serde_json::from_str(d).ok())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    check_eq!(text, COMPLETION_PIECES.concat());
    check!(
        chunks.iter().all(|c| c["model"] == "text-completion"
            && c["choices"].as_array().is_some_and(|a| !a.is_empty())),
        "a chunk named the upstream model or had no choices: {chunks:?}"
    );
    let (prompt, completion) = COMPLETION_USAGE;
    let finish = chunks
        .iter()
        .find(|c| !c["choices"][0]["finish_reason"].is_null())
        .ok_or("no finish chunk")?;
    check_eq!(finish["usage"]["total_tokens"], json!(prompt + completion));
    let sent = ctx.openai.sent_at(&request_id);
    let last_sent = *sent.last().ok_or("the mock recorded no chunks")?;
    check!(
        events[0].0 < last_sent,
        "the first chunk arrived after the upstream sent its last: the stream was buffered"
    );
    let seen = seen_body(ctx, &request_id)?;
    check_eq!(seen["model"], json!("gpt-3.5-turbo-instruct"));
    check_eq!(seen["max_tokens"], json!(16));
    check_eq!(seen["stream_options"]["include_usage"], json!(true));
    check_eq!(used_by(ctx, &id).await?, prompt + completion);
    Ok(())
}

/// An unreachable primary deployment hands a completion to the next one,
/// as for chat.
pub(super) async fn completions_fall_back_to_the_next_deployment(ctx: &Ctx) -> CaseResult {
    let (_, key, _) = consumer_with_key(ctx, "completions-fallback", json!({})).await?;
    let request_id = unique_id("completions-fallback");
    let body = json!({"model": "fallback-completion", "prompt": "Say this is a test"});
    let response = send(keyed_post(ctx, &key, "/completions", &request_id).json(&body)).await?;
    check_eq!(response.status(), StatusCode::OK);
    check_eq!(
        json_body(response).await?["model"],
        json!("fallback-completion")
    );
    check_eq!(
        seen_body(ctx, &request_id)?["model"],
        json!("gpt-3.5-turbo-instruct")
    );
    Ok(())
}

pub(super) async fn moderations_pass_through(ctx: &Ctx) -> CaseResult {
    let (_, key, _) = consumer_with_key(ctx, "moderations", json!({})).await?;
    let request_id = unique_id("moderations");
    let body = json!({"model": "moderation", "input": "I want to kill them."});
    let response = send(keyed_post(ctx, &key, "/moderations", &request_id).json(&body)).await?;
    check_eq!(response.status(), StatusCode::OK);
    let reply = json_body(response).await?;
    check_eq!(reply["model"], json!("moderation"));
    check_eq!(reply["results"][0]["flagged"], json!(true));
    check_eq!(
        seen_body(ctx, &request_id)?["model"],
        json!("omni-moderation-2024-09-26")
    );
    Ok(())
}

/// Images: the reply as the upstream sent it, the images counted on the
/// usage event, and the tokens gpt-image-1 reports settled.
pub(super) async fn image_generations_count_images_and_settle_tokens(ctx: &Ctx) -> CaseResult {
    let (id, key, _) = consumer_with_key(ctx, "images", json!({"plan": "budget"})).await?;
    let request_id = unique_id("images");
    let body = json!({"model": "image-gen", "prompt": "A cute baby sea otter", "n": 2, "size": "1024x1024"});
    let response =
        send(keyed_post(ctx, &key, "/images/generations", &request_id).json(&body)).await?;
    check_eq!(response.status(), StatusCode::OK);
    let reply = json_body(response).await?;
    check_eq!(reply["data"].as_array().map(Vec::len), Some(2));
    check_eq!(reply["usage"]["total_tokens"], json!(100));
    let seen = seen_body(ctx, &request_id)?;
    check_eq!(seen["model"], json!("gpt-image-1"));
    check_eq!(seen["size"], json!("1024x1024"));
    check_eq!(used_by(ctx, &id).await?, 100);
    let event = usage_event(ctx, &request_id).await?;
    check_eq!(event["operation"], json!("images.generations"));
    check_eq!(event["images"], json!(2));
    check_eq!(event["total_tokens"], json!(100));
    Ok(())
}

const FORM_BOUNDARY: &str = "----conformance-form-boundary-7MA4YWxkTrZu0gW";

/// A transcription form as the OpenAI SDKs send it (the file first),
/// with binary audio that holds every byte value, CRLFs and dashes.
fn audio_form(model: &str) -> Vec<u8> {
    let mut form = format!(
        "--{FORM_BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"speech.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(b"RIFF\x24\x08\x00\x00WAVEfmt ");
    form.extend((0..=255u8).cycle().take(4096));
    form.extend_from_slice(b"\r\n--not-the-boundary\r\n\r\n");
    form.extend_from_slice(
        format!("\r\n--{FORM_BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n--{FORM_BOUNDARY}\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\njson\r\n--{FORM_BOUNDARY}--\r\n").as_bytes(),
    );
    form
}

fn form_content_type() -> String {
    format!("multipart/form-data; boundary={FORM_BOUNDARY}")
}

/// The multipart body the upstream received for `request_id`, exactly.
fn seen_form(ctx: &Ctx, request_id: &str) -> Result<(Vec<u8>, Value), String> {
    use base64::Engine;
    let seen = seen_body(ctx, request_id)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(seen["multipart_base64"].as_str().unwrap_or_default())
        .map_err(|e| format!("mock record: {e}"))?;
    Ok((bytes, seen["content_type"].clone()))
}

/// `path` with a form naming `model` (an alias): the upstream receives the
/// client's bytes with only the model value replaced by `upstream_model`,
/// under the client's content type.
async fn audio_form_case(ctx: &Ctx, path: &str, model: &str, upstream_model: &str) -> CaseResult {
    let (id, key, _) = consumer_with_key(ctx, "audio-form", json!({"plan": "budget"})).await?;
    let request_id = unique_id("audio-form");
    let response = send(
        keyed_post(ctx, &key, path, &request_id)
            .header("content-type", form_content_type())
            .body(audio_form(model)),
    )
    .await?;
    check_eq!(response.status(), StatusCode::OK);
    let reply = json_body(response).await?;
    check_eq!(reply["text"], json!(TRANSCRIPT));
    let (bytes, content_type) = seen_form(ctx, &request_id)?;
    check!(
        bytes == audio_form(upstream_model),
        "the upstream got a different form ({} bytes; expected {})",
        bytes.len(),
        audio_form(upstream_model).len()
    );
    check_eq!(content_type, json!(form_content_type()));
    let (input, output) = TRANSCRIPTION_USAGE;
    check_eq!(used_by(ctx, &id).await?, input + output);
    Ok(())
}

pub(super) async fn audio_transcriptions_forward_the_form_intact(ctx: &Ctx) -> CaseResult {
    audio_form_case(
        ctx,
        "/audio/transcriptions",
        "whisper-1",
        "gpt-4o-transcribe",
    )
    .await
}

pub(super) async fn audio_translations_forward_the_form_intact(ctx: &Ctx) -> CaseResult {
    audio_form_case(
        ctx,
        "/audio/translations",
        "transcriber",
        "gpt-4o-transcribe",
    )
    .await
}

/// Azure deployments: the deployment's URL and key (the mock refuses
/// anything else), for JSON and multipart bodies.
pub(super) async fn endpoints_on_azure_deployments(ctx: &Ctx) -> CaseResult {
    let (_, key, _) = consumer_with_key(ctx, "azure-endpoints", json!({})).await?;
    let request_id = unique_id("azure-images");
    let body = json!({"model": "azure-image", "prompt": "a lighthouse"});
    let response =
        send(keyed_post(ctx, &key, "/images/generations", &request_id).json(&body)).await?;
    check_eq!(response.status(), StatusCode::OK);
    check_eq!(
        json_body(response).await?["data"].as_array().map(Vec::len),
        Some(1)
    );
    check_eq!(
        seen_body(ctx, &request_id)?["_deployment"],
        json!("image-deployment")
    );
    let request_id = unique_id("azure-audio");
    let response = send(
        keyed_post(ctx, &key, "/audio/transcriptions", &request_id)
            .header("content-type", form_content_type())
            .body(audio_form("azure-transcriber")),
    )
    .await?;
    check_eq!(response.status(), StatusCode::OK);
    let (bytes, _) = seen_form(ctx, &request_id)?;
    check!(
        bytes == audio_form("transcribe-deployment"),
        "the Azure upstream got a different form"
    );
    Ok(())
}

/// Speech comes back as the upstream's binary audio, chunk by chunk: the
/// client holds the first chunk before the upstream sent its last.
pub(super) async fn audio_speech_streams_binary_chunk_by_chunk(ctx: &Ctx) -> CaseResult {
    let (_, key, _) = consumer_with_key(ctx, "speech", json!({})).await?;
    let request_id = unique_id("speech");
    let body = json!({"model": "voice", "input": "The quick brown fox.", "voice": "alloy", "response_format": "mp3"});
    let response = send(keyed_post(ctx, &key, "/audio/speech", &request_id).json(&body)).await?;
    check_eq!(response.status(), StatusCode::OK);
    check_eq!(
        header(&response, "content-type"),
        Some("audio/mpeg".to_owned())
    );
    let mut received = Vec::new();
    let mut first_at = None;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("audio stream broke: {e}"))?;
        first_at.get_or_insert_with(Instant::now);
        received.extend_from_slice(&chunk);
    }
    let expected: Vec<u8> = (0..SPEECH_CHUNKS).flat_map(speech_chunk).collect();
    check!(
        received == expected,
        "got {} bytes of audio, expected the upstream's {}",
        received.len(),
        expected.len()
    );
    let sent = ctx.openai.sent_at(&request_id);
    check_eq!(sent.len(), SPEECH_CHUNKS);
    let (first, last) = (first_at.ok_or("no audio")?, sent[SPEECH_CHUNKS - 1]);
    check!(
        first < last,
        "the first audio bytes arrived {:?} after the upstream sent its last chunk: buffered",
        first.duration_since(last)
    );
    check_eq!(
        seen_body(ctx, &request_id)?["model"],
        json!("gpt-4o-mini-tts")
    );
    Ok(())
}

/// A provider without the endpoint is a 400 in OpenAI's shape naming the
/// endpoint and the provider; a form without a model is a 400 too.
pub(super) async fn endpoints_on_other_providers_are_400(ctx: &Ctx) -> CaseResult {
    let (_, key, _) = consumer_with_key(ctx, "no-endpoint", json!({})).await?;
    let json_cases = [
        ("/audio/speech", "claude-mock", "an Anthropic"),
        ("/completions", "gemini-mock", "a Gemini"),
        ("/images/generations", "bedrock-claude", "a Bedrock"),
        ("/moderations", "mock-gpt", "a mock"),
        ("/moderations", "azure-gpt", "an Azure OpenAI"),
    ];
    for (path, model, provider) in json_cases {
        let body = json!({"model": model, "input": "hello", "prompt": "hello"});
        let response =
            send(keyed_post(ctx, &key, path, &unique_id("no-endpoint")).json(&body)).await?;
        let error = expect_error(response, StatusCode::BAD_REQUEST, "invalid_request")
            .await
            .map_err(|e| format!("{path} on {model}: {e}"))?;
        check_eq!(
            error["error"]["message"],
            json!(format!(
                "The model `{model}` is served by {provider} deployment, which has no {path} endpoint."
            ))
        );
    }
    let response = send(
        keyed_post(
            ctx,
            &key,
            "/audio/transcriptions",
            &unique_id("no-endpoint"),
        )
        .header("content-type", form_content_type())
        .body(audio_form("claude-mock")),
    )
    .await?;
    check_eq!(response.status(), StatusCode::BAD_REQUEST);
    let no_model = format!(
        "--{FORM_BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF\r\n--{FORM_BOUNDARY}--\r\n"
    );
    let response = send(
        keyed_post(ctx, &key, "/audio/transcriptions", &unique_id("no-model"))
            .header("content-type", form_content_type())
            .body(no_model),
    )
    .await?;
    check_eq!(response.status(), StatusCode::BAD_REQUEST);
    check_eq!(json_body(response).await?["error"]["param"], json!("model"));
    Ok(())
}

/// Every endpoint needs the route's credentials: 401 unread without them.
pub(super) async fn endpoints_require_a_key(ctx: &Ctx) -> CaseResult {
    for path in [
        "/completions",
        "/moderations",
        "/images/generations",
        "/audio/transcriptions",
        "/audio/translations",
        "/audio/speech",
    ] {
        let response = send(
            ctx.client
                .post(ctx.url(&format!("/keyed/v1{path}")))
                .header("content-type", form_content_type())
                .body(audio_form("transcriber")),
        )
        .await?;
        expect_error(response, StatusCode::UNAUTHORIZED, "invalid_api_key")
            .await
            .map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}
