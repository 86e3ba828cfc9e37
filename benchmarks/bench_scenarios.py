"""The four cases end to end: per scenario and stage, caught yes/no and seconds.

Run (needs ``dormant[demo]``; trains the organisms on first use, cached under ``--cache``)::

    python benchmarks/bench_scenarios.py --scenario all --out /tmp/scen-bench \
        --cache ~/.cache/dormant/scenarios --seed 0

Each scenario runs through :func:`dormant.scenarios.run_scenarios` exactly as ``dormant demo
--scenario`` does: build (or load) the organism, then the data scan, the model scan or probe,
provenance and the runtime guard. The organism's build time is reported apart from the stages
(a cached organism loads in seconds). Writes ``benchmarks/results/scenarios.json`` (one row per
scenario and seed, with the stages' own figures: quarantine recall and precision, replay rate,
requests blocked and passed) and prints a Markdown table for BENCHMARKS.md. There is no
baseline to compare a yes/no against: the figures are the stages' own rates, and the timings
depend on the machine's load (say so next to them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", action="append", default=None)
    ap.add_argument("--out", type=Path, default=Path("/tmp/dormant-scenario-bench"))
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--seed", type=int, action="append", default=None)
    ap.add_argument(
        "--results", type=Path, default=Path(__file__).parent / "results" / "scenarios.json"
    )
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from dormant.scenarios import run_scenarios

    rows = []
    for seed in args.seed or [0]:
        t0 = time.perf_counter()
        results = run_scenarios(
            args.scenario or ["all"],
            args.out / f"seed{seed}",
            cache_dir=args.cache,
            seed=seed,
            progress=lambda m: print(time.strftime("%X"), m, flush=True),
        )
        for r in results:
            row = {
                "scenario": r.name,
                "seed": seed,
                "caught": r.caught,
                "trigger": r.trigger,
                "build_seconds": round(r.build_seconds, 1),
                "build_error": r.build_error,
                "stages": {
                    s.key: {
                        "caught": s.caught,
                        "seconds": round(s.seconds, 1),
                        "summary": s.summary,
                        "error": s.error,
                        **s.data,
                    }
                    for s in r.stages
                },
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        print(f"seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    doc = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.python_version()}",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": rows,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(doc, indent=2) + "\n", "utf-8")
    keys = ("data", "model", "provenance", "guard")
    print("\n| scenario | seed | build s | " + " | ".join(keys) + " | all |")
    print("|---|---|---|" + "---|" * len(keys) + "---|")
    for r in rows:
        cells = [
            f"{'yes' if r['stages'][k]['caught'] else 'NO'} ({r['stages'][k]['seconds']:.0f} s)"
            for k in keys
        ]
        print(
            f"| {r['scenario']} | {r['seed']} | {r['build_seconds']:.0f} | "
            + " | ".join(cells)
            + f" | {'yes' if r['caught'] else 'NO'} |"
        )
    return 0 if all(r["caught"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
