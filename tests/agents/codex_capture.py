"""A Responses API stand-in on 127.0.0.1 that records every request the
Codex CLI sends (reqN.json, reqN.headers) and scripts two turns: a call to
its shell tool, then text quoting the tool's output. Used to capture
tests/fixtures/codex_responses_request*.json (see the .md next to them).

    python3 codex_capture.py PORT OUT_DIR

Events as in https://platform.openai.com/docs/api-reference/responses-streaming.
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OUT = sys.argv[2]
COMMAND = "echo gateway-agent-$((6*7))"
count = 0

def sse(handler, events):
    handler.send_response(200)
    handler.send_header("content-type", "text/event-stream")
    handler.end_headers()
    for e in events:
        handler.wfile.write(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode())
        handler.wfile.flush()

class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        sys.stderr.write("%s %s\n" % (self.command, self.path))
    def do_GET(self):
        self.send_response(404); self.end_headers()
    def do_POST(self):
        global count
        n = int(self.headers.get("content-length", 0))
        raw = self.rfile.read(n)
        count += 1
        with open(os.path.join(OUT, f"req{count}.json"), "wb") as f:
            f.write(raw)
        with open(os.path.join(OUT, f"req{count}.headers"), "w") as f:
            f.write(f"{self.command} {self.path}\n{self.headers}")
        body = json.loads(raw)
        items = body.get("input", [])
        last = items[-1] if items else {}
        tools = body.get("tools", [])
        names = [t.get("name") for t in tools]
        base = {"id": f"resp_{count}", "object": "response", "created_at": 1, "model": body.get("model"),
                "status": "in_progress", "output": []}
        usage = {"input_tokens": 30, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": 10, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 40}
        if last.get("type") == "function_call_output":
            out = last.get("output")
            item = {"type": "message", "id": f"msg_{count}", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": f"Tool said: {out}", "annotations": []}]}
        elif "exec_command" in names:
            item = {"type": "function_call", "id": f"fc_{count}", "call_id": f"call_{count}", "status": "completed",
                    "name": "exec_command", "arguments": json.dumps({"cmd": COMMAND})}
        elif "shell" in names:
            item = {"type": "function_call", "id": f"fc_{count}", "call_id": f"call_{count}", "status": "completed",
                    "name": "shell", "arguments": json.dumps({"command": ["bash", "-lc", COMMAND]})}
        else:
            item = {"type": "message", "id": f"msg_{count}", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": "ok", "annotations": []}]}
        done = dict(base, status="completed", output=[item], usage=usage)
        sse(self, [
            {"type": "response.created", "sequence_number": 0, "response": base},
            {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": item},
            {"type": "response.output_item.done", "sequence_number": 2, "output_index": 0, "item": item},
            {"type": "response.completed", "sequence_number": 3, "response": done},
        ])

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
