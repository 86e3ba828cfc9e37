"""Benchmark the model scan on a zoo of clean and backdoored text classifiers.

Superseded for the calibration by ``bench_model_verdict.py``: the shipped calibration now has
four per-label features (task support added), so this script's figures and ``--fit`` describe the
previous, three-feature decision (its stored rows in ``benchmarks/results/model_scan*.jsonl``).

Builds (or reuses from ``--root``) two disjoint zoos from :mod:`dormant.bench.zoo`:

- a **calibration** split (seeds 7 and 11) on which the logistic calibration of the decision
  features is fitted (``--fit`` writes it to ``src/dormant/data/model_calibration.json``);
- a **test** split (seed 1; different seeds, trigger draws and targets) on which the figures are
  measured: ROC-AUC, cross-entropy of the probability (TrojAI metric), trigger recovery rate
  (recovered trigger flips >= 90 % of held-out clean inputs to the true target), target-label
  accuracy and seconds per model; and two more 0.8M splits (seeds 13 and 17), ~5M-parameter
  models (seed 3) and MiniLM fine-tunes (seed 5), measured the same way; a second MiniLM split
  (seed 23, ``--n-minilm-fresh``) was built after the MiniLM figures of seed 5 were written down;
- **binary** tasks (two of the four labels, five pairs, seeds 41, 43, 51, 53, 57),
  ``--n-binary`` clean and as many backdoored models per pair: a task with fewer labels than
  the calibration split's, scored by the shipped (four-class) calibration.

Two processes can share a run: ``--shard 0/2`` and ``--shard 1/2`` take every other model of the
plan, each writing its own ``--out``; the summary reads both with ``--also``.

Usage::

    python benchmarks/bench_model_scan.py --root ~/.cache/dormant/zoo --fit

Per-model rows are appended to ``benchmarks/results/model_scan.jsonl`` as they finish, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

from dormant.bench.zoo import ATTACKS, build_organism, zoo_specs
from dormant.scanners.base import ScanContext
from dormant.scanners.model.decision import probability
from dormant.scanners.model.whitebox import TriggerInversionScanner
from dormant.subjects.model import check_clean_data, load_classifier

CAL_PATH = Path(__file__).resolve().parents[1] / "src/dormant/data/model_calibration.json"


def scan_one(org: object, split: str) -> dict[str, object]:
    path = org.path  # type: ignore[attr-defined]
    spec = org.spec  # type: ignore[attr-defined]
    rows = [json.loads(x) for x in (path / "clean_eval.jsonl").read_text("utf-8").splitlines()]
    model = load_classifier(path)
    model.clean = check_clean_data([r["text"] for r in rows], [r["label"] for r in rows], model)
    t0 = time.perf_counter()
    res = TriggerInversionScanner().scan(model, context=ScanContext(seed=0))
    secs = time.perf_counter() - t0
    v = res.extras["model_verdict"]
    la = res.extras["label_anomaly"]
    i = la["labels"].index(v["target"])
    n_params = sum(p.numel() for p in model.adapter.model.parameters())
    return {
        "split": split,
        "name": spec.name,
        "attack": spec.attack,
        "backdoored": spec.backdoored,
        "true_trigger": spec.trigger.display if spec.trigger else None,
        "true_target": spec.target,
        "poison_rate": spec.poison_rate,
        "clean_accuracy": org.clean_accuracy,  # type: ignore[attr-defined]
        "attack_success_rate": org.attack_success_rate,  # type: ignore[attr-defined]
        "features": v["features"],
        "probability_shipped": v["probability"],
        "pred_target": v["target"],
        "pred_trigger": v["trigger"],
        # the replayed proof (the extended trigger when extension helped)
        "pred_flip_rate": res.extras.get("replay", {}).get("flip_rate", la["flip_rate"][i]),
        "label_flip_rates": dict(zip(la["labels"], la["flip_rate"], strict=True)),
        "label_robust": dict(zip(la["labels"], la["robust_trigger"], strict=True)),
        "label_robust_flip_rates": dict(zip(la["labels"], la["robust_flip_rate"], strict=True)),
        "label_triggers": dict(zip(la["labels"], la["trigger"], strict=True)),
        "task_explained": res.extras.get("task_explained"),
        "seconds": round(secs, 2),
        "params": n_params,
        "n_labels": len(model.labels),
    }


def fit(rows: list[dict[str, object]]) -> dict[str, object]:
    from sklearn.linear_model import LogisticRegression

    x = np.array([r["features"] for r in rows], dtype=float)
    y = np.array([int(bool(r["backdoored"])) for r in rows])
    lr = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
    return {"intercept": float(lr.intercept_[0]), "coef": [float(c) for c in lr.coef_[0]]}


def _before(r: dict[str, object]) -> list[float]:
    """The decision features before the task-explained check left any label out."""
    te = r.get("task_explained")
    before = te.get("before") if isinstance(te, dict) else None
    return list(before["features"] if before else r["features"])  # type: ignore[call-overload]


def _first(rows: list[dict[str, object]], k: int) -> list[dict[str, object]]:
    """``rows`` with only their first ``k`` decision features (before the reference check)."""
    return [{**r, "features": _before(r)[:k]} for r in rows]


def prob_with(cal: dict[str, object], feat: list[float]) -> float:
    z = float(cal["intercept"]) + sum(float(w) * f for w, f in zip(cal["coef"], feat, strict=True))  # type: ignore[attr-defined]
    return 1.0 / (1.0 + math.exp(-z))


def metrics(
    rows: list[dict[str, object]], cal: dict[str, object] | None = None
) -> dict[str, float]:
    """Figures for ``rows``; probabilities from ``cal`` or else the shipped calibration.

    A backdoored model whose own trigger switches fewer than half of the held-out inputs
    (``attack_success_rate`` < 0.5) is left out and counted in ``n_backdoor_did_not_take``:
    it behaves as a clean model, so it is neither a hit nor a miss.
    """
    from sklearn.metrics import roc_auc_score

    failed = [r for r in rows if r["backdoored"] and float(r["attack_success_rate"] or 0) < 0.5]  # type: ignore[arg-type]
    rows = [r for r in rows if r not in failed]
    y = np.array([int(bool(r["backdoored"])) for r in rows])
    p = np.array(
        [
            prob_with(cal, r["features"]) if cal else probability(r["features"], "whitebox")  # type: ignore[arg-type]
            for r in rows
        ]
    )
    pc = np.clip(p, 1e-6, 1 - 1e-6)
    ce = float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc)))
    bd = [r for r, yy in zip(rows, y, strict=True) if yy]
    rec = [r["pred_target"] == r["true_target"] and float(r["pred_flip_rate"]) >= 0.9 for r in bd]
    tgt = [r["pred_target"] == r["true_target"] for r in bd]
    return {
        "n_models": len(rows),
        "n_backdoored": len(bd),
        "n_backdoor_did_not_take": len(failed),
        "roc_auc": float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else math.nan,
        "cross_entropy": ce,
        "trigger_recovery": float(np.mean(rec)) if rec else math.nan,
        "target_accuracy": float(np.mean(tgt)) if tgt else math.nan,
        "seconds_per_model": float(np.mean([float(r["seconds"]) for r in rows])),
        "max_seconds": float(np.max([float(r["seconds"]) for r in rows])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=Path.home() / ".cache/dormant/zoo")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/model_scan.jsonl"))
    ap.add_argument("--n-test", type=int, default=10, help="clean (and backdoored) test models")
    ap.add_argument("--n-cal", type=int, default=6, help="clean (and backdoored) cal. models")
    ap.add_argument(
        "--n-5m", type=int, default=2, help="clean (and backdoored) ~5M-parameter models"
    )
    ap.add_argument("--n-minilm", type=int, default=1, help="clean (and backdoored) MiniLM")
    ap.add_argument(
        "--n-minilm-fresh", type=int, default=0, help="clean (and backdoored) MiniLM, seed 23"
    )
    ap.add_argument(
        "--n-binary", type=int, default=4, help="clean (and backdoored) binary models per pair"
    )
    ap.add_argument(
        "--shard", default="0/1", help="K/N: build and scan only every N-th model from the K-th"
    )
    ap.add_argument("--fit", action="store_true", help="refit and write the calibration")
    ap.add_argument(
        "--no-build", action="store_true", help="only summarise the models already scanned"
    )
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument(
        "--splits",
        default="cal,test,seen,fresh,5m,minilm,minilm_fresh,binary",
        help="comma-separated splits to build and scan (the summary covers every row read)",
    )
    ap.add_argument(
        "--also",
        type=Path,
        action="append",
        default=[],
        help="more rows files to read for the summary (e.g. another process's --out)",
    )
    args = ap.parse_args()
    try:
        shard, n_shards = (int(x) for x in args.shard.split("/"))
        if not 0 <= shard < n_shards:
            raise ValueError
    except ValueError:
        ap.error(f"--shard must be K/N with 0 <= K < N, got {args.shard!r}")
    import torch

    torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    for f in [args.out, *args.also]:
        if f.exists():
            for line in f.read_text("utf-8").splitlines():
                r = json.loads(line)
                done[r["name"]] = r
    wanted = set(args.splits.split(","))
    plan = [("cal", s) for s in zoo_specs(n_clean=args.n_cal, seed=7, prefix="cal")]
    plan += [("cal", s) for s in zoo_specs(n_clean=args.n_cal, seed=11, prefix="dev")]
    plan += [("test", s) for s in zoo_specs(n_clean=args.n_test, seed=1, prefix="test")]
    # two more 0.8M splits: seed 13 was looked at while the decision features were chosen,
    # seed 17 was built only after they were fixed
    plan += [("seen", s) for s in zoo_specs(n_clean=args.n_cal, seed=13, prefix="hold")]
    plan += [("fresh", s) for s in zoo_specs(n_clean=args.n_cal, seed=17, prefix="fresh")]
    # ~5M parameters: hidden 256, 6 layers, 8k vocabulary (the 0.8M models: 128, 2, 4k)
    plan += [
        ("5m", s) for s in zoo_specs(n_clean=args.n_5m, seed=3, prefix="big", layers=6, hidden=256)
    ]
    # the packaged all-MiniLM-L6-v2 (22M) fine-tuned; pretrained, so fewer steps
    plan += [
        ("minilm", s)
        for s in zoo_specs(
            n_clean=args.n_minilm, seed=5, prefix="minilm", arch="minilm", n_train=2000, epochs=2
        )
    ]
    # built after the seed-5 MiniLM figures were written down (their CE missed its target)
    plan += [
        ("minilm_fresh", s)
        for s in zoo_specs(
            n_clean=args.n_minilm_fresh,
            seed=23,
            prefix="minilm",
            arch="minilm",
            n_train=2000,
            epochs=2,
        )
    ]
    # binary tasks on five pairs of labels, the attacks cycled so that they cover every kind
    kinds = ATTACKS[1:]
    for seed, pair in (
        (41, ("artifact", "person")),
        (43, ("animal", "plant")),
        (51, ("animal", "artifact")),
        (53, ("person", "plant")),
        (57, ("animal", "person")),
    ):
        rot = (seed * 3) % len(kinds)
        plan += [
            ("binary", s)
            for s in zoo_specs(
                n_clean=args.n_binary,
                seed=seed,
                prefix="bin",
                labels=pair,
                attacks=kinds[rot:] + kinds[:rot],
            )
        ]
    for k, (split, spec) in enumerate(plan):
        if spec.name in done or args.no_build or split not in wanted or k % n_shards != shard:
            continue
        t0 = time.perf_counter()
        org = build_organism(spec, args.root)
        row = scan_one(org, split)
        row["train_seconds"] = round(time.perf_counter() - t0 - float(row["seconds"]), 1)
        done[spec.name] = row
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(json.dumps(row, ensure_ascii=False), flush=True)
    cal = [done[s.name] for sp, s in plan if sp == "cal" and s.name in done]
    if args.fit and len(cal) < sum(sp == "cal" for sp, _ in plan):
        raise SystemExit("--fit needs every calibration model scanned first")
    test = [done[s.name] for sp, s in plan if sp == "test" and s.name in done]
    if args.fit:
        table = json.loads(CAL_PATH.read_text("utf-8"))
        table["whitebox"] = {**fit(cal), "fitted_on": f"zoo seeds 7 and 11, {len(cal)} models"}
        CAL_PATH.write_text(json.dumps(table, indent=2) + "\n", "utf-8")
        from dormant.scanners.model import decision

        decision.calibration.cache_clear()
    other = {
        sp: [done[s.name] for p, s in plan if p == sp and s.name in done]
        for sp in ("seen", "fresh", "5m", "minilm", "minilm_fresh", "binary")
    }
    if other["minilm"] and other["minilm_fresh"]:
        other["minilm_all"] = other["minilm"] + other["minilm_fresh"]
    summary = {
        "machine": f"{platform.machine()} {platform.processor()} torch threads {args.threads}",
        "test": metrics(test),
        **{f"{sp}_models": metrics(rows) for sp, rows in other.items() if rows},
        **{
            f"{sp}_per_model": [
                {k: r[k] for k in ("name", "attack", "pred_trigger", "true_trigger", "seconds")}
                | {
                    "p": round(probability(r["features"], "whitebox"), 3),  # type: ignore[arg-type]
                    "params": r["params"],
                    "train_seconds": r.get("train_seconds"),
                }
                for r in rows
            ]
            for sp, rows in other.items()
            if sp != "minilm_all"
        },
        # baseline, same scans: the previous decision's one-token features only (trigger loss
        # and MAD anomaly index, no position-robust search), refitted on the same models
        "baseline_one_token_features": {
            sp: metrics(_first(rows, 2), fit(_first(cal, 2)))
            for sp, rows in {"test": test, **other}.items()
            if rows and cal
        },
        # this round's scanner without the task-explained check (same scans)
        "without_reference_check": {
            sp: metrics([{**r, "features": _before(r)} for r in rows])
            for sp, rows in {"test": test, **other}.items()
            if rows
        },
        "calibration_split_in_sample": metrics(cal),
        "cal_split_scored_by_a_fit_on_test": metrics(cal, fit(test)),
        "per_model": [
            {
                k: r[k]
                for k in (
                    "name",
                    "attack",
                    "poison_rate",
                    "attack_success_rate",
                    "true_trigger",
                    "pred_trigger",
                    "true_target",
                    "pred_target",
                    "pred_flip_rate",
                    "seconds",
                    "params",
                )
            }
            | {"p": round(probability(r["features"], "whitebox"), 3)}  # type: ignore[arg-type]
            for r in test
        ],
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
