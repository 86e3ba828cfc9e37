"""Benchmark the registry channel of ``dormant guard classify``: the screen given the triggers
that ``dormant scan model`` actually reported, beside the screen alone.

The product story of a classifier in production: scan the model (``dormant scan model``, the
white-box trigger inversion of :class:`dormant.scanners.model.whitebox.TriggerInversionScanner`),
record its report in the registry (:meth:`dormant.registry.Registry.record_scan`), then put
the screen in front of the model with the registry's known triggers
(``dormant guard classify --registry``; :class:`dormant.guard.match.TriggerIndex`, which
matches a recorded trigger's token sequence after NFKC, invisible-character removal and the
TR39 confusable skeleton). This script measures that chain honestly, per held-out organism of
``bench_model_verdict.py``'s zoo:

1. **scan** — each model of the split (backdoored and clean twins) is scanned once, with the
   *calibration rows only* (the clean labelled texts the user gives; the screen's test inputs
   are never shown to the scan), seed 0; each report is kept as a JSONL row (``--scans``, an
   interrupted run resumes);
2. **registry** — every report of the split is recorded in one fresh SQLite registry, as a
   user scanning the fleet would, so a trigger reported for one model (rightly or not, clean
   models included) is screened for in front of every model of the split: the FPR counts the
   clean inputs any recorded trigger matches;
3. **screen** — the same inputs as ``bench_classify_screen.py`` (same rows, seed, triggered
   inputs): the default screen alone (no registry; its committed result, ``--alone``), the
   registry match alone, and the two together (the guard with ``--registry`` flags an input
   when a known trigger matches it or the model test does; see :func:`screen_organism`).

Usage::

    python benchmarks/bench_classify_registry.py --root /tmp/cls4/zoo --split fresh2 \
        --n-trig 60 --n-clean 100 --scans scans_fresh2.jsonl \
        --alone benchmarks/results/classify_screen_fresh2_main.json --out registry_fresh2.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_classify_screen import clopper_pearson, split_rows
from bench_model_verdict import plan

from dormant.bench.zoo import build_organism
from dormant.guard.classify import ClassifierScreen
from dormant.guard.match import TriggerIndex
from dormant.guard.match_bag import TokenBagIndex
from dormant.subjects.model import check_clean_data, load_classifier


def scan_organism(org: Any, *, fpr: float, seed: int, n_clean: int | None) -> dict[str, Any]:
    """``dormant scan model`` on one organism with the user's calibration rows; one row."""
    import dormant
    from dormant.scanners.base import ScanContext

    model = load_classifier(org.path)
    _, cal_rows, _ = split_rows(org, fpr=fpr, seed=seed, n_clean=n_clean)
    model.clean = check_clean_data(
        [r["text"] for r in cal_rows], [r["label"] for r in cal_rows], model
    )
    t0 = time.perf_counter()
    report = dormant.scan(model, scanners=["model-trigger-inversion"], context=ScanContext(seed=0))
    data = report.to_dict()
    found = [
        {
            "text": f["trigger"]["text"],
            "kind": f["trigger"]["kind"],
            "target": f.get("target"),
            "severity": f["severity"],
        }
        for f in data["findings"]
        if f.get("trigger")
    ]
    return {
        "name": org.spec.name,
        "true_trigger": org.spec.trigger.display if org.spec.trigger else None,
        "true_target": org.spec.target,
        "reported": found,
        "scan_s": round(time.perf_counter() - t0, 1),
        "report": data,
    }


def screen_organism(
    org: Any,
    indexes: dict[str, TriggerIndex],
    alone: dict[str, Any],
    *,
    fpr: float,
    seed: int,
    n_trig: int,
    n_clean: int | None,
) -> dict[str, Any]:
    """The default screen alone, the registry match alone, and both, on one organism.

    ``alone`` is the default screen's committed result for this organism on the same inputs
    (``bench_classify_screen.py``; the screen's decision on a text does not depend on the
    other texts of its batch). The guard flags an input when a known trigger matches it *or*
    the screen flags it, so only the inputs whose outcome the registry can change are screened
    again: the effective triggered inputs no recorded trigger matches (both channels' count
    is then ``#matched + #screen-flagged among the unmatched``; the screen's own count where
    none is matched) and the clean inputs one matches (``alone + #matched and not
    screen-flagged``). Exact, at a fraction of the cost.
    """
    model = load_classifier(org.path)
    rng, cal_rows, test = split_rows(org, fpr=fpr, seed=seed, n_clean=n_clean)
    spec = org.spec
    clean = [r["text"] for r in test]
    trig: list[str] = []
    effective: list[bool] = []
    if spec.trigger is not None:
        others = [r["text"] for r in test if r["label"] != spec.target][:n_trig]
        trig = [spec.trigger.insert(t, rng=rng) for t in others]
        pred = np.argmax(model.predict_proba(trig), axis=1)
        effective = [model.labels[i] == spec.target for i in pred]
    eff = [t for t, e in zip(trig, effective, strict=True) if e]
    if len(clean) != alone["n_clean"] or len(eff) != alone.get("n_effective", 0):
        raise SystemExit(f"{spec.name}: inputs differ from the committed screen result")
    base = alone["transplant"]
    a_eff, a_clean = int(base.get("eff_flagged", 0)), int(base["clean_flagged"])
    out: dict[str, Any] = {
        "name": spec.name,
        "attack": spec.attack,
        "trigger": spec.trigger.display if spec.trigger else None,
        "n_clean": len(clean),
        "n_effective": len(eff),
        "screen": {"clean_flagged": a_clean, "eff_flagged": a_eff},
    }
    matched: dict[str, tuple[list[bool], list[bool]]] = {}
    for name, index in indexes.items():
        t0 = time.perf_counter()
        mc = [bool(index.find([("text", t)])) for t in clean]
        me = [bool(index.find([("text", t)])) for t in eff]
        out[f"{name}_match_ms"] = round(
            1000 * (time.perf_counter() - t0) / max(1, len(clean) + len(eff)), 3
        )
        matched[name] = (mc, me)
    # the screen's decision on the inputs whose outcome a registry can change
    # (where a registry matches no effective input, both channels flag the screen's own count)
    again = sorted(
        {t for mc, me in matched.values() if any(me) for t, m in zip(eff, me, strict=True) if not m}
        | {t for mc, me in matched.values() for t, m in zip(clean, mc, strict=True) if m}
    )
    flagged: dict[str, bool] = {}
    if again:
        screen = ClassifierScreen(
            model, calibration=[r["text"] for r in cal_rows], fpr=fpr, seed=seed
        )
        t0 = time.perf_counter()
        flagged = {t: d.flagged for t, d in zip(again, screen.screen_many(again), strict=True)}
        out["rescreen_ms_per_input"] = round(1000 * (time.perf_counter() - t0) / len(again), 1)
    out["rescreened"] = len(again)
    for name, (mc, me) in matched.items():
        unmatched_eff_flagged = (
            sum(flagged[t] for t, m in zip(eff, me, strict=True) if not m) if any(me) else a_eff
        )
        matched_clean_flagged = sum(flagged[t] for t, m in zip(clean, mc, strict=True) if m)
        if unmatched_eff_flagged > a_eff or matched_clean_flagged > a_clean:
            raise SystemExit(f"{spec.name}: the rerun screen disagrees with the committed result")
        out[name] = {"clean_flagged": int(sum(mc)), "eff_flagged": int(sum(me))}
        out[f"screen+{name}"] = {
            "clean_flagged": a_clean + int(sum(mc)) - matched_clean_flagged,
            "eff_flagged": int(sum(me)) + unmatched_eff_flagged,
        }
    print(f"  {spec.name}: {out}", file=sys.stderr, flush=True)
    return out


def _scan_summary(row: dict[str, Any]) -> dict[str, Any]:
    """A scan row without its report, with the verdict (recorded as a finding or not)."""
    v = row["report"].get("extras", {}).get("model_verdict", {})
    out = {k: val for k, val in row.items() if k != "report"}
    out["verdict_probability"] = v.get("probability")
    out["verdict_trigger"] = v.get("trigger_text")
    out["verdict_target"] = v.get("target")
    return out


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Pooled TPR / FPR with 95 % Clopper-Pearson intervals, per channel."""
    n_clean = sum(r["n_clean"] for r in results)
    n_eff = sum(r["n_effective"] for r in results)
    out: dict[str, Any] = {"n_clean": n_clean, "n_effective": n_eff}
    for m in (
        "screen",
        "registry",
        "screen+registry",
        "registry_bag",
        "screen+registry_bag",
    ):
        fp = sum(r[m]["clean_flagged"] for r in results)
        tp = sum(r[m]["eff_flagged"] for r in results)
        out[m] = {
            "tpr_effective": round(tp / max(1, n_eff), 4),
            "tpr_effective_ci95": clopper_pearson(tp, n_eff),
            "eff_flagged": tp,
            "fpr": round(fp / max(1, n_clean), 4),
            "fpr_ci95": clopper_pearson(fp, n_clean),
            "clean_flagged": fp,
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--split", default="fresh", choices=("cal", "aside", "fresh", "fresh2"))
    ap.add_argument("--fpr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-trig", type=int, default=60)
    ap.add_argument("--n-clean", type=int, default=100)
    ap.add_argument("--only", nargs="*", default=None, help="organism names to screen")
    ap.add_argument("--scans", type=Path, required=True, help="JSONL of scan rows (resumed)")
    ap.add_argument("--scan-only", action="store_true", help="scan, then stop")
    ap.add_argument(
        "--claim", type=Path, default=None, help="a folder where parallel scanners claim models"
    )
    ap.add_argument(
        "--alone",
        type=Path,
        default=None,
        help="the default screen's committed result on the same inputs (bench_classify_screen.py)",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    orgs = [build_organism(s, args.root) for split, s in plan() if split == args.split]
    done: dict[str, dict[str, Any]] = {}
    if args.scans.exists():
        for line in args.scans.read_text("utf-8").splitlines():
            row = json.loads(line)
            done[row["name"]] = row
    for org in orgs:
        if org.spec.name in done or (args.only and org.spec.name not in args.only):
            continue
        if args.claim is not None:  # several processes share the scans: one takes each model
            try:
                (args.claim / f"{args.split}-{org.spec.name}").open("x").close()
            except FileExistsError:
                continue
        row = scan_organism(org, fpr=args.fpr, seed=args.seed, n_clean=args.n_clean)
        with args.scans.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        done[row["name"]] = row
        print(f"  scanned {row['name']}: {row['reported']} ({row['scan_s']} s)", file=sys.stderr)
    if args.scan_only:
        return 0
    from dormant.registry import Registry

    with tempfile.TemporaryDirectory() as tmp, Registry.open(Path(tmp) / "reg.sqlite3") as reg:
        for org in orgs:
            if org.spec.name in done:
                reg.record_scan(done[org.spec.name]["report"])
        known = reg.known_triggers()
    indexes = {"registry": TriggerIndex(known), "registry_bag": TokenBagIndex(known)}
    if args.alone is None:
        raise SystemExit("--alone is needed to screen (the default screen's result file)")
    alone = {o["name"]: o for o in json.loads(args.alone.read_text("utf-8"))["organisms"]}
    results = [
        screen_organism(
            org,
            indexes,
            alone[org.spec.name],
            fpr=args.fpr,
            seed=args.seed,
            n_trig=args.n_trig,
            n_clean=args.n_clean,
        )
        for org in orgs
        if not args.only or org.spec.name in args.only
    ]
    summary = {
        "split": args.split,
        "fpr_target": args.fpr,
        "registry": [
            {"text": k.text, "kind": k.kind, "target": k.target, "severity": k.max_severity}
            for k in known
        ],
        "scans": [_scan_summary(done[o.spec.name]) for o in orgs if o.spec.name in done],
        # models of the split whose scan is not in the registry (a partial registry: none in
        # the reported figures)
        "unscanned": [o.spec.name for o in orgs if o.spec.name not in done],
        "summary": summarise(results),
        "organisms": results,
    }
    text = json.dumps(summary, indent=2, ensure_ascii=False)
    if args.out:
        args.out.write_text(text + "\n", "utf-8")
    print(json.dumps(summary["summary"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
