//! Conformance cases of the built-in mock provider's scripted tool calls
//! (upstream model `mock-tools`, served as `mock-agent`): a two-turn tool
//! round trip, stream and not, through Chat Completions and through
//! Anthropic Messages — what a coding agent run against `scripts/dev`
//! goes through.

use super::messages::named_events;
use super::*;

/// What the script puts in a shell tool's `command` / `cmd`.
const SCRIPTED_COMMAND: &str = "echo gateway-mock-tool";
/// What the client's "shell" answers.
const TOOL_OUTPUT: &str = "gateway-mock-tool";

/// The mock's completion-token estimate of a text (4 bytes a token).
fn estimated_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// Codex-like tools: a function without a command first, then the shell.
fn chat_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "view_image", "parameters": {"type": "object",
            "properties": {"path": {"type": "string"}}, "required": ["path"]}}},
        {"type": "function", "function": {"name": "exec_command", "parameters": {"type": "object",
            "properties": {"cmd": {"type": "string"}, "workdir": {"type": "string"},
                "yield_time_ms": {"type": "number"}},
            "required": ["cmd"]}}},
    ])
}

/// The `data:` payloads of a chat stream, `[DONE]` checked and dropped.
async fn chat_chunks(response: reqwest::Response) -> Result<Vec<Value>, String> {
    check_eq!(response.status(), StatusCode::OK);
    let mut events = read_events(response).await?;
    check_eq!(
        events.pop().map(|(_, data)| data),
        Some("[DONE]".to_owned())
    );
    events
        .iter()
        .map(|(_, data)| serde_json::from_str(data).map_err(|e| format!("{e}: {data}")))
        .collect()
}

/// Turn one asks for `exec_command` (the tool taking a command, not the
/// first offered) with the scripted `cmd`; streamed, the call comes as a
/// head with id and name, then argument fragments that reassemble to the
/// same JSON. Turn two, with the tool's result, is the text quoting it.
/// Usage is the mock's estimate, complete and streamed.
pub(super) async fn mock_tools_round_trip_over_chat_completions(ctx: &Ctx) -> CaseResult {
    let url = ctx.url("/v1/chat/completions");
    let user = json!({"role": "user", "content": "Run the command, then tell me what it printed."});
    let turn_one = json!({"model": "mock-agent", "tools": chat_tools(), "messages": [user]});

    let response = send(ctx.client.post(&url).json(&turn_one)).await?;
    check_eq!(response.status(), StatusCode::OK);
    let completion = json_body(response).await?;
    let choice = &completion["choices"][0];
    check_eq!(choice["finish_reason"], json!("tool_calls"));
    let call = &choice["message"]["tool_calls"][0];
    check_eq!(call["type"], json!("function"));
    check_eq!(call["function"]["name"], json!("exec_command"));
    let arguments = call["function"]["arguments"]
        .as_str()
        .ok_or(format!("no arguments in {call}"))?;
    check_eq!(
        serde_json::from_str::<Value>(arguments).map_err(|e| e.to_string())?,
        json!({"cmd": SCRIPTED_COMMAND})
    );
    check_eq!(
        completion["usage"]["completion_tokens"],
        json!(estimated_tokens(arguments))
    );
    let call_id = call["id"].as_str().ok_or("no call id")?.to_owned();

    let mut streamed = turn_one.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let chunks = chat_chunks(send(ctx.client.post(&url).json(&streamed)).await?).await?;
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    let head = calls.first().ok_or("no streamed tool call")?;
    check!(
        head["id"].is_string(),
        "the first call delta has no id: {head}"
    );
    check_eq!(head["function"]["name"], json!("exec_command"));
    let fragments: Vec<&str> = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .filter(|piece| !piece.is_empty())
        .collect();
    check!(
        fragments.len() >= 2,
        "arguments in one piece: {fragments:?}"
    );
    check_eq!(fragments.concat(), arguments.to_owned());
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| f.is_string())
        .collect();
    check_eq!(finish, vec![&json!("tool_calls")]);
    check_eq!(
        chunks.last().map(|c| c["usage"].clone()),
        Some(completion["usage"].clone())
    );

    let assistant = json!({"role": "assistant", "content": null, "tool_calls": [{
        "id": call_id, "type": "function",
        "function": {"name": "exec_command", "arguments": arguments}}]});
    let tool =
        json!({"role": "tool", "tool_call_id": call_id, "content": format!("{TOOL_OUTPUT}\n")});
    let mut turn_two =
        json!({"model": "mock-agent", "tools": chat_tools(), "messages": [user, assistant, tool]});
    let response = send(ctx.client.post(&url).json(&turn_two)).await?;
    check_eq!(response.status(), StatusCode::OK);
    let answer = json_body(response).await?;
    let expected = format!("Tool said: {TOOL_OUTPUT}");
    check_eq!(answer["choices"][0]["finish_reason"], json!("stop"));
    check_eq!(answer["choices"][0]["message"]["content"], json!(expected));
    check_eq!(
        answer["usage"]["completion_tokens"],
        json!(estimated_tokens(&expected))
    );

    turn_two["stream"] = json!(true);
    let response = send(ctx.client.post(&url).json(&turn_two)).await?;
    check_eq!(response.status(), StatusCode::OK);
    let events = read_events(response).await?;
    check_eq!(content_of(&events), expected);
    Ok(())
}

/// The same round trip in Anthropic's dialect, translated to and from the
/// mock: a `tool_use` block for `Bash` (stream: `input_json_delta`s that
/// reassemble to the input), `stop_reason: "tool_use"`; then, with the
/// `tool_result` (followed by text, as Claude Code sends it), the text
/// quoting it with `end_turn`. Output usage is the mock's estimate.
pub(super) async fn mock_tools_round_trip_over_messages(ctx: &Ctx) -> CaseResult {
    let post = |body: &Value| {
        ctx.client
            .post(ctx.url("/v1/messages?beta=true"))
            .header("anthropic-version", "2023-06-01")
            .json(body)
    };
    let tools = json!([
        {"name": "Agent", "input_schema": {"type": "object",
            "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]}},
        {"name": "Bash", "input_schema": {"type": "object",
            "properties": {"command": {"type": "string"}, "description": {"type": "string"}},
            "required": ["command"]}},
    ]);
    let user = json!({"role": "user", "content": "Run the command, then tell me what it printed."});
    let turn_one = json!({"model": "mock-agent", "max_tokens": 64000, "tools": tools,
        "messages": [user]});

    let response = send(post(&turn_one)).await?;
    check_eq!(response.status(), StatusCode::OK);
    let message = json_body(response).await?;
    check_eq!(message["stop_reason"], json!("tool_use"));
    let tool_use = message["content"]
        .as_array()
        .and_then(|blocks| blocks.iter().find(|b| b["type"] == "tool_use"))
        .ok_or(format!("no tool_use block in {message}"))?
        .clone();
    check_eq!(tool_use["name"], json!("Bash"));
    let input = json!({"command": SCRIPTED_COMMAND});
    check_eq!(tool_use["input"], input);
    let output_tokens = estimated_tokens(&input.to_string());
    check_eq!(message["usage"]["output_tokens"], json!(output_tokens));

    let mut streamed = turn_one.clone();
    streamed["stream"] = json!(true);
    let response = send(post(&streamed)).await?;
    check_eq!(response.status(), StatusCode::OK);
    let events = named_events(response).await?;
    let start = events
        .iter()
        .find(|(name, data)| {
            name == "content_block_start" && data["content_block"]["type"] == "tool_use"
        })
        .ok_or("no tool_use block started")?;
    check_eq!(start.1["content_block"]["name"], json!("Bash"));
    let partials: Vec<&str> = events
        .iter()
        .filter_map(|(_, data)| data["delta"]["partial_json"].as_str())
        .collect();
    check!(partials.len() >= 2, "the input in one piece: {partials:?}");
    check_eq!(
        serde_json::from_str::<Value>(&partials.concat()).map_err(|e| e.to_string())?,
        input
    );
    let delta = events
        .iter()
        .find(|(name, _)| name == "message_delta")
        .ok_or("no message_delta")?;
    check_eq!(delta.1["delta"]["stop_reason"], json!("tool_use"));
    check_eq!(delta.1["usage"]["output_tokens"], json!(output_tokens));
    check_eq!(
        events.last().map(|(name, _)| name.as_str()),
        Some("message_stop")
    );

    let assistant = json!({"role": "assistant", "content": [tool_use]});
    let result = json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": tool_use["id"], "content": TOOL_OUTPUT},
        {"type": "text", "text": "<system-reminder>keep going</system-reminder>"},
    ]});
    let mut turn_two = json!({"model": "mock-agent", "max_tokens": 64000, "tools": tools,
        "messages": [user, assistant, result]});
    let expected = format!("Tool said: {TOOL_OUTPUT}");
    let response = send(post(&turn_two)).await?;
    check_eq!(response.status(), StatusCode::OK);
    let message = json_body(response).await?;
    check_eq!(message["stop_reason"], json!("end_turn"));
    check_eq!(message["content"][0]["text"], json!(expected));
    check_eq!(
        message["usage"]["output_tokens"],
        json!(estimated_tokens(&expected))
    );

    turn_two["stream"] = json!(true);
    let response = send(post(&turn_two)).await?;
    check_eq!(response.status(), StatusCode::OK);
    let events = named_events(response).await?;
    let text: String = events
        .iter()
        .filter_map(|(_, data)| data["delta"]["text"].as_str())
        .collect();
    check_eq!(text, expected);
    Ok(())
}
