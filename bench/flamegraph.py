"""Drives scripts/flamegraph: the bench mock, the gateway (a build with
symbols), `perf record` on the gateway while oha loads it, then inferno's
collapse and flamegraph. Usage: flamegraph.py <a|b> <out.svg>."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

import run as bench


def main():
    scenario, out = sys.argv[1], sys.argv[2]
    workdir = tempfile.mkdtemp(prefix="gateway-flamegraph-")
    procs = bench.Procs(workdir)
    try:
        _, mock = bench.start_mock(procs, "mock", ["--chunks", "8"])
        admin_key = "flamegraph-admin-" + os.urandom(8).hex()
        gateway, base = bench.start_gateway(procs, workdir, mock, mock, admin_key)
        if scenario == "a":
            url, headers, body = f"{base}/v1/chat/completions", [], bench.chat_body("bench-gpt")
        else:
            key = bench.create_key(base, admin_key)
            url, headers, body = (f"{base}/b/v1/chat/completions", [f"authorization: Bearer {key}"],
                                  bench.chat_body("bench-claude"))
        bench.oha(url, 8, 1, headers, body)  # warm-up
        data = os.path.join(workdir, "perf.data")
        record = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "--call-graph", "dwarf,16384",
                                   "-p", str(gateway.pid), "-o", data, "--", "sleep", "5"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.2)
        load = bench.oha(url, 32, 4.5, headers, body)
        record.wait(timeout=60)
        bench.log(f"scenario ({scenario}): {load['rps']:.0f} req/s under perf; folding the samples")
        script = subprocess.run(["perf", "script", "-i", data], capture_output=True, timeout=600)
        tools = os.environ["BENCH_INFERNO"]
        folded = subprocess.run([os.path.join(tools, "inferno-collapse-perf")], input=script.stdout,
                                capture_output=True, timeout=600).stdout
        title = {"a": "native server, scenario (a): OpenAI-compatible pass-through",
                 "b": "native server, scenario (b): key, limits, budget, OpenAI→Anthropic"}[scenario]
        # Frames narrower than 3 px are left out: the SVG stays small enough
        # to commit (the folded stacks beside it keep everything).
        folded_path = os.path.splitext(out)[0] + ".folded"
        cache = os.environ.get("GATEWAY_CACHE")
        if cache:
            folded_path = os.path.join(cache, os.path.basename(folded_path))
        with open(folded_path, "wb") as f:
            f.write(folded)
        svg = subprocess.run([os.path.join(tools, "inferno-flamegraph"), "--title", title, "--width", "1600",
                              "--minwidth", "3"],
                             input=folded, capture_output=True, timeout=600).stdout
        with open(out, "wb") as f:
            f.write(svg)
        # The frames most often on top of the stack, for the terminal.
        leaves = {}
        total = 0
        for line in folded.decode(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            leaf = stack.rsplit(";", 1)[-1]
            leaves[leaf] = leaves.get(leaf, 0) + int(count)
            total += int(count)
        for leaf, count in sorted(leaves.items(), key=lambda kv: -kv[1])[:15]:
            print(f"{100 * count / max(total, 1):5.1f}%  {leaf[:140]}")
        bench.log(f"wrote {out} (all stacks, folded: {folded_path})")
    finally:
        procs.stop_all()
        # perf.data is ~150 MB; the folded stacks above keep what it had.
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
