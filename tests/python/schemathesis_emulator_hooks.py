"""schemathesis hooks for the admin API check under `cargo lambda watch`.

The emulator (cargo-lambda 1.9.2) answers a request whose body is not valid
UTF-8 but whose Content-Type is textual (application/json, text/*) with its
own `500 {"type":"https://httpstatuses.com/500",...}` and never invokes the
function: it puts textual bodies into the event as strings. With any other
Content-Type it base64-encodes the body, as a Lambda Function URL does for
binary bodies. So such bodies are sent as application/octet-stream: the
gateway still receives the same bytes (the admin API ignores the
Content-Type) and must still refuse them with a 400.
"""

import schemathesis


@schemathesis.hook
def before_call(context, case, **kwargs):
    body = case.body
    if isinstance(body, (bytes, bytearray)):
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            if case.headers is None:
                case.headers = {}
            case.headers["Content-Type"] = "application/octet-stream"
