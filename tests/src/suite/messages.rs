//! Conformance cases of the Anthropic Messages dialect (`/v1/messages`):
//! the official Anthropic Python SDK, native pass-through to the Anthropic
//! mock, translation, exact accounting against an adversarial upstream,
//! and Anthropic's error shapes.

use super::*;

/// `(event name, data)` of an Anthropic SSE body; a frame without an
/// `event:` line is an error (the SDKs dispatch on it).
pub(super) async fn named_events(
    response: reqwest::Response,
) -> Result<Vec<(String, Value)>, String> {
    let text = response
        .text()
        .await
        .map_err(|e| format!("stream broke: {e}"))?;
    let mut events = Vec::new();
    for frame in text.split("\n\n").filter(|f| !f.trim().is_empty()) {
        let mut name = None;
        let mut data = None;
        for line in frame.lines() {
            if let Some(n) = line.strip_prefix("event:") {
                name = Some(n.trim().to_owned());
            } else if let Some(d) = line.strip_prefix("data:") {
                data = Some(d.trim().to_owned());
            }
        }
        let (Some(name), Some(data)) = (name, data) else {
            return Err(format!("a frame without event or data: {frame:?}"));
        };
        let data: Value = serde_json::from_str(&data).map_err(|e| format!("{e}: {data}"))?;
        events.push((name, data));
    }
    Ok(events)
}

fn messages_request(ctx: &Ctx, key: &str, body: &Value) -> reqwest::RequestBuilder {
    ctx.client
        .post(ctx.url("/keyed/v1/messages?beta=true"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
}

/// The official `anthropic` Python SDK against the gateway (see
/// `tests/python/anthropic_sdk_check.py`): stream and not, tool-use round
/// trips, count_tokens and error types, natively and translated.
pub(super) async fn anthropic_python_sdk(ctx: &Ctx) -> CaseResult {
    let (_, key, _) = consumer_with_key(ctx, "anthropic-sdk", json!({})).await?;
    run_python_check(
        ctx,
        "anthropic_sdk_check.py",
        "anthropic",
        &[
            ("ANTHROPIC_BASE_URL", ctx.url("/keyed")),
            ("ANTHROPIC_API_KEY", key),
        ],
    )
    .await
}

/// An Anthropic deployment gets the client's body and Anthropic headers
/// (betas included), the deployment's model and key; the reply comes back
/// as the provider sent it.
pub(super) async fn messages_pass_through_natively(ctx: &Ctx) -> CaseResult {
    let (_, key, _) = consumer_with_key(ctx, "native", json!({})).await?;
    let request_id = unique_id("native");
    let beta = "interleaved-thinking-2025-05-14,context-management-2025-06-27";
    let body = json!({
        "model": "claude-opus-4-8", "max_tokens": 64000,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}],
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
        "output_config": {"effort": "high"},
        "metadata": {"user_id": "u-1"},
    });
    let response = send(
        messages_request(ctx, &key, &body)
            .header("anthropic-beta", beta)
            .header("x-request-id", &request_id),
    )
    .await?;
    check_eq!(response.status(), StatusCode::OK);
    let reply = json_body(response).await?;
    check_eq!(reply["id"], json!("msg_mock01"));
    check_eq!(reply["model"], json!("claude-opus-4-8"));
    check_eq!(reply["usage"]["cache_read_input_tokens"], json!(5));
    let seen = ctx
        .openai
        .seen(&request_id)
        .ok_or("the Anthropic mock saw no request")?;
    let header = |name: &str| {
        seen.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    check_eq!(header("anthropic-beta"), Some(beta.to_owned()));
    check_eq!(header("anthropic-version"), Some("2023-06-01".to_owned()));
    check_eq!(header("x-api-key"), Some(FAKE_PROVIDER_KEY.to_owned()));
    let mut expected = body.clone();
    expected["model"] = json!("claude-sonnet-4-5");
    check_eq!(seen.body, expected);
    Ok(())
}

/// Translated replies (the OpenAI upstream mock) stream as Anthropic
/// events, the tool call as `input_json_delta`s, input usage filled in
/// `message_start` and exact in `message_delta`.
pub(super) async fn messages_translated_stream_has_anthropic_events(ctx: &Ctx) -> CaseResult {
    let (_, key, _) = consumer_with_key(ctx, "translated", json!({})).await?;
    let body = json!({
        "model": "upstream-gpt", "max_tokens": 200, "stream": true,
        "messages": [{"role": "user", "content": "weather in Paris?"}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}],
    });
    let response = send(messages_request(ctx, &key, &body)).await?;
    check_eq!(response.status(), StatusCode::OK);
    let events = named_events(response).await?;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    check_eq!(names.first().copied(), Some("message_start"));
    check_eq!(names.last().copied(), Some("message_stop"));
    check!(
        events[0].1["message"]["usage"]["input_tokens"].as_u64() > Some(0),
        "message_start without input usage: {}",
        events[0].1
    );
    let tool_start = events
        .iter()
        .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .ok_or(format!("no tool_use block in {names:?}"))?;
    check_eq!(tool_start.1["content_block"]["name"], json!("get_weather"));
    let arguments: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
        .collect();
    check_eq!(
        serde_json::from_str::<Value>(&arguments).map_err(|e| e.to_string())?,
        json!({"location": "Paris"})
    );
    let (_, delta) = &events[events.len() - 2];
    check_eq!(delta["type"], json!("message_delta"));
    check_eq!(delta["delta"]["stop_reason"], json!("tool_use"));
    // The upstream mock reports 11 prompt tokens.
    check_eq!(delta["usage"]["input_tokens"], json!(11));
    Ok(())
}

/// A translated stream the upstream cuts ends with an Anthropic `error`
/// event, never a silent `message_stop`.
pub(super) async fn messages_stream_cut_mid_way_ends_with_error_event(ctx: &Ctx) -> CaseResult {
    let (_, key, _) = consumer_with_key(ctx, "cut", json!({})).await?;
    let body = json!({"model": "cut-gpt", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let response = send(messages_request(ctx, &key, &body)).await?;
    check_eq!(response.status(), StatusCode::OK);
    let events = named_events(response).await?;
    let (name, data) = events.last().ok_or("no events")?;
    check_eq!(name.as_str(), "error");
    check_eq!(data["type"], json!("error"));
    check!(data["error"]["message"].is_string(), "error event {data}");
    check!(
        !events.iter().any(|(n, _)| n == "message_stop"),
        "a cut stream must not claim message_stop"
    );
    Ok(())
}

/// Errors on the Messages paths are in Anthropic's shape with its types;
/// `Authorization: Bearer` works as well as `x-api-key`.
pub(super) async fn messages_errors_use_anthropic_shape(ctx: &Ctx) -> CaseResult {
    let (_, key, _) = consumer_with_key(ctx, "shapes", json!({})).await?;
    let ok = json!({"model": "mock-gpt", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
    let bearer = send(
        ctx.client
            .post(ctx.url("/keyed/v1/messages"))
            .header("authorization", format!("Bearer {key}"))
            .json(&ok),
    )
    .await?;
    check_eq!(bearer.status(), StatusCode::OK);

    let mut no_max = ok.clone();
    no_max.as_object_mut().map(|o| o.remove("max_tokens"));
    let cases = [
        (Some(key.as_str()), no_max, 400, "invalid_request_error"),
        (None, ok.clone(), 401, "authentication_error"),
        (Some("gw-wrong"), ok.clone(), 401, "authentication_error"),
        (
            Some(key.as_str()),
            json!({"model": "nope", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}),
            404,
            "not_found_error",
        ),
    ];
    for (key, body, status, kind) in cases {
        let mut request = ctx.client.post(ctx.url("/keyed/v1/messages")).json(&body);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let response = send(request).await?;
        check_eq!(response.status().as_u16(), status);
        let error = json_body(response).await?;
        check_eq!(error["type"], json!("error"));
        check_eq!(error["error"]["type"], json!(kind));
        check!(error["error"]["message"].is_string(), "{error}");
    }
    Ok(())
}

/// Messages requests (streamed and not) to an upstream that bills three
/// times the gateway's prompt estimate: the counter holds exactly what it
/// billed, and once that passes the 3,000-token budget the gateway refuses
/// with Anthropic's 429 `rate_limit_error`.
pub(super) async fn messages_budget_counts_what_an_overreporting_upstream_bills(
    ctx: &Ctx,
) -> CaseResult {
    let (id, key, _) =
        consumer_with_key(ctx, "msg-overbilled", json!({"plan": "adversary"})).await?;
    let mut billed = 0;
    let mut refused = None;
    for i in 0..40 {
        let request_id = unique_id("msg-adv");
        let body = json!({
            "model": "adv-overreport", "max_tokens": 200, "stream": i % 2 == 1,
            "system": "You are thorough.",
            "messages": [{"role": "user", "content": "Tell me everything."}],
        });
        let response =
            send(messages_request(ctx, &key, &body).header("x-request-id", &request_id)).await?;
        match response.status() {
            StatusCode::OK => {
                // Read to the end: the stream settles when it ends.
                response.bytes().await.map_err(|e| e.to_string())?;
                billed += ctx.openai.billed(&request_id);
            }
            StatusCode::TOO_MANY_REQUESTS => {
                refused = Some(json_body(response).await?);
                break;
            }
            other => return Err(format!("unexpected {other}")),
        }
    }
    let refused = refused.ok_or("40 requests of 200+ tokens never exhausted 3,000")?;
    check_eq!(refused["type"], json!("error"));
    check_eq!(refused["error"]["type"], json!("rate_limit_error"));
    check!(billed > 0, "nothing billed");
    check_eq!(used_by(ctx, &id).await?, billed);
    Ok(())
}

/// Claude Code (`@anthropic-ai/claude-code`, pinned in
/// `tests/agents/package-lock.json`, installed by `scripts/bootstrap` under
/// `$GATEWAY_CACHE/agents`), in print mode with a temporary HOME and its
/// telemetry, error reporting and updater off, completes a task that
/// needs a tool call through the gateway — on a model served natively
/// (the Anthropic mock) and on one translated (the OpenAI mock). The
/// scripted model asks for a Bash command whose output only a shell that
/// ran it can produce, then repeats what the tool said.
pub(super) async fn claude_code_completes_a_tool_task(ctx: &Ctx) -> CaseResult {
    let claude = test_agent("claude")?;
    let (_, key, _) = consumer_with_key(ctx, "claude-code", json!({})).await?;
    for model in ["agent-native", "agent-translated"] {
        let home = std::env::temp_dir().join(unique_id("claude-home"));
        std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
        let run = tokio::process::Command::new(&claude)
            .args([
                "-p",
                "Run the shell command that prints the marker, then tell me what it printed.",
            ])
            .args([
                "--output-format",
                "json",
                "--model",
                model,
                "--dangerously-skip-permissions",
            ])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &home)
            .env("ANTHROPIC_BASE_URL", ctx.url("/keyed"))
            .env("ANTHROPIC_API_KEY", &key)
            .env("ANTHROPIC_SMALL_FAST_MODEL", model)
            .env("ANTHROPIC_DEFAULT_HAIKU_MODEL", model)
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_ERROR_REPORTING", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("CLAUDE_CODE_MAX_RETRIES", "0")
            // Root may skip permissions only in a sandbox (a temp HOME here).
            .env("IS_SANDBOX", "1")
            .current_dir(&home)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .map_err(|_| format!("{model}: Claude Code did not finish in 120 s"))?
            .map_err(|e| format!("cannot run {}: {e}", claude.display()))?;
        let _ = std::fs::remove_dir_all(&home);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let result: Value = serde_json::from_str(stdout.trim()).map_err(|e| {
            format!(
                "{model}: not a JSON result ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
        check!(result["is_error"] == json!(false), "{model}: {result}");
        let text = result["result"].as_str().unwrap_or_default();
        check!(
            text.contains(crate::agent_mock::AGENT_MARKER),
            "{model}: the tool's output did not come back: {result}"
        );
        check!(result["num_turns"].as_u64() >= Some(2), "{model}: {result}");
    }
    Ok(())
}
