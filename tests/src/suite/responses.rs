//! Conformance cases of the OpenAI Responses dialect (`/v1/responses`):
//! the official OpenAI Python SDK, a conversation continued on another
//! provider, a cut stream, exact accounting against an adversarial
//! upstream, and the Codex CLI.

use super::*;

fn responses_request(ctx: &Ctx, key: &str, body: &Value) -> reqwest::RequestBuilder {
    ctx.client
        .post(ctx.url("/keyed/v1/responses"))
        .bearer_auth(key)
        .json(body)
}

/// The `data` of every event of a Responses stream; each frame's `event:`
/// line must name its `type`.
async fn typed_events(response: reqwest::Response) -> Result<Vec<Value>, String> {
    let text = response
        .text()
        .await
        .map_err(|e| format!("stream broke: {e}"))?;
    let mut events = Vec::new();
    for frame in text.split("\n\n").filter(|f| !f.trim().is_empty()) {
        let name = frame.lines().find_map(|l| l.strip_prefix("event: "));
        let data = frame
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .ok_or(format!("a frame without data: {frame:?}"))?;
        let data: Value = serde_json::from_str(data).map_err(|e| format!("{e}: {data}"))?;
        check_eq!(name, data["type"].as_str());
        events.push(data);
    }
    Ok(events)
}

/// The official `openai` Python SDK's `responses` API (see
/// `tests/python/openai_responses_check.py`): text and function-call
/// round trips, stream and not, on every provider kind; state.
pub(super) async fn openai_python_sdk_responses(ctx: &Ctx) -> CaseResult {
    let (_, key, _) = consumer_with_key(ctx, "responses-sdk", json!({})).await?;
    run_python_check(
        ctx,
        "openai_responses_check.py",
        "openai",
        &[
            ("OPENAI_BASE_URL", ctx.url("/keyed/v1")),
            ("OPENAI_API_KEY", key),
        ],
    )
    .await
}

/// A conversation started on Gemini continues on an OpenAI-compatible
/// deployment: the second provider is sent the first turn (the user's
/// text and Gemini's reply) before the new one.
pub(super) async fn responses_continue_across_providers(ctx: &Ctx) -> CaseResult {
    let (_, key, _) = consumer_with_key(ctx, "responses-state", json!({})).await?;
    let first = json_body(
        send(responses_request(
            ctx,
            &key,
            &json!({"model": "gemini-mock", "input": "My name is Ada."}),
        ))
        .await?,
    )
    .await?;
    check_eq!(first["status"], json!("completed"));
    let gemini_said = first["output"][0]["content"][0]["text"]
        .as_str()
        .ok_or(format!("no text in {first}"))?
        .to_owned();
    check_eq!(gemini_said, GEMINI_WORDS.concat());

    let request_id = unique_id("responses-continue");
    let response = send(
        responses_request(
            ctx,
            &key,
            &json!({"model": "upstream-gpt", "instructions": "Be brief.", "input": "What is my name?",
                "previous_response_id": first["id"]}),
        )
        .header("x-request-id", &request_id),
    )
    .await?;
    check_eq!(response.status(), StatusCode::OK);
    let second = json_body(response).await?;
    check_eq!(second["previous_response_id"], first["id"]);
    let seen = ctx
        .openai
        .seen(&request_id)
        .ok_or("the OpenAI mock never saw the second turn")?;
    let roles: Vec<&str> = seen.body["messages"]
        .as_array()
        .ok_or("no messages upstream")?
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    check_eq!(roles, ["system", "user", "assistant", "user"]);
    check!(
        seen.body["messages"][1]
            .to_string()
            .contains("My name is Ada."),
        "{}",
        seen.body
    );
    check_eq!(seen.body["messages"][2]["content"], json!(gemini_said));
    Ok(())
}

/// A stream the upstream cuts ends with `response.failed`, never a
/// `response.completed`; nothing is kept for a continuation.
pub(super) async fn responses_stream_cut_ends_with_response_failed(ctx: &Ctx) -> CaseResult {
    let (_, key, _) = consumer_with_key(ctx, "responses-cut", json!({})).await?;
    let response = send(responses_request(
        ctx,
        &key,
        &json!({"model": "cut-gpt", "input": "hi", "stream": true}),
    ))
    .await?;
    check_eq!(response.status(), StatusCode::OK);
    let events = typed_events(response).await?;
    let last = events.last().ok_or("no events")?;
    check_eq!(last["type"], json!("response.failed"));
    check_eq!(last["response"]["status"], json!("failed"));
    check!(
        !events.iter().any(|e| e["type"] == "response.completed"),
        "a cut stream must not claim response.completed"
    );
    let id = last["response"]["id"].as_str().ok_or("no id")?;
    let kept = send(
        ctx.client
            .get(ctx.url(&format!("/keyed/v1/responses/{id}")))
            .bearer_auth(&key),
    )
    .await?;
    check_eq!(kept.status(), StatusCode::NOT_FOUND);
    Ok(())
}

/// Responses requests (streamed and not) to an upstream that bills three
/// times the gateway's estimate: the counter holds exactly what it
/// billed, and past the 3,000-token budget the gateway refuses with 429.
pub(super) async fn responses_budget_counts_what_an_overreporting_upstream_bills(
    ctx: &Ctx,
) -> CaseResult {
    let (id, key, _) =
        consumer_with_key(ctx, "resp-overbilled", json!({"plan": "adversary"})).await?;
    let mut billed = 0;
    let mut refused = None;
    for i in 0..40 {
        let request_id = unique_id("resp-adv");
        let body = json!({
            "model": "adv-overreport", "max_output_tokens": 200, "stream": i % 2 == 1,
            "instructions": "You are thorough.", "input": "Tell me everything.",
        });
        let response =
            send(responses_request(ctx, &key, &body).header("x-request-id", &request_id)).await?;
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
    check!(refused["error"]["message"].is_string(), "{refused}");
    check!(billed > 0, "nothing billed");
    check_eq!(used_by(ctx, &id).await?, billed);
    Ok(())
}

/// Deployments with `native_responses` get the client's Responses body at
/// their own `/responses` (OpenAI's URL and Azure's v1 surface) with the
/// conversation written out by the gateway (`store: false`, no
/// `previous_response_id`: the mock refuses both, as OpenAI would refuse
/// an id it never issued); replies carry the gateway's response id and
/// public model, are kept for a continuation — also on a translated
/// provider — and are charged exactly what the upstream billed.
pub(super) async fn responses_pass_through_natively(ctx: &Ctx) -> CaseResult {
    let (consumer, key, _) =
        consumer_with_key(ctx, "responses-native", json!({"plan": "adversary-large"})).await?;
    let mut billed = 0;
    let first_id = unique_id("resp-native-1");
    let response = send(
        responses_request(
            ctx,
            &key,
            &json!({"model": "native-gpt", "instructions": "Be brief.", "input": "My name is Ada.",
                "tools": [{"type": "web_search"}], "include": ["reasoning.encrypted_content"]}),
        )
        .header("x-request-id", &first_id),
    )
    .await?;
    check_eq!(response.status(), StatusCode::OK);
    let first = json_body(response).await?;
    billed += ctx.openai.billed(&first_id);
    let id = first["id"].as_str().ok_or(format!("no id in {first}"))?;
    check!(
        id.starts_with("resp_") && id != "resp_upstream_mock",
        "{first}"
    );
    check_eq!(first["model"], json!("native-gpt"));
    check_eq!(first["store"], json!(true));
    check_eq!(
        first["output"][0]["content"][0]["text"],
        json!("Responses mock heard: My name is Ada.")
    );
    let seen = ctx
        .openai
        .seen(&first_id)
        .ok_or("the mock never saw turn 1")?;
    check_eq!(seen.body["model"], json!("gpt-4.1-2025-04-14"));
    check_eq!(seen.body["store"], json!(false));
    // Native: built-in tools and OpenAI-only fields reach the provider.
    check_eq!(seen.body["tools"], json!([{"type": "web_search"}]));
    check_eq!(seen.body["include"], json!(["reasoning.encrypted_content"]));

    // Turn 2, streamed, continues natively: the provider gets turn 1's
    // input and output as items before the new input.
    let second_id = unique_id("resp-native-2");
    let response = send(
        responses_request(
            ctx,
            &key,
            &json!({"model": "native-gpt", "input": "What is my name?", "stream": true,
                "previous_response_id": id}),
        )
        .header("x-request-id", &second_id),
    )
    .await?;
    check_eq!(response.status(), StatusCode::OK);
    let events = typed_events(response).await?;
    billed += ctx.openai.billed(&second_id);
    let last = events.last().ok_or("no events")?;
    check_eq!(last["type"], json!("response.completed"));
    let second = &last["response"];
    check_eq!(events[0]["response"]["id"], second["id"]);
    check_eq!(second["previous_response_id"], json!(id));
    check_eq!(second["model"], json!("native-gpt"));
    let seen = ctx
        .openai
        .seen(&second_id)
        .ok_or("the mock never saw turn 2")?;
    let input = seen.body["input"].as_array().ok_or("no input items")?;
    check_eq!(input.len(), 3);
    check_eq!(input[1]["type"], json!("message"));
    check_eq!(input[1]["role"], json!("assistant"));
    check!(
        seen.body.get("previous_response_id").is_none(),
        "{}",
        seen.body
    );
    // Charged exactly what the provider billed (its own usage, read from
    // the reply and from the stream's terminal event).
    check_eq!(used_by(ctx, &consumer).await?, billed);

    // Turn 3 on a translated provider continues the native conversation.
    let third_id = unique_id("resp-native-3");
    let response = send(
        responses_request(
            ctx,
            &key,
            &json!({"model": "upstream-gpt", "input": "Again?", "previous_response_id": second["id"]}),
        )
        .header("x-request-id", &third_id),
    )
    .await?;
    check_eq!(response.status(), StatusCode::OK);
    let seen = ctx
        .openai
        .seen(&third_id)
        .ok_or("the mock never saw turn 3")?;
    let roles: Vec<&str> = seen.body["messages"]
        .as_array()
        .ok_or("no messages")?
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    check_eq!(roles, ["user", "assistant", "user", "assistant", "user"]);

    // Azure's Responses surface, with its key header.
    let azure = send(responses_request(
        ctx,
        &key,
        &json!({"model": "azure-native-gpt", "input": "hi"}),
    ))
    .await?;
    check_eq!(azure.status(), StatusCode::OK);
    let azure = json_body(azure).await?;
    check_eq!(azure["model"], json!("azure-native-gpt"));

    // A native stream cut mid-way ends as `response.failed`.
    let cut = send(responses_request(
        ctx,
        &key,
        &json!({"model": "native-cut", "input": "hi", "stream": true}),
    ))
    .await?;
    let events = typed_events(cut).await?;
    check_eq!(
        events.last().map(|e| e["type"].clone()),
        Some(json!("response.failed"))
    );
    Ok(())
}

/// The Codex CLI (`@openai/codex`, pinned in `tests/agents/package-lock.json`,
/// installed by `scripts/bootstrap` under `$GATEWAY_CACHE/agents`), in
/// `exec` mode with a temporary HOME and CODEX_HOME, a custom model
/// provider at the gateway (Responses wire, no retries) and its analytics
/// and update check off, completes a task that needs a tool call — on a
/// model translated to the OpenAI mock and on one translated to the
/// Anthropic mock. Codex sends `store: false`, its whole conversation
/// each turn, built-in tools the gateway must drop (`web_search`, …) and
/// a custom `apply_patch` tool; the scripted model calls its shell tool
/// (`exec_command`) with a command whose output only a shell that ran it
/// can produce, then repeats what the tool said.
pub(super) async fn codex_cli_completes_a_tool_task(ctx: &Ctx) -> CaseResult {
    let codex = test_agent("codex")?;
    let (_, key, _) = consumer_with_key(ctx, "codex", json!({})).await?;
    for model in ["agent-translated", "agent-native"] {
        let home = std::env::temp_dir().join(unique_id("codex-home"));
        let codex_home = home.join("codex");
        std::fs::create_dir_all(&codex_home).map_err(|e| e.to_string())?;
        let last = home.join("last.txt");
        let provider = format!(
            "model_providers.gateway={{name=\"gateway\",base_url=\"{}\",env_key=\"OPENAI_API_KEY\",\
             wire_api=\"responses\",request_max_retries=0,stream_max_retries=0}}",
            ctx.url("/keyed/v1")
        );
        let run = tokio::process::Command::new(&codex)
            .args(["exec", "--skip-git-repo-check"])
            .args(["--dangerously-bypass-approvals-and-sandbox", "--ephemeral"])
            .args(["-m", model, "-c", "model_provider=gateway", "-c", &provider])
            .args(["--disable", "unbounded_connection_retries"])
            .args([
                "--disable",
                "plugins",
                "--disable",
                "remote_plugin",
                "--disable",
                "apps",
            ])
            .args([
                "-c",
                "analytics.enabled=false",
                "-c",
                "check_for_update_on_startup=false",
            ])
            .arg("-o")
            .arg(&last)
            .arg("Run the shell command that prints the marker, then tell me what it printed.")
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &home)
            .env("CODEX_HOME", &codex_home)
            .env("OPENAI_API_KEY", &key)
            .current_dir(&home)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .map_err(|_| format!("{model}: Codex did not finish in 120 s"))?
            .map_err(|e| format!("cannot run {}: {e}", codex.display()))?;
        let answer = std::fs::read_to_string(&last).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&home);
        check!(
            output.status.success() && answer.contains(crate::agent_mock::AGENT_MARKER),
            "{model}: the tool's output did not come back (exit {:?}); last message: {answer:?}\n\
             stdout: {}\nstderr: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A Responses stream and a Messages stream whose client leaves after the
/// first chunk: each is settled after the disconnect, charging at least
/// what the upstream billed (a 100k-token tool prompt, so the reservation
/// alone is visible).
pub(super) async fn dialect_streams_settle_after_a_disconnect(ctx: &Ctx) -> CaseResult {
    let description = "Knows a great deal. ".repeat(20_000);
    let schema = json!({"type": "object", "properties": {}});
    let requests = [
        (
            "/keyed/v1/responses",
            json!({"model": "adv-honest", "stream": true, "max_output_tokens": 1000,
                "input": "Tell me everything.",
                "tools": [{"type": "function", "name": "oracle", "description": description, "parameters": schema}]}),
        ),
        (
            "/keyed/v1/messages",
            json!({"model": "adv-honest", "stream": true, "max_tokens": 1000,
                "messages": [{"role": "user", "content": "Tell me everything."}],
                "tools": [{"name": "oracle", "description": description, "input_schema": schema}]}),
        ),
    ];
    for (path, body) in requests {
        let (id, key, _) =
            consumer_with_key(ctx, "dialect-leaver", json!({"plan": "adversary-large"})).await?;
        let request_id = unique_id("dialect-leaver");
        let response = send(
            ctx.client
                .post(ctx.url(path))
                .header("authorization", format!("Bearer {key}"))
                .header("anthropic-version", "2023-06-01")
                .header("x-request-id", &request_id)
                .json(&body),
        )
        .await?;
        check_eq!(response.status(), StatusCode::OK);
        let mut stream = response.bytes_stream();
        let first = stream.next().await;
        check!(
            matches!(first, Some(Ok(_))),
            "{path}: no first chunk: {first:?}"
        );
        drop(stream);
        let (used, billed) = wait_for_settlement(ctx, &id, &request_id).await?;
        check!(
            billed >= 100_000,
            "{path}: the upstream billed only {billed}"
        );
        check!(
            used >= billed,
            "{path}: charged {used}, the upstream billed {billed}"
        );
    }
    Ok(())
}
