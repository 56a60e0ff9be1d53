#!/usr/bin/env python3
"""Orchestrates scripts/bench: starts the targets on 127.0.0.1, measures each
with oha in alternating rounds, and writes docs/benchmarks.md (tables and a
PNG chart). scripts/bench installs and builds everything first and passes the
paths in the environment (BENCH_*); run it through scripts/bench.

Per target and round:
- load: oha for a fixed time at 32 connections (16 for wrangler targets,
  the issue's setting); req/s, p50, p99, and the CPU time of the target's
  process tree (utime+stime from /proc/<pid>/stat, children included)
  divided by the responses served;
- latency: oha at 1 connection, p50 and p99;
- after all rounds: peak RSS (VmHWM summed over the tree).
Scenario (c) uses bench-probe (time to first byte, to last byte, frames).

Standard library only, except matplotlib for the chart (skipped when it is
not importable, e.g. in --smoke).
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
import gzip

ENV = os.environ
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

CHAT_BODY = json.dumps({
    "model": "MODEL",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Say hello in one short sentence."},
    ],
    "max_tokens": 64,
}, separators=(",", ":"))


def chat_body(model, stream=False):
    body = json.loads(CHAT_BODY)
    body["model"] = model
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":"))


def log(msg):
    print(f"\033[1m==> {msg}\033[0m", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- /proc -----------------------------------------------------------------

def proc_stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    # comm may contain spaces: fields after the closing parenthesis.
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); utime 14, stime 15, cutime 16, cstime 17.
    return {
        "comm": comm,
        "ppid": int(rest[1]),
        "cpu": int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14]),
    }


def tree(root):
    """The root and all its descendants alive now."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(entry)
            if st:
                children.setdefault(st["ppid"], []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        st = proc_stat(pid)
        if st:
            total += st["cpu"]
    return total / CLK_TCK


def vm_hwm_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def listening_addresses(pids):
    """Local addresses of the listening TCP sockets the processes own."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            pass
    found = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                        ip_hex = cols[1].split(":")[0]
                        if v6:
                            ip = "::1" if ip_hex == "0" * 31 + "1" else ("::" if set(ip_hex) == {"0"} else ip_hex)
                            if ip_hex.endswith("0100007F") and ip_hex.startswith("0000000000000000FFFF0000"):
                                ip = "127.0.0.1"
                        else:
                            b = bytes.fromhex(ip_hex)[::-1]
                            ip = ".".join(str(x) for x in b)
                        found.append(ip)
        except OSError:
            pass
    return found


# --- processes ---------------------------------------------------------------

class Target:
    def __init__(self, name, label, url, headers=(), body="", group="a", conns=32,
                 cpu_filter=None, root=None, note=""):
        self.name, self.label, self.url = name, label, url
        self.headers, self.body, self.group = list(headers), body, group
        self.conns, self.cpu_filter, self.root, self.note = conns, cpu_filter, root, note
        self.rounds = []
        self.hwm_kb = None

    def pids(self):
        if self.root is None:
            return []
        pids = tree(self.root.pid)
        if self.cpu_filter:
            pids = [p for p in pids if (proc_stat(p) or {}).get("comm") == self.cpu_filter]
        return pids


class Procs:
    def __init__(self, workdir):
        self.workdir = workdir
        self.started = []

    def start(self, name, argv, env=None, cwd=None):
        out = open(os.path.join(self.workdir, f"{name}.log"), "wb")
        merged = dict(ENV)
        merged.update(env or {})
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=merged, cwd=cwd,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        p.bench_name = name
        self.started.append(p)
        return p

    def logfile(self, name):
        return os.path.join(self.workdir, f"{name}.log")

    def stop_all(self):
        # Every process each one started, by PID, taken before any is
        # stopped: `cargo lambda watch` runs its functions in process groups
        # of their own, which outlive a signal to its group.
        descendants = [pid for p in self.started if p.poll() is None for pid in tree(p.pid)[1:]]
        for p in reversed(self.started):
            if p.poll() is None:
                try:
                    # Our own process group (start_new_session): the process
                    # and the children it started, nothing else.
                    os.killpg(p.pid, signal.SIGTERM)
                except OSError:
                    pass
        for pid in descendants:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        deadline = time.time() + 10
        for p in self.started:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.wait()


def wait_http(url, proc, timeout, method="GET", headers=None, body=None, ok=(200,)):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.bench_name} exited (code {proc.returncode}); see its log")
        try:
            req = urllib.request.Request(url, data=body.encode() if body else None, method=method,
                                         headers=headers or {})
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status in ok:
                    return r.read()
                last = r.status
        except urllib.error.HTTPError as e:
            last = e.code
            if e.code in ok:
                return e.read()
        except Exception as e:  # noqa: BLE001 - any failure means "not ready yet"
            last = e
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout} s (last: {last})")


def check_loopback(target_name, proc):
    addrs = listening_addresses(tree(proc.pid))
    bad = [a for a in addrs if a not in ("127.0.0.1", "::1")]
    if bad:
        raise RuntimeError(f"{target_name} listens on {bad}, not only on loopback: refusing to load it")


# --- load --------------------------------------------------------------------

def oha(url, conns, duration, headers, body):
    argv = [ENV["BENCH_OHA"], "--no-tui", "--output-format", "json", "-z", f"{duration}s",
            "-c", str(conns), "-m", "POST", "-H", "content-type: application/json"]
    for h in headers:
        argv += ["-H", h]
    argv += ["-d", body, url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    if out.returncode != 0:
        raise RuntimeError(f"oha failed: {out.stderr[-500:]}")
    data = json.loads(out.stdout)
    codes = {int(k): v for k, v in (data.get("statusCodeDistribution") or {}).items()}
    served = sum(codes.values())
    pct = data.get("latencyPercentiles") or {}
    return {
        "rps": served / duration,
        "served": served,
        "ok": codes.get(200, 0),
        "codes": codes,
        "errors": data.get("errorDistribution") or {},
        "p50_ms": (pct.get("p50") or float("nan")) * 1000,
        "p99_ms": (pct.get("p99") or float("nan")) * 1000,
    }


def measure(target, duration, lat_duration):
    # Warm-up: connections, caches, JITs.
    oha(target.url, min(8, target.conns), 1, target.headers, target.body)
    pids = target.pids()
    before = cpu_seconds(pids)
    load = oha(target.url, target.conns, duration, target.headers, target.body)
    # Children that appeared during the run count too (their stat holds
    # their whole CPU time; exited ones are in the parent's cutime).
    after = cpu_seconds(target.pids())
    lat = oha(target.url, 1, lat_duration, target.headers, target.body)
    result = {
        "rps": load["rps"],
        "p50_32": load["p50_ms"],
        "p99_32": load["p99_ms"],
        "p50_1": lat["p50_ms"],
        "p99_1": lat["p99_ms"],
        "cpu_us": (after - before) * 1e6 / load["served"] if pids and load["served"] else None,
        "non_200": load["served"] - load["ok"] + lat["served"] - lat["ok"],
        "codes": {**load["codes"]},
    }
    if result["non_200"]:
        log(f"{target.name}: {result['non_200']} responses were not 200: {load['codes']} {lat['codes']}")
    return result


def probe(url, body, headers, n):
    argv = [os.path.join(ENV["BENCH_BIN_DIR"], "bench-probe"), "--url", url, "--body", body, "--n", str(n)]
    for h in headers:
        argv += ["--header", h]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"bench-probe failed on {url}: {out.stderr[-500:]}")
    return json.loads(out.stdout)


def med(values):
    values = [v for v in values if v is not None and v == v]
    return statistics.median(values) if values else None


# --- configs -------------------------------------------------------------------

def gateway_config(mock, mock_stream):
    return f"""# Written by scripts/bench.
providers:
  upstream:
    kind: openai
    base_url: http://127.0.0.1:{mock}/v1
    api_key: ${{env:BENCH_UPSTREAM_KEY}}
  upstream-stream:
    kind: openai
    base_url: http://127.0.0.1:{mock_stream}/v1
    api_key: ${{env:BENCH_UPSTREAM_KEY}}
  claude:
    kind: anthropic
    base_url: http://127.0.0.1:{mock}/v1
    api_key: ${{env:BENCH_UPSTREAM_KEY}}
  claude-stream:
    kind: anthropic
    base_url: http://127.0.0.1:{mock_stream}/v1
    api_key: ${{env:BENCH_UPSTREAM_KEY}}
models:
  - {{ name: bench-gpt, provider: upstream, upstream_model: gpt-4o-mini-2024-07-18 }}
  - {{ name: bench-gpt-stream, provider: upstream-stream, upstream_model: gpt-4o-mini-2024-07-18 }}
  - {{ name: bench-claude, provider: claude, upstream_model: claude-sonnet-4-5-20250929, pricing: {{ input: 3.0, cached_input: 0.3, output: 15.0 }} }}
  - {{ name: bench-claude-stream, provider: claude-stream, upstream_model: claude-sonnet-4-5-20250929, pricing: {{ input: 3.0, cached_input: 0.3, output: 15.0 }} }}
admin:
  path_prefix: /admin
  key_sha256: ${{env:BENCH_ADMIN_KEY_SHA256}}
plans:
  bench:
    limits:
      - {{ name: rpm, window_s: 60, requests: 1000000000 }}
      - {{ name: tokens-per-day, window_s: 86400, tokens: 1000000000000, algorithm: fixed_window }}
consumers:
  - {{ id: bench, plan: bench }}
routes:
  # (a) plain OpenAI-compatible pass-through.
  - name: plain
    match: {{ path_prefix: /v1 }}
    ai: {{}}
  # (b) API key, request limit and token budget (plan `bench`), and the
  # OpenAI -> Anthropic translation (model bench-claude).
  - name: keyed
    match: {{ path_prefix: /b/v1 }}
    auth: {{ methods: [api_key] }}
    ai: {{}}
"""


def hundred_routes_config(mock):
    lines = ["# Written by scripts/bench: 100 models and 100 routes.", "providers:"]
    lines += [f"  upstream:\n    kind: openai\n    base_url: http://127.0.0.1:{mock}/v1\n    api_key: ${{env:BENCH_UPSTREAM_KEY}}"]
    lines.append("models:")
    for i in range(100):
        lines.append(f"  - {{ name: model-{i:03}, provider: upstream, upstream_model: gpt-4o-mini-2024-07-18 }}")
    lines.append("routes:")
    for i in range(99):
        lines.append(f"  - {{ name: rest-{i:03}, match: {{ path_prefix: /svc{i:03} }}, proxy: {{ url: http://127.0.0.1:{mock}/svc{i:03} }} }}")
    lines.append("  - { name: openai-api, match: { path_prefix: /v1 }, ai: {} }")
    return "\n".join(lines) + "\n"


def nginx_config(workdir, port, mock, mock_stream):
    return f"""# Written by scripts/bench: nginx as a plain reverse proxy (the floor).
worker_processes auto;
daemon off;
pid {workdir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log {workdir}/nginx-access.log;
  client_body_temp_path {workdir}/nginx-body;
  proxy_temp_path {workdir}/nginx-proxy;
  fastcgi_temp_path {workdir}/nginx-fastcgi;
  uwsgi_temp_path {workdir}/nginx-uwsgi;
  scgi_temp_path {workdir}/nginx-scgi;
  upstream mock {{ server 127.0.0.1:{mock}; keepalive 128; }}
  upstream mock_stream {{ server 127.0.0.1:{mock_stream}; keepalive 16; }}
  server {{
    listen 127.0.0.1:{port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering off;
    location /stream/ {{ proxy_pass http://mock_stream/; }}
    location / {{ proxy_pass http://mock; }}
  }}
}}
"""


def litellm_config(mock, mock_stream, keyed):
    head = "# Written by scripts/bench.\nmodel_list:\n"
    models = [
        ("bench-gpt", f"openai/gpt-4o-mini-2024-07-18", f"http://127.0.0.1:{mock}/v1"),
        ("bench-gpt-stream", f"openai/gpt-4o-mini-2024-07-18", f"http://127.0.0.1:{mock_stream}/v1"),
        ("bench-claude", "anthropic/claude-sonnet-4-5-20250929", f"http://127.0.0.1:{mock}"),
        ("bench-claude-stream", "anthropic/claude-sonnet-4-5-20250929", f"http://127.0.0.1:{mock_stream}"),
    ]
    body = ""
    for name, model, base in models:
        body += f"  - model_name: {name}\n    litellm_params:\n      model: {model}\n      api_base: {base}\n      api_key: sk-bench-upstream\n"
        if keyed:
            body += "      rpm: 1000000000\n"
    tail = "litellm_settings:\n  telemetry: false\n"
    if keyed:
        tail += "general_settings:\n  master_key: sk-bench-litellm-master\n"
    return head + body + tail


# --- the run ---------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--lat-duration", type=float, default=2.0)
    ap.add_argument("--peers", action="store_true")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--coldstart", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated target names to measure (others still start)")
    ap.add_argument("--out", default="")
    ap.add_argument("--json-out", default="")
    ap.add_argument("--render", default="", help="only rewrite --out from a --json-out file of an earlier run")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            results = json.load(f)
        report(args, results)
        return

    # On SIGTERM (scripts/bench's timeout, Ctrl-C's cousin) still stop
    # every process started: SystemExit runs the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    workdir = tempfile.mkdtemp(prefix="gateway-bench-")
    procs = Procs(workdir)
    bin_dir = ENV["BENCH_BIN_DIR"]
    results = {"targets": [], "streams": [], "coldstart": [], "sizes": {}, "notes": []}
    try:
        run(args, workdir, procs, bin_dir, results)
    finally:
        procs.stop_all()
    results["elapsed_s"] = time.time() - started
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=1)
    report(args, results)
    # Figures from a gateway that answered errors would be meaningless: fail.
    broken = [t["name"] for t in results["targets"]
              if t["name"].startswith(("gateway", "worker-gateway", "lambda-gateway", "nginx", "direct"))
              and (t["non_200"] or not t["rps"])]
    broken += [s["name"] for s in results["streams"]
               if s["name"].startswith(("gateway", "nginx", "direct")) and (s["non_200"] or not s["frames"])]
    if broken:
        log(f"FAILED: {', '.join(broken)} answered non-200 responses or nothing")
        sys.exit(1)
    if os.environ.get("BENCH_KEEP_WORKDIR"):
        log(f"logs and configs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def start_mock(procs, name, extra):
    port = free_port()
    p = procs.start(name, [os.path.join(ENV["BENCH_BIN_DIR"], "bench-mock"), "--listen", f"127.0.0.1:{port}", *extra])
    wait_http(f"http://127.0.0.1:{port}/v1/models", p, 10)
    return p, port


def run(args, workdir, procs, bin_dir, results):
    targets = []
    streams = []  # (name, label, url, body, headers)
    mock_p, mock = start_mock(procs, "mock", ["--chunks", "8"])
    mock_s_p, mock_stream = start_mock(procs, "mock-stream", ["--chunks", "10", "--gap-ms", "5"])
    direct = Target("direct", "mock upstream, direct (no proxy)", f"http://127.0.0.1:{mock}/v1/chat/completions",
                    body=chat_body("gpt-4o-mini"), root=mock_p)
    targets.append(direct)
    streams.append(("direct", "mock upstream, direct", f"http://127.0.0.1:{mock_stream}/v1/chat/completions",
                    chat_body("gpt-4o-mini", True), []))

    # nginx, the floor.
    nginx_port = free_port()
    for d in ("nginx-body", "nginx-proxy", "nginx-fastcgi", "nginx-uwsgi", "nginx-scgi"):
        os.makedirs(os.path.join(workdir, d), exist_ok=True)
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(nginx_config(workdir, nginx_port, mock, mock_stream))
    nginx_p = procs.start("nginx", [ENV["BENCH_NGINX"], "-p", workdir, "-c", conf, "-e", os.path.join(workdir, "nginx-error.log")])
    wait_http(f"http://127.0.0.1:{nginx_port}/v1/models", nginx_p, 15)
    targets.append(Target("nginx", "nginx (reverse proxy, the floor)", f"http://127.0.0.1:{nginx_port}/v1/chat/completions",
                          body=chat_body("gpt-4o-mini"), root=nginx_p))
    streams.append(("nginx", "nginx", f"http://127.0.0.1:{nginx_port}/stream/v1/chat/completions",
                    chat_body("gpt-4o-mini", True), []))

    # The gateway's native server.
    admin_key = "bench-admin-" + os.urandom(8).hex()
    gw_p, base = start_gateway(procs, workdir, mock, mock_stream, admin_key)
    check_loopback("gateway", gw_p)
    targets.append(Target("gateway", "the gateway, native server (release)", f"{base}/v1/chat/completions",
                          body=chat_body("bench-gpt"), root=gw_p))
    streams.append(("gateway", "the gateway", f"{base}/v1/chat/completions", chat_body("bench-gpt-stream", True), []))

    if not args.smoke:
        key = create_key(base, admin_key)
        auth = [f"authorization: Bearer {key}"]
        targets.append(Target("gateway-b", "the gateway: API key + request limit + token budget + OpenAI→Anthropic",
                              f"{base}/b/v1/chat/completions", auth, chat_body("bench-claude"), group="b", root=gw_p))
        streams.append(("gateway-b", "the gateway (b): key, limits, OpenAI→Anthropic", f"{base}/b/v1/chat/completions",
                        chat_body("bench-claude-stream", True), auth))

    if args.peers:
        start_peers(procs, workdir, mock, mock_stream, targets, streams)
    if args.worker:
        start_workers(procs, workdir, mock, mock_stream, admin_key, targets, results)
        start_lambda_watch(procs, workdir, mock, mock_stream, admin_key, targets)

    for t in targets:
        if t.root is not None and t.name != "direct":
            try:
                check_loopback(t.name, t.root)
            except RuntimeError:
                raise

    if args.only:
        wanted = args.only.split(",")
        targets = [t for t in targets if t.name in wanted or t.name == "direct"]
        streams = [s for s in streams if s[0] in wanted or s[0] == "direct"]
    for r in range(args.rounds):
        for t in targets:
            log(f"round {r + 1}/{args.rounds}: {t.name}")
            t.rounds.append(measure(t, args.duration, args.lat_duration))
    for t in targets:
        t.hwm_kb = vm_hwm_kb(t.pids()) if t.root is not None else None

    # (c) streaming: first byte and chunk delivery at one connection.
    n = 10 if args.smoke else 30
    for name, label, url, body, headers in streams:
        log(f"streaming probe: {name}")
        out = probe(url, body, headers, n)
        bad = [s for s in out["status"] if s != 200]
        results["streams"].append({
            "name": name, "label": label, "n": n, "non_200": len(bad),
            "first_byte_ms": med(out["first_byte_ms"]), "last_byte_ms": med(out["last_byte_ms"]),
            "first_byte_p99_ms": sorted(out["first_byte_ms"])[-1] if out["first_byte_ms"] else None,
            "frames": med(out["frames"]), "bytes": med(out["bytes"]),
        })

    if args.coldstart:
        coldstart(workdir, mock, results)
        sizes(results)

    for t in targets:
        rs = t.rounds
        results["targets"].append({
            "name": t.name, "label": t.label, "group": t.group, "conns": t.conns, "note": t.note,
            "rounds": len(rs),
            "rps": med([x["rps"] for x in rs]),
            "rps_range": [min(x["rps"] for x in rs), max(x["rps"] for x in rs)],
            "p50_32": med([x["p50_32"] for x in rs]), "p99_32": med([x["p99_32"] for x in rs]),
            "p50_1": med([x["p50_1"] for x in rs]), "p99_1": med([x["p99_1"] for x in rs]),
            "cpu_us": med([x["cpu_us"] for x in rs]),
            "cpu_range": [min((x["cpu_us"] for x in rs if x["cpu_us"] is not None), default=None),
                          max((x["cpu_us"] for x in rs if x["cpu_us"] is not None), default=None)],
            "non_200": sum(x["non_200"] for x in rs),
            "hwm_mb": t.hwm_kb / 1024 if t.hwm_kb else None,
        })


def start_gateway(procs, workdir, mock, mock_stream, admin_key):
    """The gateway's native server ($BENCH_GATEWAY) on the bench config, ready."""
    port = free_port()
    conf = os.path.join(workdir, "gateway.yaml")
    with open(conf, "w") as f:
        f.write(gateway_config(mock, mock_stream))
    env = {
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "GATEWAY_CONFIG_PATH": conf,
        "BENCH_UPSTREAM_KEY": "sk-bench-upstream",
        "BENCH_ADMIN_KEY_SHA256": hashlib.sha256(admin_key.encode()).hexdigest(),
        "RUST_LOG": ENV.get("BENCH_GATEWAY_RUST_LOG", "info"),
    }
    p = procs.start("gateway", [ENV["BENCH_GATEWAY"]], env)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/v1/models", p, 30)
    return p, base


def create_key(base, admin_key):
    req = urllib.request.Request(f"{base}/admin/consumers/bench/keys", data=b"{}", method="POST",
                                 headers={"authorization": f"Bearer {admin_key}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["key"]


def start_peers(procs, workdir, mock, mock_stream, targets, streams):
    # Portkey's Node server: binds all interfaces unless told otherwise, and
    # has no host option; loopback.cjs makes every listen() use 127.0.0.1.
    pk_port = free_port()
    pk_dir = ENV["BENCH_PORTKEY_DIR"]
    pk_p = procs.start("portkey", ["node", "--require", os.path.join(ENV["BENCH_PEERS_DIR"], "loopback.cjs"),
                                   os.path.join(pk_dir, "node_modules/@portkey-ai/gateway/build/start-server.js"),
                                   f"--port={pk_port}", "--headless"], {"NODE_ENV": "production"})
    wait_http(f"http://127.0.0.1:{pk_port}/", pk_p, 30)
    check_loopback("portkey", pk_p)
    pk = f"http://127.0.0.1:{pk_port}/v1/chat/completions"
    oa = ["x-portkey-provider: openai", f"x-portkey-custom-host: http://127.0.0.1:{mock}/v1",
          "authorization: Bearer sk-bench-upstream"]
    an = ["x-portkey-provider: anthropic", f"x-portkey-custom-host: http://127.0.0.1:{mock}/v1",
          "authorization: Bearer sk-bench-upstream"]
    targets.append(Target("portkey", "Portkey gateway 1.15.2 (Node)", pk, oa, chat_body("gpt-4o-mini"), root=pk_p))
    targets.append(Target("portkey-b", "Portkey (Node): OpenAI→Anthropic only (no keys, limits or budgets in its open-source gateway)",
                          pk, an, chat_body("claude-sonnet-4-5-20250929"), group="b", root=pk_p))
    streams.append(("portkey", "Portkey (Node)", pk, chat_body("gpt-4o-mini", True),
                    ["x-portkey-provider: openai", f"x-portkey-custom-host: http://127.0.0.1:{mock_stream}/v1",
                     "authorization: Bearer sk-bench-upstream"]))

    # LiteLLM proxy: one process without a master key for (a), one with it
    # and per-model rpm limits for (b); token budgets need its database.
    venv = ENV["BENCH_VENV"]
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
           "NO_DOCS": "True", "DISABLE_ADMIN_UI": "True", "LITELLM_LOG": "ERROR"}
    lite = {}
    for keyed in (False, True):
        port = free_port()
        cfg = os.path.join(workdir, f"litellm-{int(keyed)}.yaml")
        with open(cfg, "w") as f:
            f.write(litellm_config(mock, mock_stream, keyed))
        p = procs.start(f"litellm-{'b' if keyed else 'a'}",
                        [os.path.join(venv, "bin/litellm"), "--config", cfg, "--host", "127.0.0.1",
                         "--port", str(port), "--num_workers", "1"], env)
        lite[keyed] = (p, port)
    for keyed, (p, port) in lite.items():
        hdr = {"authorization": "Bearer sk-bench-litellm-master"} if keyed else {}
        wait_http(f"http://127.0.0.1:{port}/v1/models", p, 120, headers=hdr)
        check_loopback("litellm", p)
    (pa, porta), (pb, portb) = lite[False], lite[True]
    targets.append(Target("litellm", "LiteLLM proxy 1.100.5", f"http://127.0.0.1:{porta}/v1/chat/completions",
                          body=chat_body("bench-gpt"), root=pa))
    targets.append(Target("litellm-b", "LiteLLM: master key + per-model rpm + OpenAI→Anthropic (budgets need its database)",
                          f"http://127.0.0.1:{portb}/v1/chat/completions", ["authorization: Bearer sk-bench-litellm-master"],
                          chat_body("bench-claude"), group="b", root=pb))
    streams.append(("litellm", "LiteLLM", f"http://127.0.0.1:{porta}/v1/chat/completions",
                    chat_body("bench-gpt-stream", True), []))


def wrangler_dev(procs, name, cwd, args):
    """`wrangler dev` on a free port (inspector on another), started in `cwd`."""
    port = free_port()
    env = {"WRANGLER_SEND_METRICS": "false", "WRANGLER_SEND_ERROR_REPORTS": "false"}
    p = procs.start(name, [ENV["BENCH_WRANGLER"], "dev", "--local", "--ip", "127.0.0.1", "--port", str(port),
                           "--inspector-port", str(free_port()), "--show-interactive-dev-session=false", *args],
                    env, cwd=cwd)
    return p, f"http://127.0.0.1:{port}"


def miniflare(procs, name, module_dir, modules, bindings):
    """A Worker in workerd through Miniflare's Node API (bench/peers/miniflare.mjs)."""
    port = free_port()
    wrangler_dir = os.path.dirname(os.path.dirname(os.path.realpath(ENV["BENCH_WRANGLER"])))
    p = procs.start(name, ["node", os.path.join(ENV["BENCH_PEERS_DIR"], "miniflare.mjs"), str(port), module_dir, *modules],
                    {"BENCH_WRANGLER_DIR": wrangler_dir, "BENCH_MINIFLARE_BINDINGS": json.dumps(bindings)})
    return p, f"http://127.0.0.1:{port}"


def worker_target(name, label, url, p, body, headers=()):
    return Target(name, label, url, headers, body, group="runtime", conns=16, cpu_filter="workerd", root=p,
                  note="CPU of its workerd process only")


def start_workers(procs, workdir, mock, mock_stream, admin_key, targets, results):
    peers = ENV["BENCH_PEERS_DIR"]
    trivial_dir, proxy_dir = os.path.join(peers, "trivial-worker"), os.path.join(peers, "proxy-worker")
    upstream = f"http://127.0.0.1:{mock}"
    cfg = gateway_config(mock, mock_stream)
    secrets = {"GATEWAY_CONFIG": cfg, "BENCH_UPSTREAM_KEY": "sk-bench-upstream",
               "BENCH_ADMIN_KEY_SHA256": hashlib.sha256(admin_key.encode()).hexdigest()}
    if ENV.get("BENCH_WORKER_RUST_LOG"):
        secrets["RUST_LOG"] = ENV["BENCH_WORKER_RUST_LOG"]
    # A trivial Worker (fixed JSON, no wasm) under the same wrangler/workerd.
    p, base = wrangler_dev(procs, "worker-trivial", trivial_dir, ["--config", os.path.join(trivial_dir, "wrangler.toml")])
    wait_http(f"{base}/v1/chat/completions", p, 120, method="POST", body=chat_body("x"))
    targets.append(worker_target("worker-trivial", "trivial JS Worker under wrangler dev (runtime floor)",
                                 f"{base}/v1/chat/completions", p, chat_body("x")))
    # A JS Worker that only forwards to the mock (one fetch subrequest): the
    # floor for a proxy under the same wrangler/workerd.
    p, base = wrangler_dev(procs, "worker-proxy", proxy_dir,
                           ["--var", f"UPSTREAM:{upstream}", "--config", os.path.join(proxy_dir, "wrangler.toml")])
    wait_http(f"{base}/v1/chat/completions", p, 120, method="POST", body=chat_body("bench-gpt"))
    targets.append(worker_target("worker-proxy", "JS proxy Worker under wrangler dev (one fetch to the mock: the floor for a proxy)",
                                 f"{base}/v1/chat/completions", p, chat_body("bench-gpt")))
    # The gateway's Worker with the same config as the native server.
    p, base = wrangler_dev(procs, "worker-gateway", ENV["BENCH_WORKER_DIR"],
                           [arg for name, value in secrets.items() for arg in ("--var", f"{name}:{value}")])
    wait_http(f"{base}/v1/models", p, 900)
    check_loopback("worker-gateway", p)
    targets.append(worker_target("worker-gateway", "the gateway's Worker under wrangler dev, scenario (a)",
                                 f"{base}/v1/chat/completions", p, chat_body("bench-gpt")))
    key = create_key(base, admin_key)
    targets.append(worker_target("worker-gateway-b", "the gateway's Worker under wrangler dev, scenario (b) (KV keys, Durable Object counters)",
                                 f"{base}/b/v1/chat/completions", p, chat_body("bench-claude"), [f"authorization: Bearer {key}"]))
    # The same bundles in workerd through Miniflare's API, without the
    # inspector wrangler dev attaches.
    p, base = miniflare(procs, "miniflare-trivial", trivial_dir, ["index.js"], {})
    wait_http(f"{base}/v1/chat/completions", p, 60, method="POST", body=chat_body("x"))
    targets.append(worker_target("miniflare-trivial", "trivial JS Worker in workerd via Miniflare, no inspector (floor)",
                                 f"{base}/v1/chat/completions", p, chat_body("x")))
    p, base = miniflare(procs, "miniflare-proxy", proxy_dir, ["index.js"], {"UPSTREAM": upstream})
    wait_http(f"{base}/v1/chat/completions", p, 60, method="POST", body=chat_body("bench-gpt"))
    targets.append(worker_target("miniflare-proxy", "JS proxy Worker in workerd via Miniflare, no inspector (floor for a proxy)",
                                 f"{base}/v1/chat/completions", p, chat_body("bench-gpt")))
    p, base = miniflare(procs, "miniflare-gateway", os.path.join(ENV["BENCH_WORKER_DIR"], "build"),
                        ["index.js", "index_bg.wasm"], secrets)
    wait_http(f"{base}/v1/chat/completions", p, 60, method="POST", body=chat_body("bench-gpt"))
    targets.append(worker_target("miniflare-gateway", "the gateway's Worker in workerd via Miniflare, no inspector, scenario (a)",
                                 f"{base}/v1/chat/completions", p, chat_body("bench-gpt")))
    key = create_key(base, admin_key)
    targets.append(worker_target("miniflare-gateway-b", "the gateway's Worker in workerd via Miniflare, no inspector, scenario (b) (KV keys, Durable Object counters)",
                                 f"{base}/b/v1/chat/completions", p, chat_body("bench-claude"), [f"authorization: Bearer {key}"]))
    wasm = os.path.join(ENV["BENCH_WORKER_DIR"], "build/index_bg.wasm")
    if os.path.exists(wasm):
        raw = open(wasm, "rb").read()
        results["sizes"]["worker_wasm"] = len(raw)
        results["sizes"]["worker_wasm_gzip"] = len(gzip.compress(raw, 9))


def start_lambda_watch(procs, workdir, mock, mock_stream, admin_key, targets):
    """The Lambda adapter under `cargo lambda watch` (its runtime API
    emulator and the function, release builds), beside the trivial
    `lambda_http` function under the same watch: what `RUNTIME=lambda
    scripts/dev` serves, and the emulator's own floor. CPU is that of the
    whole tree (cargo-lambda and the function it runs)."""
    cargo_lambda = ENV["BENCH_CARGO_LAMBDA"]
    conf = os.path.join(workdir, "gateway-lambda.yaml")
    with open(conf, "w") as f:
        f.write(gateway_config(mock, mock_stream))
    for name, label, package, binary, base_path, model in (
        ("lambda-trivial", "trivial lambda_http function under cargo lambda watch (emulator floor)",
         "gateway-bench", "bench-trivial-lambda", "/lambda-url/bench-trivial-lambda", "x"),
        ("lambda-gateway", "the gateway's Lambda adapter under cargo lambda watch, scenario (a)",
         "gateway-aws-lambda", "gateway", "/lambda-url/gateway", "bench-gpt"),
    ):
        port = free_port()
        env = {
            "GATEWAY_CONFIG_PATH": conf,
            "BENCH_UPSTREAM_KEY": "sk-bench-upstream",
            "BENCH_ADMIN_KEY_SHA256": hashlib.sha256(admin_key.encode()).hexdigest(),
            "RUST_LOG": ENV.get("BENCH_GATEWAY_RUST_LOG", "info"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        p = procs.start(name, [cargo_lambda, "lambda", "watch", "--release", "--ignore-changes",
                               "--invoke-address", "127.0.0.1", "--invoke-port", str(port),
                               "--concurrency", "32", "--package", package, "--bin", binary],
                        env, cwd=ENV["BENCH_ROOT"])
        url = f"http://127.0.0.1:{port}{base_path}/v1/chat/completions"
        wait_http(url, p, 900, method="POST", body=chat_body(model))
        targets.append(Target(name, label, url, body=chat_body(model), group="runtime", root=p))


def coldstart(workdir, mock, results):
    tool = os.path.join(ENV["BENCH_BIN_DIR"], "bench-coldstart")
    cfg = os.path.join(workdir, "hundred.yaml")
    with open(cfg, "w") as f:
        f.write(hundred_routes_config(mock))
    cases = [
        ("trivial", "trivial lambda_http function (floor)", os.path.join(ENV["BENCH_BIN_DIR"], "bench-trivial-lambda"), [], "x"),
        ("embedded", "the gateway, embedded example config (mock provider)", ENV["BENCH_GATEWAY"], [], "mock-gpt"),
        ("hundred", "the gateway, 100 routes and 100 models (OpenAI upstream: the bench mock)", ENV["BENCH_GATEWAY"],
         ["--env", f"GATEWAY_CONFIG_PATH={cfg}", "--env", "BENCH_UPSTREAM_KEY=sk-bench-upstream"], "model-042"),
    ]
    for name, label, binary, extra, model in cases:
        log(f"cold start: {name}")
        out = subprocess.run([tool, "--bin", binary, "--runs", "10", "--body", chat_body(model), *extra],
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"bench-coldstart {name} failed: {out.stderr[-800:]}")
        data = json.loads(out.stdout)
        results["coldstart"].append({
            "name": name, "label": label,
            "init_ms": med(data["init_ms"]), "init_max_ms": max(data["init_ms"]),
            "first_invoke_ms": med(data["first_invoke_ms"]),
            "status": sorted(set(data["status"])), "hwm_mb": med(data["vm_hwm_kb"]) / 1024,
        })


def sizes(results):
    binary = ENV["BENCH_GATEWAY"]
    raw = os.path.getsize(binary)
    zpath = os.path.join(tempfile.mkdtemp(prefix="gateway-zip-"), "bootstrap.zip")
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(binary, "bootstrap")
    results["sizes"]["lambda_binary_x86_64"] = raw
    results["sizes"]["lambda_zip_x86_64"] = os.path.getsize(zpath)
    arm = ENV.get("BENCH_GATEWAY_ARM64")
    if arm and os.path.exists(arm):
        results["sizes"]["lambda_binary_arm64"] = os.path.getsize(arm)
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            z.write(arm, "bootstrap")
        results["sizes"]["lambda_zip_arm64"] = os.path.getsize(zpath)
    shutil.rmtree(os.path.dirname(zpath), ignore_errors=True)


# --- report ----------------------------------------------------------------------

def fmt(v, digits=0, unit=""):
    if v is None or v != v:
        return "—"
    if digits == 0:
        return f"{v:,.0f}{unit}"
    return f"{v:,.{digits}f}{unit}"


def report(args, results):
    by = {t["name"]: t for t in results["targets"]}
    nginx = by.get("nginx")
    direct = by.get("direct")
    lines = []
    print("\nratios to nginx (CPU per request; added p50 at 1 connection vs the direct mock):")
    for t in results["targets"]:
        if t["name"] in ("direct", "nginx") or not nginx:
            continue
        cpu_ratio = t["cpu_us"] / nginx["cpu_us"] if t["cpu_us"] and nginx["cpu_us"] else None
        rps_ratio = t["rps"] / nginx["rps"] if t["rps"] and nginx["rps"] else None
        added = t["p50_1"] - direct["p50_1"] if direct and t["p50_1"] is not None else None
        t["cpu_ratio"], t["rps_ratio"], t["added_p50_1"] = cpu_ratio, rps_ratio, added
        print(f"  {t['name']:18} CPU/req {fmt(cpu_ratio, 2)}× nginx   req/s {fmt(rps_ratio, 2)}× nginx   "
              f"added p50@1 {fmt(added, 3)} ms")
    if nginx and direct:
        nginx["added_p50_1"] = nginx["p50_1"] - direct["p50_1"]
    if not args.out:
        return
    md = render(args, results)
    with open(args.out, "w") as f:
        f.write(md)
    log(f"wrote {args.out}")
    chart(args, results)


def render(args, results):
    by = {t["name"]: t for t in results["targets"]}
    out = []
    w = out.append
    w("# Benchmarks\n")
    w("Written by `scripts/bench`" + (" --smoke" if args.smoke else "") +
      f" on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({os.cpu_count()} cores, "
      f"shared; loopback only). Regenerate with `scripts/bench` (options: `--smoke`, `--emulators`).\n")
    w(f"Run time: {results['elapsed_s']:.0f} s for the measurements (installs and builds not included). "
      "Every figure is the median of "
      f"{args.rounds} alternating rounds; each round runs every target in turn: "
      f"oha for {args.duration:g} s at 32 connections (16 for the Worker targets), then {args.lat_duration:g} s at 1 connection. "
      "CPU per request is the CPU time (user + system) of the target's process tree during the 32-connection run "
      "divided by the responses it served; peak RSS is VmHWM summed over that tree.\n")
    w("The upstream is `bench-mock` (bench/src/bin/mock.rs), a hyper server answering OpenAI chat completions and "
      "Anthropic messages with their real wire shapes; every request carries the same chat body "
      "(system + user message, `max_tokens: 64`). Every target runs with its default logging: the gateway writes its "
      "JSON access and usage lines (`RUST_LOG` unset: `info`) to a file, nginx its access log. oha, the mock and "
      "the targets share the same 2 cores, so absolute figures are lower than on a dedicated machine; compare rows.\n")

    def table(group, title, intro):
        rows = [t for t in results["targets"] if t["group"] == group or (group == "a" and t["name"] == "direct")]
        if not rows:
            return
        w(f"## {title}\n")
        w(intro + "\n")
        w("| target | req/s at 32 conns | p50 / p99 at 32 (ms) | p50 / p99 at 1 (ms) | added p50 at 1 (ms) | CPU per request | × nginx CPU | peak RSS |")
        w("|---|---|---|---|---|---|---|---|")
        for t in rows:
            conns = "" if t["conns"] == 32 else f" (at {t['conns']})"
            cpu = fmt(t["cpu_us"], 1, " µs") if t["cpu_us"] is not None and t["cpu_us"] < 100 else fmt(t["cpu_us"], 0, " µs")
            note = f" — {t['note']}" if t.get("note") else ""
            flag = f" ⚠ {t['non_200']} non-200" if t["non_200"] else ""
            w(f"| {t['label']}{note}{flag} | {fmt(t['rps'])}{conns} | {fmt(t['p50_32'], 2)} / {fmt(t['p99_32'], 2)} | "
              f"{fmt(t['p50_1'], 3)} / {fmt(t['p99_1'], 3)} | {fmt(t.get('added_p50_1'), 3) if t['name'] != 'direct' else '—'} | "
              f"{cpu} | {fmt(t.get('cpu_ratio'), 2) if t['name'] not in ('nginx', 'direct') else ('1' if t['name'] == 'nginx' else '—')} | "
              f"{fmt(t['hwm_mb'], 1, ' MB')} |")
        w("")

    table("a", "(a) OpenAI-compatible pass-through",
          "`POST /v1/chat/completions` forwarded to an OpenAI-compatible upstream. nginx is a plain reverse proxy "
          "(keep-alive upstream pool, access log on, 2 worker processes); the gateway parses the request, resolves "
          "the model, rewrites it for the provider, parses the reply and records usage.")
    table("b", "(b) API key + request limit + token budget + OpenAI→Anthropic",
          "The gateway: an API key (created through the admin API; key cache), a sliding-window request limit and a "
          "token budget in the memory store (reserve, then settle to the reported usage), and the OpenAI→Anthropic "
          "translation both ways. The peers do what they can of it: LiteLLM's master key and per-model rpm (its "
          "budgets need a Postgres database), Portkey only the translation (its open-source gateway has no keys, "
          "limits or budgets). × nginx compares with nginx's plain pass-through in (a).")
    table("runtime", "The local emulators: the Worker under wrangler dev, Lambda under cargo lambda watch, and their floors",
          "The gateway's Worker under `wrangler dev` (workerd), beside two JS Workers under the same wrangler, so "
          "the runtime's own cost is visible: a trivial one (a fixed reply) and a proxy (one `fetch` to the mock, its "
          "reply returned: the floor for any Worker that proxies); then the same bundles in workerd through Miniflare's "
          "Node API, without the inspector that wrangler dev always attaches (wrangler collects console output through "
          "it). For "
          "the Worker rows CPU per request is that of the workerd process running the Worker (the issue's measure, at "
          "16 connections); wrangler's Node process (proxy, log printing) is not included. Then the Lambda adapter "
          "under `cargo lambda watch` (release build; what `RUNTIME=lambda scripts/dev` serves) beside a trivial "
          "`lambda_http` function under the same watch; their CPU is the whole tree (the emulator and the function). At "
          "one connection both Lambda rows wait ~44 ms per response, the trivial function too, only on a keep-alive "
          "connection to `cargo lambda watch` (with a new connection per request the same functions answer in about "
          "1 ms): the signature of Nagle's algorithm meeting a delayed ACK in the emulator's HTTP front, not in the "
          "function; real Lambda's Function URL front end is AWS's own.")

    by_name = {t["name"]: t for t in results["targets"]}
    floor, ours = by_name.get("miniflare-proxy"), by_name.get("miniflare-gateway")
    if floor and ours and floor.get("cpu_us") and ours.get("cpu_us"):
        w(f"Above the proxy floor in workerd without the inspector, the gateway's Worker adds "
          f"{ours['cpu_us'] - floor['cpu_us']:,.0f} µs of CPU per request in scenario (a) "
          f"({ours['cpu_us']:,.0f} µs against {floor['cpu_us']:,.0f} µs for the JS proxy).\n")

    if results["streams"]:
        d = next((s for s in results["streams"] if s["name"] == "direct"), None)
        w("## (c) Streaming\n")
        w("One connection, the same streamed chat completion repeatedly (`bench-probe`): the mock sends its first "
          "event at once, then 10 deltas 5 ms apart, then the closing events. Added = the target's median minus the "
          "direct median. Frames = body reads that returned data (a proxy that buffers delivers fewer, later).\n")
        w("| target | first byte (ms) | added to first byte (ms) | last byte (ms) | added to last byte (ms) | frames (median) |")
        w("|---|---|---|---|---|---|")
        for s in results["streams"]:
            if s["non_200"] == s["n"]:
                w(f"| {s['label']} | failed: every response non-200 (see the note below) | | | | |")
                continue
            flag = f" ⚠ {s['non_200']} non-200" if s["non_200"] else ""
            add_first = s["first_byte_ms"] - d["first_byte_ms"] if d and s["name"] != "direct" and s["first_byte_ms"] is not None else None
            add_last = s["last_byte_ms"] - d["last_byte_ms"] if d and s["name"] != "direct" and s["last_byte_ms"] is not None else None
            w(f"| {s['label']}{flag} | {fmt(s['first_byte_ms'], 3)} | {fmt(add_first, 3)} | {fmt(s['last_byte_ms'], 2)} | "
              f"{fmt(add_last, 2)} | {fmt(s['frames'])} |")
        if any(s["non_200"] == s["n"] for s in results["streams"]):
            w("\nA failed row: the peer answered every streamed request with an error. Portkey 1.15.2 under Node 20 "
              "fails streamed OpenAI responses with `TypeError: immutable` (it modifies the headers of a fetch "
              "response, which Node's fetch forbids) and answers 500.")
        w("")

    if results["coldstart"]:
        w("## Lambda cold start (init) and size\n")
        w("`bench-coldstart` (bench/src/bin/coldstart.rs) is a minimal Lambda runtime API on 127.0.0.1. Init = process "
          "start until the first `GET /runtime/invocation/next` (config parsed and validated, clients built); first "
          "invocation = that event (a Function URL `POST /v1/chat/completions`) until its streamed response has "
          "arrived; peak RSS after it. Median of 10 starts each, release build, x86_64, local disk (Lambda adds its "
          "own sandbox start and code download before this).\n")
        w("| binary and config | init (ms) | init, slowest of 10 (ms) | first invocation (ms) | peak RSS after the first request |")
        w("|---|---|---|---|---|")
        for c in results["coldstart"]:
            w(f"| {c['label']} | {fmt(c['init_ms'], 2)} | {fmt(c['init_max_ms'], 2)} | {fmt(c['first_invoke_ms'], 2)} | {fmt(c['hwm_mb'], 1, ' MB')} |")
        w("")
    s = results["sizes"]
    if s:
        w("| artifact | size |")
        w("|---|---|")
        names = {
            "lambda_binary_x86_64": "Lambda `bootstrap` (the `gateway` binary), x86_64, stripped",
            "lambda_zip_x86_64": "Lambda deployment zip, x86_64 (budget 10 MB)",
            "lambda_binary_arm64": "Lambda `bootstrap`, arm64",
            "lambda_zip_arm64": "Lambda deployment zip, arm64 (budget 10 MB)",
            "worker_wasm": "Worker wasm, raw",
            "worker_wasm_gzip": "Worker wasm, gzip -9 (budget 1.5 MB)",
        }
        for k, label in names.items():
            if k in s:
                w(f"| {label} | {s[k] / 1e6:.2f} MB ({s[k]:,} bytes) |")
        w("")
    if os.path.exists(os.path.splitext(args.out)[0] + ".png") or _has_matplotlib():
        w(f"![req/s and CPU per request]({os.path.basename(os.path.splitext(args.out)[0])}.png)\n")
    return "\n".join(out) + "\n"


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def chart(args, results):
    if not _has_matplotlib():
        log("matplotlib not available: no chart")
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [t for t in results["targets"] if t["name"] != "direct" and t["cpu_us"]]
    if not rows:
        return
    names = [t["name"] for t in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 0.45 * len(rows) + 1.8))
    ax1.barh(names, [t["cpu_us"] for t in rows], color="#4472c4")
    ax1.set_xscale("log")
    ax1.set_xlabel("CPU µs per request (log scale, lower is better)")
    ax1.invert_yaxis()
    for i, t in enumerate(rows):
        ax1.text(t["cpu_us"], i, f" {t['cpu_us']:.0f}", va="center", fontsize=8)
    ax2.barh(names, [t["rps"] for t in rows], color="#70ad47")
    ax2.set_xscale("log")
    ax2.set_xlabel("req/s at 32 connections (log scale, higher is better)")
    ax2.invert_yaxis()
    for i, t in enumerate(rows):
        ax2.text(t["rps"], i, f" {t['rps']:,.0f}", va="center", fontsize=8)
    fig.suptitle("scripts/bench on 127.0.0.1 (2 shared cores), median of rounds")
    fig.tight_layout()
    path = os.path.splitext(args.out)[0] + ".png"
    fig.savefig(path, dpi=90)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
