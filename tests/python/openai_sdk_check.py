"""The official OpenAI Python SDK against the gateway.

Run by the conformance suite with OPENAI_BASE_URL pointing at the gateway's
/v1 and a dummy OPENAI_API_KEY. Exits non-zero with a message on any mismatch.
"""

import json
import sys

import openai
from openai import OpenAI


def check(condition, message):
    if not condition:
        print(f"FAIL: {message}", file=sys.stderr)
        sys.exit(1)


def main():
    client = OpenAI(max_retries=0, timeout=60)
    messages = [{"role": "user", "content": "Hello SDK"}]

    models = [m.id for m in client.models.list()]
    check("mock-gpt" in models, f"mock-gpt not in {models}")

    for model in ("mock-gpt", "upstream-gpt", "claude-mock", "gemini-mock", "azure-gpt", "bedrock-claude"):
        completion = client.chat.completions.create(model=model, messages=messages)
        text = completion.choices[0].message.content
        check(bool(text), f"{model}: empty completion")
        check(completion.usage.total_tokens > 0, f"{model}: no usage")

        stream = client.chat.completions.create(
            model=model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces, usage, chunks = [], None, 0
        for chunk in stream:
            chunks += 1
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
        streamed = "".join(pieces)
        check(chunks > 3, f"{model}: only {chunks} chunks")
        check(usage is not None and usage.total_tokens > 0, f"{model}: no usage chunk")
        if model == "mock-gpt":
            check(streamed == text, f"{model}: stream {streamed!r} != non-stream {text!r}")
            check(text.endswith("You said: Hello SDK"), f"mock reply {text!r}")
        print(f"ok: {model} non-stream and stream ({chunks} chunks)")

    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    }}]
    for model in ("upstream-gpt", "azure-gpt", "claude-mock", "gemini-mock", "bedrock-claude"):
        completion = client.chat.completions.create(model=model, messages=messages, tools=tools)
        call = completion.choices[0].message.tool_calls[0]
        check(call.function.name == "get_weather", f"{model}: tool call {call}")
        check(json.loads(call.function.arguments) == {"location": "Paris"}, f"{model}: arguments {call.function.arguments}")
        check(completion.choices[0].finish_reason == "tool_calls", f"{model}: finish_reason")
        print(f"ok: {model} tool call")

    # The SDK asks for base64 vectors by default and decodes them.
    for model in ("embed-openai", "embed-azure", "embed-gemini", "embed-titan", "embed-cohere", "mock-embedding"):
        result = client.embeddings.create(model=model, input=["a", "bbb"])
        check(len(result.data) == 2, f"{model}: {len(result.data)} vectors")
        check([d.index for d in result.data] == [0, 1], f"{model}: order")
        check(result.usage.prompt_tokens > 0, f"{model}: no usage")
        if model != "mock-embedding":
            check(result.data[1].embedding[:3] == [3.0, 0.5, -0.25], f"{model}: vector {result.data[1].embedding}")
        floats = client.embeddings.create(model=model, input="bbb", encoding_format="float")
        # The mocks put the input's index last; the rest must match.
        check(floats.data[0].embedding[:3] == result.data[1].embedding[:3], f"{model}: float and base64 differ")
        print(f"ok: {model} embeddings")

    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        check(False, "unknown model did not raise")
    except openai.NotFoundError as err:
        check("no-such-model" in str(err), f"error message does not name the model: {err}")
    print("ok: unknown model raises NotFoundError")


if __name__ == "__main__":
    main()
