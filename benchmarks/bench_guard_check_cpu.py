"""CPU per guarded decision, in process: this checkout against another one, same run.

Run::

    git archive <commit> src | tar -x -C /tmp/before
    python benchmarks/bench_guard_check_cpu.py --before /tmp/before/src \\
        --out benchmarks/results/guard_check_cpu.json

What one proxy request costs the guard besides HTTP: ``Guard.context`` (provenance lookup,
trigger matching) and ``Guard.check_call`` (``decide()``, the hash-chained audit entry through
group commit, the monitoring baseline) for one allowed ``lookup_order`` call, with the audit
database on ``/dev/shm`` so the disk's sync time (measured by bench_guard_overhead.py) is left
out and only CPU remains. Each source tree runs in its own fresh process, alternating
``--rounds`` times; the figure is process CPU time (``time.process_time``) per decision, which
moves far less with the machine's other load than wall time does. Reported: the median over
rounds per tree, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys, tempfile, time
from pathlib import Path
sys.path[:0] = [{tests!r}]
from _guard_env import make_registry, write_policy
from _guard_policy import MODEL
from dormant.guard import AuditLog, Guard, GuardPolicy, ProposedCall
from dormant.registry import Registry

d = Path(tempfile.mkdtemp(dir={tmp!r}))
policy = GuardPolicy.load(write_policy(d / "policy"))
registry = Registry.open(make_registry(d / "registry.sqlite3"))
guard = Guard(policy, audit=AuditLog.open(d / "audit.sqlite3"), registry=registry)
texts = [("message[0]", "where is order 1234? I ordered it last week and it has not arrived.")]

def one():
    ctx = guard.context("support-bot", MODEL, texts)
    dec = guard.check_call(ctx, ProposedCall("lookup_order", {{"order_id": "1234"}}, call_id="c"))
    assert dec.allowed, dec.reasons

for _ in range(50):
    one()
c0 = time.process_time()
for _ in range({n}):
    one()
cpu = (time.process_time() - c0) / {n} * 1000
guard.close()
print(json.dumps({{"cpu_ms": cpu}}))
"""


def run(src: Path, n: int, tmp: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")
    code = CHILD.format(tests=str(ROOT / "tests"), tmp=tmp, n=n)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["cpu_ms"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True, help="the other checkout's src/")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("-n", type=int, default=400, help="decisions per round")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    tmp = "/dev/shm" if Path("/dev/shm").is_dir() else tempfile.gettempdir()
    trees = {"before": args.before.resolve(), "this checkout": ROOT / "src"}
    cpu: dict[str, list[float]] = {k: [] for k in trees}
    for r in range(args.rounds):
        for name, src in trees.items():
            cpu[name].append(run(src, args.n, tmp))
        print(json.dumps({"round": r, **{k: round(v[-1], 3) for k, v in cpu.items()}}))
    med = {k: round(statistics.median(v), 3) for k, v in cpu.items()}
    result = {
        "machine": f"{platform.machine()}, {platform.python_version()}, "
        f"{os.cpu_count()} CPUs (shared)",
        "load_avg": list(os.getloadavg()),
        "decisions_per_round": args.n,
        "rounds": args.rounds,
        "cpu_ms_per_decision": cpu,
        "median_cpu_ms_per_decision": med,
        "ratio_before_over_now": round(med["before"] / med["this checkout"], 2),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "cpu_ms_per_decision"}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
