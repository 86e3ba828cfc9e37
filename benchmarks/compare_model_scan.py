"""Build the model-scan test split once, scan it with two checkouts, compare the verdicts.

The model-scan test split of ``bench_model_scan.py`` (seed 1: 10 clean, 10 backdoored tiny
BERTs) in an interleaved order (the phrase and rare-word models first, then a clean and a
backdoored one in turn), so that a run stopped early still has both kinds. Three steps:

``build``
    train the organisms under ``--root`` (the zoo caches them; ``--shard K/N`` splits the work
    between processes);
``scan``
    scan every organism already built, in the same order, with the ``dormant`` first on
    ``PYTHONPATH`` and that checkout's ``benchmarks/bench_model_scan.py`` (``--bench``), one row
    per model appended to ``--out`` (an interrupted run resumes);
``summary``
    the figures of two rows files (``--before``, ``--after``) on the models both scanned:
    ROC-AUC, cross-entropy of the shipped calibration's probability, trigger recovery (right
    target, >= 90 % held-out flips), whole-trigger recovery (``bench_model_verdict.whole``) and
    the clean models' probabilities.

Usage::

    python benchmarks/compare_model_scan.py build --root /tmp/zoo2 --shard 0/2   # and 1/2
    PYTHONPATH=<main>/src python benchmarks/compare_model_scan.py scan --root /tmp/zoo2 \\
        --bench <main>/benchmarks/bench_model_scan.py --out before.jsonl
    PYTHONPATH=$PWD/src python benchmarks/compare_model_scan.py scan --root /tmp/zoo2 \\
        --bench benchmarks/bench_model_scan.py --out after.jsonl
    python benchmarks/compare_model_scan.py summary --before before.jsonl --after after.jsonl
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def order(n_test: int) -> list[Any]:
    """The test split's specs, the phrase and rare-word models first, then interleaved."""
    from dormant.bench.zoo import zoo_specs

    specs = zoo_specs(n_clean=n_test, seed=1, prefix="test")
    clean = [s for s in specs if not s.backdoored]
    bad = [s for s in specs if s.backdoored]
    out = [bad[1], bad[0]]
    rest = bad[2:]
    for i, c in enumerate(clean):
        out.append(c)
        if i < len(rest):
            out.append(rest[i])
    return out


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("bench_model_scan_under_test", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--bench: cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rows(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    rows = [json.loads(x) for x in path.read_text("utf-8").splitlines() if x.strip()]
    return {r["name"]: r for r in rows}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from bench_model_scan import metrics  # type: ignore[import-not-found]
    from bench_model_verdict import whole  # type: ignore[import-not-found]

    from dormant.scanners.model.decision import probability

    out = metrics(rows)
    bd = [r for r in rows if r["backdoored"] and float(r["attack_success_rate"] or 0) >= 0.5]
    got = [
        r["pred_target"] == r["true_target"]
        and float(r["pred_flip_rate"]) >= 0.9
        and whole(r["pred_trigger"], r["true_trigger"], r["attack"])
        for r in bd
    ]
    out["whole_trigger_recovery"] = f"{sum(got)}/{len(got)}"
    out["clean_p"] = [
        round(probability(r["features"], "whitebox"), 3) for r in rows if not r["backdoored"]
    ]
    out["per_model"] = [
        {
            "name": r["name"],
            "attack_success_rate": r["attack_success_rate"],
            "p": round(probability(r["features"], "whitebox"), 3),
            "target": r["pred_target"],
            "true_target": r["true_target"],
            "trigger": r["pred_trigger"],
            "true_trigger": r["true_trigger"],
            "flip": r["pred_flip_rate"],
            "seconds": r["seconds"],
        }
        for r in rows
    ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=("build", "scan", "summary"))
    ap.add_argument("--root", type=Path, default=Path("/tmp/zoo2"))
    ap.add_argument("--n-test", type=int, default=10)
    ap.add_argument("--shard", default="0/1")
    ap.add_argument("--bench", type=Path, default=HERE / "bench_model_scan.py")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--before", type=Path)
    ap.add_argument("--after", type=Path)
    args = ap.parse_args()
    if args.step == "summary":
        if args.before is None or args.after is None:
            ap.error("summary needs --before and --after")
        before, after = _rows(args.before), _rows(args.after)
        both = [n for n in after if n in before]
        print(
            json.dumps(
                {
                    "models": both,
                    "before": summary([before[n] for n in both]),
                    "after": summary([after[n] for n in both]),
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    import torch

    from dormant.bench.zoo import build_organism

    torch.set_num_threads(1)
    specs = order(args.n_test)
    if args.step == "build":
        k, n = (int(x) for x in args.shard.split("/"))
        for i, s in enumerate(specs):
            if i % n == k:
                o = build_organism(s, args.root)
                print(s.name, o.clean_accuracy, o.attack_success_rate, flush=True)
        return
    if args.out is None:
        ap.error("scan needs --out")
    bench = _load(args.bench)
    done = _rows(args.out)
    for s in specs:
        if s.name in done or not (args.root / s.name / "organism.json").exists():
            continue
        row = bench.scan_one(build_organism(s, args.root), "test")
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(s.name, row["probability_shipped"], row["pred_trigger"], flush=True)


if __name__ == "__main__":
    main()
