"""Generate and verify the AWS Bedrock Converse fixtures in tests/fixtures/bedrock/.

Writes every fixture in that directory except README.md:

  response_text.json             Converse response, text only, with prompt-cache usage
  response_tool_use.json         Converse response, text + toolUse block
  stream_tool_use.events.json    ConverseStream events as JSON ({"event", "payload"})
  stream_text.eventstream        ConverseStream body, binary application/vnd.amazon.eventstream
  stream_exception.eventstream   ConverseStream body ending in a throttlingException frame
  error_validation.json          HTTP 400 ValidationException error body
  sigv4_vectors.json             SigV4 known-answer vectors produced by botocore's SigV4Auth

and checks all of them with botocore (the same code boto3 runs):

  * the event-stream encoder below is checked against botocore.eventstream's
    EventStreamBuffer (frames, headers, payloads, both CRCs; corrupting a byte
    must make botocore raise ChecksumMismatch);
  * every stream (both binaries and the JSON event list, re-encoded in memory)
    is parsed by botocore's rest-json EventStream parser against the
    bedrock-runtime service model's ConverseStream output shape, fed in small
    chunks so frames straddle reads;
  * the JSON responses go through botocore's rest-json parser against the
    Converse output shape, and the error body (with its x-amzn-ErrorType
    header) through the error path;
  * the SigV4 vectors come from botocore.auth.SigV4Auth with the clock frozen;
    get-vanilla must reproduce the AWS test-suite signature, and every
    signature is recomputed independently from the recorded string to sign.

Run from the repository root (needs only botocore, pinned in the venv):

    ~/.cache/ai-gateway/venv/bin/python tests/python/make_bedrock_fixtures.py

Output is deterministic: re-running produces byte-identical files.
"""

import binascii
import datetime
import hashlib
import hmac
import json
import struct
import sys
import zlib
from pathlib import Path
from unittest import mock

import botocore
import botocore.auth
import botocore.eventstream
import botocore.exceptions
import botocore.parsers
import botocore.session
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "bedrock"

# --------------------------------------------------------------------------
# Event-stream encoder (application/vnd.amazon.eventstream)
#
#   prelude: total length u32 BE | headers length u32 BE | prelude CRC32 u32 BE
#   headers: name length u8 | name | value type u8 (7 = string) | u16 BE length | value
#   payload
#   message CRC32 u32 BE over everything before it
# CRC32 is the IEEE / gzip one (zlib.crc32).
# --------------------------------------------------------------------------

HEADER_TYPE_STRING = 7


def encode_headers(headers):
    out = b""
    for name, value in headers:
        name_b = name.encode("utf-8")
        value_b = value.encode("utf-8")
        assert len(name_b) < 256 and len(value_b) < 65536
        out += struct.pack(">B", len(name_b)) + name_b
        out += struct.pack(">BH", HEADER_TYPE_STRING, len(value_b)) + value_b
    return out


def encode_message(headers, payload):
    headers_b = encode_headers(headers)
    total = 4 + 4 + 4 + len(headers_b) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers_b))
    prelude_crc = struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + prelude_crc + headers_b + payload
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def compact(obj):
    """JSON as Bedrock puts it in frame payloads: no whitespace."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def event_frame(event_type, payload):
    headers = [
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ]
    return encode_message(headers, compact(payload))


def exception_frame(exception_type, payload):
    headers = [
        (":exception-type", exception_type),
        (":content-type", "application/json"),
        (":message-type", "exception"),
    ]
    return encode_message(headers, compact(payload))


def self_test_encoder():
    # Known answers published with the Elixir `event_stream` package
    # (hex.pm/packages/event_stream, lib/event_stream.ex doc tests).
    assert encode_message([], b'{"foo": "bar"}') == bytes(
        [0, 0, 0, 30, 0, 0, 0, 0, 186, 242, 246, 138]
        + list(b'{"foo": "bar"}')
        + [174, 114, 88, 228]
    )
    got = encode_message([("content-type", "application/json")], b'{"foo": "bar"}')
    assert got[:12] == bytes([0, 0, 0, 62, 0, 0, 0, 32, 64, 93, 249, 70])
    assert got[-4:] == bytes([111, 162, 191, 59])
    # zlib.crc32 is the CRC botocore checks with (binascii.crc32).
    assert zlib.crc32(b"123456789") == binascii.crc32(b"123456789") == 0xCBF43926


# --------------------------------------------------------------------------
# Fixture content
# --------------------------------------------------------------------------

RESPONSE_TEXT = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                {"text": "Hello! How can I help you today?"},
            ],
        }
    },
    "stopReason": "end_turn",
    # Bedrock reports inputTokens as the uncached remainder and includes the
    # cache buckets in totalTokens: 18 + 12 + 1024 + 0 = 1054.
    "usage": {
        "inputTokens": 18,
        "outputTokens": 12,
        "totalTokens": 1054,
        "cacheReadInputTokens": 1024,
        "cacheWriteInputTokens": 0,
    },
    "metrics": {"latencyMs": 612},
}

TOOL_USE_ID = "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"
STREAM_TOOL_USE_ID = "tooluse_Qx1bN3wXSxGm8tXo2Zr4Hg"

RESPONSE_TOOL_USE = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                {"text": "Let me check the weather in Paris for you."},
                {
                    "toolUse": {
                        "toolUseId": TOOL_USE_ID,
                        "name": "get_weather",
                        "input": {"city": "Paris", "unit": "celsius"},
                    }
                },
            ],
        }
    },
    "stopReason": "tool_use",
    # No cache fields here: they are optional in TokenUsage.
    "usage": {"inputTokens": 412, "outputTokens": 48, "totalTokens": 460},
    "metrics": {"latencyMs": 1187},
}

# "p" is the random-length padding Bedrock adds to stream payloads (seen on
# the wire, not in the service model); parsers must ignore it.
STREAM_TOOL_USE_EVENTS = [
    {"event": "messageStart", "payload": {"p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123", "role": "assistant"}},
    {"event": "contentBlockDelta", "payload": {"contentBlockIndex": 0, "delta": {"text": "Let me"}, "p": "abcdef"}},
    {"event": "contentBlockDelta", "payload": {"contentBlockIndex": 0, "delta": {"text": " check the weather."}}},
    {"event": "contentBlockStop", "payload": {"contentBlockIndex": 0, "p": "abcdefghijklmnopq"}},
    {
        "event": "contentBlockStart",
        "payload": {
            "contentBlockIndex": 1,
            "p": "abcdefghij",
            "start": {"toolUse": {"toolUseId": STREAM_TOOL_USE_ID, "name": "get_weather"}},
        },
    },
    {"event": "contentBlockDelta", "payload": {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\""}}}},
    {"event": "contentBlockDelta", "payload": {"contentBlockIndex": 1, "delta": {"toolUse": {"input": ": \"Par"}}, "p": "abcdefghijklmnopqrstuvwxyzABCD"}},
    {"event": "contentBlockDelta", "payload": {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "is\"}"}}}},
    {"event": "contentBlockStop", "payload": {"contentBlockIndex": 1}},
    {"event": "messageStop", "payload": {"p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", "stopReason": "tool_use"}},
    {
        "event": "metadata",
        "payload": {
            "metrics": {"latencyMs": 1421},
            "p": "abc",
            "usage": {
                "inputTokens": 412,
                "outputTokens": 38,
                "totalTokens": 450,
                "cacheReadInputTokens": 100,
                "cacheWriteInputTokens": 0,
            },
        },
    },
]

STREAM_TEXT_EVENTS = [
    ("messageStart", {"p": "abcdefghijklmnopqrstuvwxyzABCDEFGH", "role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello"}, "p": "abcdefghijklmnopqrstu"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " world"}}),
    ("contentBlockStop", {"contentBlockIndex": 0}),
    ("messageStop", {"stopReason": "end_turn"}),
    ("metadata", {"usage": {"inputTokens": 12, "outputTokens": 2, "totalTokens": 14}, "metrics": {"latencyMs": 200}}),
]

THROTTLING_MESSAGE = "Too many tokens, please wait before trying again."
STREAM_EXCEPTION_EVENTS = [
    ("messageStart", {"role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Partial"}}),
]
STREAM_EXCEPTION_TAIL = ("throttlingException", {"message": THROTTLING_MESSAGE})

ERROR_VALIDATION = {
    "message": "A conversation must start with a user message. Try again with a conversation that starts with a user message."
}
ERROR_TYPE_HEADER = "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"


# --------------------------------------------------------------------------
# botocore checks
# --------------------------------------------------------------------------

SESSION = botocore.session.get_session()
MODEL = SESSION.get_service_model("bedrock-runtime")
PARSER = botocore.parsers.create_parser(MODEL.metadata["protocol"])  # rest-json


class ChunkedRaw:
    """Stands in for urllib3's response: EventStream only calls .stream()."""

    def __init__(self, data, chunk):
        self.data = data
        self.chunk = chunk

    def stream(self, **_):
        for i in range(0, len(self.data), self.chunk):
            yield self.data[i : i + self.chunk]

    def close(self):
        pass


def strip_padding(payload):
    return {k: v for k, v in payload.items() if k != "p"}


def decode_with_buffer(data, chunk=5):
    buf = botocore.eventstream.EventStreamBuffer()
    messages = []
    for i in range(0, len(data), chunk):
        buf.add_data(data[i : i + chunk])
        messages.extend(buf)
    return messages


def check_frames(data, expected):
    """expected: list of (message_type, type_header_value, payload dict)."""
    messages = decode_with_buffer(data)
    assert len(messages) == len(expected), (len(messages), len(expected))
    offset = 0
    for msg, (mtype, name, payload) in zip(messages, expected):
        h = msg.headers
        assert h[":message-type"] == mtype, h
        assert h[":content-type"] == "application/json", h
        key = ":event-type" if mtype == "event" else ":exception-type"
        assert h[key] == name, h
        assert set(h) == {":message-type", ":content-type", key}, h
        assert json.loads(msg.payload) == payload, msg.payload
        assert msg.payload == compact(payload)
        offset += msg.prelude.total_length
    assert offset == len(data)
    return messages


def check_crc_validation(data):
    # A flipped payload byte breaks the message CRC.
    first_len = struct.unpack(">I", data[:4])[0]
    bad = bytearray(data)
    bad[first_len - 6] ^= 0x01
    try:
        decode_with_buffer(bytes(bad))
    except botocore.eventstream.ChecksumMismatch:
        pass
    else:
        raise AssertionError("botocore accepted a corrupted payload")
    # A flipped total-length byte breaks the prelude CRC.
    bad = bytearray(data)
    bad[3] ^= 0x01
    try:
        decode_with_buffer(bytes(bad))
    except botocore.eventstream.ChecksumMismatch:
        pass
    else:
        raise AssertionError("botocore accepted a corrupted prelude")


def botocore_converse_stream(data, chunk=7):
    op = MODEL.operation_model("ConverseStream")
    response = {
        "status_code": 200,
        "headers": {"content-type": "application/vnd.amazon.eventstream"},
        "body": ChunkedRaw(data, chunk),
        "context": {"operation_name": "ConverseStream"},
    }
    parsed = PARSER.parse(response, op.output_shape)
    return parsed["stream"]


def check_parsed_stream(data, expected_events):
    """expected_events: list of (event type, payload). Returns parsed events."""
    got = list(botocore_converse_stream(data))
    want = [{name: strip_padding(payload)} for name, payload in expected_events]
    assert got == want, json.dumps(got, indent=1)
    return got


def check_converse_response(body):
    op = MODEL.operation_model("Converse")
    response = {
        "status_code": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body).encode(),
        "context": {"operation_name": "Converse"},
    }
    parsed = PARSER.parse(response, op.output_shape)
    parsed.pop("ResponseMetadata", None)
    assert parsed == body, parsed


def check_error_body(body):
    op = MODEL.operation_model("Converse")
    response = {
        "status_code": 400,
        "headers": {
            "content-type": "application/json",
            "x-amzn-errortype": ERROR_TYPE_HEADER,
            "x-amzn-requestid": "3c1d8f1e-6b5e-4a7f-9d3b-2f0e5c7a9b11",
        },
        "body": json.dumps(body).encode(),
        "context": {"operation_name": "Converse"},
    }
    parsed = PARSER.parse(response, op.output_shape)
    assert parsed["Error"]["Code"] == "ValidationException", parsed
    assert parsed["Error"]["Message"] == body["message"], parsed


# --------------------------------------------------------------------------
# SigV4 vectors
# --------------------------------------------------------------------------

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AMZ_DATE = "20150830T123600Z"
FROZEN = datetime.datetime(2015, 8, 30, 12, 36, 0)
GET_VANILLA_SIGNATURE = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN//////////wEaCXVzLWVhc3QtMSJHMEUCIQDexample+token/value=="

CONVERSE_BODY = json.dumps(
    {
        "messages": [{"role": "user", "content": [{"text": "Hello"}]}],
        "inferenceConfig": {"maxTokens": 256},
    },
    separators=(",", ":"),
)
EMBED_BODY = json.dumps({"inputText": "Hello world"}, separators=(",", ":"))

SIGV4_CASES = [
    {
        "name": "get-vanilla",
        "method": "GET",
        "url": "https://example.amazonaws.com/",
        "headers": {},
        "body": "",
        "region": "us-east-1",
        "service": "service",
        "session_token": None,
    },
    {
        "name": "get-query",
        # The query string exactly as sent on the wire (space as %20).
        "url": "https://example.amazonaws.com/?b=2&a=1&c=x%20y",
        "method": "GET",
        "headers": {},
        "body": "",
        "region": "us-east-1",
        "service": "service",
        "session_token": None,
    },
    {
        "name": "bedrock-converse",
        "method": "POST",
        "url": "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        "headers": {"content-type": "application/json"},
        "body": CONVERSE_BODY,
        "region": "us-east-1",
        "service": "bedrock",
        "session_token": SESSION_TOKEN,
    },
    {
        "name": "bedrock-local-port",
        "method": "POST",
        "url": "http://127.0.0.1:8123/model/amazon.titan-embed-text-v2%3A0/invoke",
        "headers": {"content-type": "application/json"},
        "body": EMBED_BODY,
        "region": "eu-west-1",
        "service": "bedrock",
        "session_token": None,
    },
]


class RecordingSigV4Auth(botocore.auth.SigV4Auth):
    """botocore's signer, keeping the intermediate strings it computed."""

    def canonical_request(self, request):
        self.recorded_canonical_request = super().canonical_request(request)
        return self.recorded_canonical_request

    def string_to_sign(self, request, canonical_request):
        self.recorded_string_to_sign = super().string_to_sign(request, canonical_request)
        return self.recorded_string_to_sign


def independent_signature(secret, date, region, service, string_to_sign):
    def h(key, msg):
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    k = h(("AWS4" + secret).encode(), date)
    k = h(k, region)
    k = h(k, service)
    k = h(k, "aws4_request")
    return hmac.new(k, string_to_sign.encode(), hashlib.sha256).hexdigest()


def sign_case(case):
    creds = Credentials(AKID, SECRET, case["session_token"])
    request = AWSRequest(
        method=case["method"],
        url=case["url"],
        headers=dict(case["headers"]),
        data=case["body"].encode() if case["body"] else None,
    )
    signer = RecordingSigV4Auth(creds, case["service"], case["region"])
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=FROZEN):
        signer.add_auth(request)

    # The timestamp actually signed is the frozen one.
    assert request.headers["X-Amz-Date"] == AMZ_DATE, request.headers
    assert request.context["timestamp"] == AMZ_DATE
    sts = signer.recorded_string_to_sign
    cr = signer.recorded_canonical_request
    assert sts.split("\n")[1] == AMZ_DATE, sts
    assert sts.split("\n")[3] == hashlib.sha256(cr.encode()).hexdigest()

    authorization = request.headers["Authorization"]
    if isinstance(authorization, bytes):
        authorization = authorization.decode()
    signed_headers = authorization.split("SignedHeaders=")[1].split(",")[0]
    signature = authorization.split("Signature=")[1]
    assert cr.split("\n")[-2] == signed_headers, (cr, signed_headers)
    assert signature == independent_signature(
        SECRET, AMZ_DATE[:8], case["region"], case["service"], sts
    ), case["name"]
    assert authorization.startswith(
        f"AWS4-HMAC-SHA256 Credential={AKID}/{AMZ_DATE[:8]}/{case['region']}/{case['service']}/aws4_request, "
    )

    # Only the headers we know about got signed.
    expected = {"host", "x-amz-date"} | {k.lower() for k in case["headers"]}
    if case["session_token"]:
        expected.add("x-amz-security-token")
        assert request.headers["X-Amz-Security-Token"] == case["session_token"]
    assert set(signed_headers.split(";")) == expected, (case["name"], signed_headers)

    vector = {
        "name": case["name"],
        "method": case["method"],
        "url": case["url"],
        "headers": case["headers"],
        "body": case["body"],
        "region": case["region"],
        "service": case["service"],
        "access_key_id": AKID,
        "secret_access_key": SECRET,
        "session_token": case["session_token"],
        "amz_date": AMZ_DATE,
        "canonical_request": cr,
        "string_to_sign": sts,
        "authorization": authorization,
        "signed_headers": signed_headers,
    }
    return vector, signature


def build_sigv4_vectors():
    vectors = []
    for case in SIGV4_CASES:
        vector, signature = sign_case(case)
        vectors.append(vector)
        if case["name"] == "get-vanilla":
            assert signature == GET_VANILLA_SIGNATURE, signature
            assert vector["canonical_request"] == (
                "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            )
        if case["name"] == "get-query":
            assert vector["canonical_request"].split("\n")[2] == "a=1&b=2&c=x%20y"
        if case["name"] == "bedrock-converse":
            # Non-S3 services: each path segment is URI-encoded twice.
            assert vector["canonical_request"].split("\n")[1] == (
                "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse"
            )
        if case["name"] == "bedrock-local-port":
            assert "\nhost:127.0.0.1:8123\n" in vector["canonical_request"]
            assert vector["canonical_request"].split("\n")[1] == (
                "/model/amazon.titan-embed-text-v2%253A0/invoke"
            )
    return vectors


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def write_json(name, obj):
    (OUT / name).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def main():
    print(f"botocore {botocore.__version__}")
    OUT.mkdir(parents=True, exist_ok=True)
    self_test_encoder()

    # Non-streaming responses and the error body.
    check_converse_response(RESPONSE_TEXT)
    check_converse_response(RESPONSE_TOOL_USE)
    check_error_body(ERROR_VALIDATION)
    write_json("response_text.json", RESPONSE_TEXT)
    write_json("response_tool_use.json", RESPONSE_TOOL_USE)
    write_json("error_validation.json", ERROR_VALIDATION)

    # JSON event list: re-encode as frames in memory and let botocore parse it.
    events = [(e["event"], e["payload"]) for e in STREAM_TOOL_USE_EVENTS]
    tool_stream = b"".join(event_frame(n, p) for n, p in events)
    check_frames(tool_stream, [("event", n, p) for n, p in events])
    parsed = check_parsed_stream(tool_stream, events)
    text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in parsed if "contentBlockDelta" in e)
    assert text == "Let me check the weather.", text
    tool_input = "".join(
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in parsed
        if "contentBlockDelta" in e and "toolUse" in e["contentBlockDelta"]["delta"]
    )
    assert tool_input == '{"city": "Paris"}' and json.loads(tool_input) == {"city": "Paris"}, tool_input
    write_json("stream_tool_use.events.json", STREAM_TOOL_USE_EVENTS)

    # Binary text stream.
    text_stream = b"".join(event_frame(n, p) for n, p in STREAM_TEXT_EVENTS)
    check_frames(text_stream, [("event", n, p) for n, p in STREAM_TEXT_EVENTS])
    check_crc_validation(text_stream)
    for chunk in (1, 7, 64, len(text_stream)):
        parsed = list(botocore_converse_stream(text_stream, chunk))
        assert parsed == [{n: strip_padding(p)} for n, p in STREAM_TEXT_EVENTS], parsed
    (OUT / "stream_text.eventstream").write_bytes(text_stream)

    # Binary stream ending in an exception frame.
    exc_stream = b"".join(event_frame(n, p) for n, p in STREAM_EXCEPTION_EVENTS)
    exc_stream += exception_frame(*STREAM_EXCEPTION_TAIL)
    check_frames(
        exc_stream,
        [("event", n, p) for n, p in STREAM_EXCEPTION_EVENTS] + [("exception",) + STREAM_EXCEPTION_TAIL],
    )
    check_crc_validation(exc_stream)
    seen = []
    try:
        for event in botocore_converse_stream(exc_stream):
            seen.append(event)
    except botocore.exceptions.EventStreamError as err:
        assert err.response["Error"]["Code"] == "throttlingException", err.response
        assert err.response["Error"]["Message"] == THROTTLING_MESSAGE, err.response
    else:
        raise AssertionError("botocore did not raise on the exception frame")
    assert seen == [{n: p} for n, p in STREAM_EXCEPTION_EVENTS], seen
    (OUT / "stream_exception.eventstream").write_bytes(exc_stream)

    # SigV4.
    write_json("sigv4_vectors.json", build_sigv4_vectors())

    for path in sorted(OUT.iterdir()):
        print(f"  {path.relative_to(OUT.parent.parent.parent)}  {path.stat().st_size} bytes")
    print("all checks passed")


if __name__ == "__main__":
    sys.exit(main())
