"""Representation scanners, baseline tree vs this one: same embeddings, same seeds, same run.

Two figures for each tree, each tree in a fresh process on embeddings computed once here:

- **quality** — the design of ``tests/scanners/data/test_representation.py`` redrawn per seed
  (``bench_representation_libs._case``: 150 WordNet glosses per part of speech, 5% of the noun
  and verb glosses given an inserted sentence and the label ``adj``; its clean twin): clean
  datasets with a finding, attacked datasets where only the attacked class is found, mean F1 of
  the flagged records; and, between the trees, how often they flag the same records and the
  largest difference of a class's p-value;
- **cost** — CPU seconds of the three scanners on those embeddings, and on the embeddings of
  a larger labelled set (``--embeddings X.npy --data DIR``, e.g. the 8,000 records of
  ``bench_data_disk.py --embed``).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_representation_speed.py --baseline /work/main/src \\
        --seeds 8 --embeddings x8000.npy --data n8000 --out benchmarks/results/rep_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
SCANNERS = ("spectral-signature", "activation-clustering", "spectre")

RUN = r"""
import json, sys, time
import numpy as np
from dormant.scanners.base import REGISTRY
from dormant.scanners.catalog import _load_builtin
from dormant.scanners.data.fusion import record_outcomes
from dormant.subjects import TextDataset

SCANNERS = ("spectral-signature", "activation-clustering", "spectre")
_load_builtin()
plan = json.loads(sys.argv[1])
out = []
for job in plan:
    ds = TextDataset(job["data"], text_field="text", label_field="label", id_field="id")
    x = np.load(job["embeddings"])
    outcomes = record_outcomes(ds)
    row = {"name": job["name"]}
    for name in SCANNERS:
        c0 = time.process_time()
        res = REGISTRY[name]().scan(ds, embeddings=x, outcomes=outcomes)
        cpu = time.process_time() - c0
        flags = np.flatnonzero(np.asarray(res.record_flags, dtype=bool)).tolist()
        row[name] = {"cpu_s": round(cpu, 3), "flags": flags,
                     "found": sorted(f.locator.label for f in res.findings),
                     "p": {c["label"]: c["p_value"] for c in res.extras["classes"]}}
    out.append(row)
print(json.dumps(out))
"""


def _tree(src: str, plan: list[dict[str, str]]) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(plan)], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"a scanner run failed:\n{done.stderr[-3000:]}")
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def _cases(
    seeds: int, tmp: Path, sentence: str | None
) -> tuple[list[dict[str, str]], dict[int, np.ndarray]]:
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))
    import bench_representation_libs as libs
    from bench_representation_libs import _case

    # one inserted sentence for every seed, as tests/scanners/data/test_representation.py
    if sentence:
        libs.SENTENCES = (sentence,)

    from dormant.adapters import TextEncoder
    from dormant.bench.corpus import load_corpus

    entries = load_corpus("sample")
    encoder = TextEncoder().load()
    plan: list[dict[str, str]] = []
    truths: dict[int, np.ndarray] = {}
    for seed in range(seeds):
        case = _case(entries, seed, encoder, str(tmp))
        truths[seed] = case["truth"]
        for kind in ("clean", "attacked"):
            ds, e = case[kind]
            np.save(tmp / f"{kind}-{seed}.npy", np.asarray(e, dtype=np.float32))
            plan.append(
                {
                    "name": f"{kind}-{seed}",
                    "data": str(ds.path),
                    "embeddings": str(tmp / f"{kind}-{seed}.npy"),
                }
            )
    return plan, truths


def _f1(flags: list[int], truth: np.ndarray) -> float:
    hit = np.zeros(len(truth), dtype=bool)
    hit[flags] = True
    tp = int((hit & truth).sum())
    return 2 * tp / max(1, int(hit.sum()) + int(truth.sum()))


def _quality(rows: list[dict[str, Any]], truths: dict[int, np.ndarray]) -> dict[str, Any]:
    by = {r["name"]: r for r in rows}
    n = len(truths)
    table: dict[str, Any] = {}
    for s in SCANNERS:
        clean = sum(bool(by[f"clean-{k}"][s]["found"]) for k in truths)
        only = sum(by[f"attacked-{k}"][s]["found"] == ["adj"] for k in truths)
        f1 = sum(_f1(by[f"attacked-{k}"][s]["flags"], truths[k]) for k in truths) / n
        cpu = sum(by[f"{kind}-{k}"][s]["cpu_s"] for k in truths for kind in ("clean", "attacked"))
        table[s] = {"clean_with_finding": clean, "only_attacked": only, "f1": round(f1, 3)}
        table[s]["cpu_s"] = round(cpu, 2)
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default=None, help="src directory of the baseline tree")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--embeddings", default=None, help=".npy embeddings of --data (cost only)")
    ap.add_argument("--data", default=None, help="the labelled JSONL records of --embeddings")
    ap.add_argument("--sentence", default=None, help="one inserted sentence for every seed")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    trees = [("this tree", str(SRC))]
    if args.baseline:
        trees.insert(0, ("baseline", args.baseline))
    with tempfile.TemporaryDirectory() as tmp:
        plan, truths = _cases(args.seeds, Path(tmp), args.sentence)
        if args.embeddings:
            plan.append({"name": "large", "data": args.data, "embeddings": args.embeddings})
        rows = {name: _tree(src, plan) for name, src in trees}
    result: dict[str, Any] = {
        "seeds": args.seeds,
        "sentence": args.sentence,
        "machine": os.uname().nodename,
        "loadavg_end": os.getloadavg()[0],
        "trees": {},
    }
    for name, r in rows.items():
        q = _quality([x for x in r if x["name"] != "large"], truths)
        large = next((x for x in r if x["name"] == "large"), None)
        if large:
            for s in SCANNERS:
                q[s]["large_cpu_s"] = large[s]["cpu_s"]
        result["trees"][name] = q
    if len(rows) == 2:
        a, b = (rows[name] for name, _ in trees)
        agree: dict[str, Any] = {}
        for s in SCANNERS:
            same = sum(x[s]["flags"] == y[s]["flags"] for x, y in zip(a, b, strict=True))
            dp = max(
                abs(x[s]["p"][c] - y[s]["p"][c])
                for x, y in zip(a, b, strict=True)
                for c in x[s]["p"]
            )
            found = sum(x[s]["found"] == y[s]["found"] for x, y in zip(a, b, strict=True))
            agree[s] = {"same_flags": same, "same_found": found, "of": len(a), "max_abs_dp": dp}
        result["agreement"] = agree
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
