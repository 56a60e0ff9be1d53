"""The official OpenAI Python SDK's Responses API against the gateway.

Run by the conformance suite with OPENAI_BASE_URL pointing at an
authenticated AI route (…/keyed/v1) and OPENAI_API_KEY a consumer key. Every
model is translated by the gateway (Responses → its canonical chat → the
provider): the in-gateway mock (its scripted agent model `mock-agent` for
tool calls), the OpenAI, Anthropic, Gemini and Bedrock upstream mocks. Covers text and function-tool round trips (complete and
streamed), `previous_response_id` across providers, retrieve and delete, and
OpenAI's error types. Exits non-zero with a message on any mismatch.
"""

import json
import os
import sys

import openai
from openai import OpenAI

TOOLS = [{
    "type": "function",
    "name": "get_weather",
    "description": "Current weather",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}]
WEATHER = "What is the weather in Paris?"
MODELS = ("mock-gpt", "upstream-gpt", "claude-mock", "gemini-mock", "bedrock-claude")
TOOL_MODELS = ("upstream-gpt", "claude-mock", "gemini-mock", "bedrock-claude", "mock-agent")
# The in-gateway mock's scripted tool calls fill a required string with
# `gateway-mock` (core/src/ai/providers/mock.rs); the upstream mocks ask for Paris.
EXPECTED_LOCATION = {"mock-agent": "gateway-mock"}


def check(condition, message):
    if not condition:
        print(f"FAIL: {message}", file=sys.stderr)
        sys.exit(1)


def check_usage(model, usage):
    check(usage is not None, f"{model}: no usage")
    check(usage.input_tokens > 0, f"{model}: no input tokens in {usage}")
    check(usage.output_tokens > 0, f"{model}: no output tokens in {usage}")
    check(usage.total_tokens == usage.input_tokens + usage.output_tokens, f"{model}: {usage}")


def text_turns(client, model):
    response = client.responses.create(model=model, instructions="Be brief.", input="Hello SDK")
    check(response.object == "response" and response.status == "completed", f"{model}: {response}")
    check(response.id.startswith("resp_"), f"{model}: id {response.id}")
    check(response.model == model, f"{model}: model {response.model}")
    text = response.output_text
    check(bool(text), f"{model}: empty reply")
    check_usage(model, response.usage)

    events = []
    with client.responses.stream(model=model, input="Hello SDK") as stream:
        pieces = []
        for event in stream:
            events.append(event.type)
            if event.type == "response.output_text.delta":
                pieces.append(event.delta)
        final = stream.get_final_response()
    streamed = "".join(pieces)
    check(events[:2] == ["response.created", "response.in_progress"], f"{model}: first events {events[:3]}")
    check(events[-1] == "response.completed", f"{model}: last event {events[-1]}")
    check(streamed == final.output_text, f"{model}: streamed {streamed!r} != final {final.output_text!r}")
    check(final.status == "completed", f"{model}: streamed status {final.status}")
    check_usage(model, final.usage)
    if model == "mock-gpt":
        check(streamed == text, f"{model}: stream {streamed!r} != non-stream {text!r}")
        check(text.endswith("You said: Hello SDK"), f"mock reply {text!r}")
    print(f"ok: {model} text, complete and streamed ({len(events)} events)")


def function_call_of(model, response):
    calls = [item for item in response.output if item.type == "function_call"]
    check(len(calls) == 1, f"{model}: expected one function_call in {response.output}")
    call = calls[0]
    check(call.name == "get_weather", f"{model}: tool {call.name}")
    expected = EXPECTED_LOCATION.get(model, "Paris")
    check(json.loads(call.arguments).get("location") == expected, f"{model}: arguments {call.arguments}")
    return call


def tool_round_trip(client, model):
    response = client.responses.create(model=model, input=WEATHER, tools=TOOLS)
    call = function_call_of(model, response)

    with client.responses.stream(model=model, input=WEATHER, tools=TOOLS) as stream:
        deltas = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    streamed = function_call_of(model, final)
    check(len(deltas) >= 1, f"{model}: no function_call_arguments.delta events")
    check("".join(deltas) == streamed.arguments, f"{model}: deltas {deltas} != {streamed.arguments}")

    # The tool's output continues the stored conversation.
    answer = client.responses.create(
        model=model,
        previous_response_id=response.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"}],
        tools=TOOLS,
    )
    check(answer.status == "completed", f"{model}: after the tool output: {answer.status}")
    check(bool(answer.output_text), f"{model}: no text after the tool output")
    if model == "mock-agent":
        check(answer.output_text == "Tool said: 18C and sunny", f"{model}: {answer.output_text!r}")
    check(answer.previous_response_id == response.id, f"{model}: {answer.previous_response_id}")
    print(f"ok: {model} function call round trip, complete and streamed")


def state(client):
    first = client.responses.create(model="gemini-mock", input="My name is Ada.", metadata={"case": "state"})
    second = client.responses.create(model="upstream-gpt", previous_response_id=first.id, input="What is my name?")
    check(second.previous_response_id == first.id, f"continuation: {second.previous_response_id}")
    kept = client.responses.retrieve(first.id)
    check(kept.id == first.id and kept.output_text == first.output_text, f"retrieve: {kept}")
    check(kept.metadata == {"case": "state"}, f"metadata: {kept.metadata}")
    client.responses.delete(first.id)
    try:
        client.responses.retrieve(first.id)
        check(False, "a deleted response was found")
    except openai.NotFoundError as error:
        check(error.status_code == 404, f"404 expected, got {error.status_code}")
    try:
        client.responses.create(model="mock-gpt", previous_response_id=first.id, input="again")
        check(False, "a deleted response was continued")
    except openai.BadRequestError as error:
        check(error.body["param"] == "previous_response_id", f"400 body {error.body}")
    ephemeral = client.responses.create(model="mock-gpt", input="x", store=False)
    try:
        client.responses.retrieve(ephemeral.id)
        check(False, "a store=false response was kept")
    except openai.NotFoundError:
        pass
    print("ok: previous_response_id across providers, retrieve, delete, store=false")


def errors():
    wrong = OpenAI(api_key="gw-not-a-real-key", max_retries=0, timeout=30)
    try:
        wrong.responses.create(model="mock-gpt", input="x")
        check(False, "a wrong key was accepted")
    except openai.AuthenticationError as error:
        check(error.status_code == 401, f"401 expected, got {error.status_code}")


def main():
    check(os.environ.get("OPENAI_BASE_URL"), "OPENAI_BASE_URL is not set")
    client = OpenAI(max_retries=0, timeout=60)
    for model in MODELS:
        text_turns(client, model)
    for model in TOOL_MODELS:
        tool_round_trip(client, model)
    state(client)
    errors()
    print("ok: Responses errors")


if __name__ == "__main__":
    main()
