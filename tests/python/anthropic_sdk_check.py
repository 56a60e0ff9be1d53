"""The official Anthropic Python SDK against the gateway's Messages API.

Run by the conformance suite with ANTHROPIC_BASE_URL pointing at an
authenticated AI route (the SDK appends /v1/messages) and ANTHROPIC_API_KEY a
consumer key (sent as `x-api-key`). Covers native pass-through (`claude-mock`,
an Anthropic deployment), translation (the in-gateway mock, the OpenAI,
Gemini and Bedrock upstream mocks), a model alias, tool-use round trips
(complete and streamed), count_tokens, the model list and Anthropic's error types.
Exits non-zero with a message on any mismatch.
"""

import os
import sys

import anthropic
from anthropic import Anthropic

TOOLS = [{
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}]
ASK = [{"role": "user", "content": "Hello SDK"}]
WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]


def check(condition, message):
    if not condition:
        print(f"FAIL: {message}", file=sys.stderr)
        sys.exit(1)


def text_of(message):
    return "".join(block.text for block in message.content if block.type == "text")


def tool_use_of(message):
    uses = [block for block in message.content if block.type == "tool_use"]
    check(len(uses) == 1, f"{message.model}: expected one tool_use in {message.content}")
    return uses[0]


def check_usage(model, usage):
    check(usage.input_tokens > 0, f"{model}: no input tokens in {usage}")
    check(usage.output_tokens > 0, f"{model}: no output tokens in {usage}")


def text_turns(client, model):
    message = client.messages.create(model=model, max_tokens=256, messages=ASK)
    check(message.type == "message" and message.role == "assistant", f"{model}: {message}")
    check(message.stop_reason == "end_turn", f"{model}: stop_reason {message.stop_reason}")
    text = text_of(message)
    check(bool(text), f"{model}: empty reply")
    check_usage(model, message.usage)

    events = []
    with client.messages.stream(model=model, max_tokens=256, messages=ASK) as stream:
        pieces = []
        for event in stream:
            events.append(event.type)
            if event.type == "text":
                pieces.append(event.text)
        final = stream.get_final_message()
    streamed = "".join(pieces)
    check(events[0] == "message_start", f"{model}: first event {events[:3]}")
    check("message_stop" in events, f"{model}: no message_stop in {events}")
    check(streamed == text_of(final), f"{model}: streamed {streamed!r} != final {text_of(final)!r}")
    check(final.stop_reason == "end_turn", f"{model}: streamed stop_reason {final.stop_reason}")
    check_usage(model, final.usage)
    if model == "mock-gpt":
        check(streamed == text, f"{model}: stream {streamed!r} != non-stream {text!r}")
        check(text.endswith("You said: Hello SDK"), f"mock reply {text!r}")
    print(f"ok: {model} text, complete and streamed ({len(events)} events)")


def tool_round_trip(client, model):
    message = client.messages.create(model=model, max_tokens=256, messages=WEATHER, tools=TOOLS)
    check(message.stop_reason == "tool_use", f"{model}: stop_reason {message.stop_reason}")
    use = tool_use_of(message)
    check(use.name == "get_weather", f"{model}: tool {use.name}")
    check(use.input.get("location") == "Paris", f"{model}: input {use.input}")

    with client.messages.stream(model=model, max_tokens=256, messages=WEATHER, tools=TOOLS) as stream:
        partial = [e for e in stream if e.type == "input_json"]
        final = stream.get_final_message()
    streamed_use = tool_use_of(final)
    check(final.stop_reason == "tool_use", f"{model}: streamed stop_reason {final.stop_reason}")
    check(streamed_use.input.get("location") == "Paris", f"{model}: streamed input {streamed_use.input}")
    check(len(partial) >= 1, f"{model}: no input_json_delta events")

    follow_up = WEATHER + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C and sunny"}]},
    ]
    answer = client.messages.create(model=model, max_tokens=256, messages=follow_up, tools=TOOLS)
    check(answer.stop_reason == "end_turn", f"{model}: after the tool result: {answer.stop_reason}")
    check(bool(text_of(answer)), f"{model}: no text after the tool result")
    print(f"ok: {model} tool use round trip, complete and streamed")


def errors(client):
    wrong = Anthropic(api_key="gw-not-a-real-key", max_retries=0, timeout=30)
    try:
        wrong.messages.create(model="mock-gpt", max_tokens=16, messages=ASK)
        check(False, "a wrong key was accepted")
    except anthropic.AuthenticationError as error:
        check(error.status_code == 401, f"401 expected, got {error.status_code}")
        check(error.body["error"]["type"] == "authentication_error", f"401 body {error.body}")
    try:
        client.messages.create(model="mock-gpt", max_tokens=0, messages=ASK)
        check(False, "max_tokens 0 was accepted")
    except anthropic.BadRequestError as error:
        check(error.body["error"]["type"] == "invalid_request_error", f"400 body {error.body}")
        check("max_tokens" in error.body["error"]["message"], f"400 body {error.body}")
    try:
        client.messages.create(model="no-such-model", max_tokens=16, messages=ASK)
        check(False, "an unknown model was accepted")
    except anthropic.NotFoundError as error:
        check(error.body["error"]["type"] == "not_found_error", f"404 body {error.body}")
    try:
        client.messages.create(model="claude-overloaded", max_tokens=16, messages=ASK)
        check(False, "an overloaded upstream answered")
    except anthropic.APIStatusError as error:
        check(error.status_code == 529, f"529 expected, got {error.status_code}")
        check(error.body["error"]["type"] == "overloaded_error", f"529 body {error.body}")
    print("ok: Anthropic error types for 401, 400, 404, 529")


def main():
    check(os.environ.get("ANTHROPIC_BASE_URL"), "ANTHROPIC_BASE_URL is not set")
    client = Anthropic(max_retries=0, timeout=60)
    for model in ("claude-mock", "mock-gpt", "upstream-gpt", "gemini-mock", "bedrock-claude",
                  "claude-opus-4-8", "claude-haiku-4-5"):
        text_turns(client, model)
    for model in ("claude-mock", "upstream-gpt", "gemini-mock", "bedrock-claude"):
        tool_round_trip(client, model)
    for model in ("claude-mock", "upstream-gpt"):
        counted = client.messages.count_tokens(model=model, messages=WEATHER, tools=TOOLS)
        check(counted.input_tokens > 0, f"{model}: count_tokens {counted}")
    print("ok: count_tokens, native and estimated")
    listed = [m.id for m in client.models.list()]
    check("claude-mock" in listed and "mock-gpt" in listed, f"models.list: {listed}")
    print("ok: models.list in Anthropic's shape")
    errors(client)


if __name__ == "__main__":
    main()
