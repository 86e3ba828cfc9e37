"""Benchmark ``dormant guard classify``: TPR on triggered inputs and FPR on clean ones.

The organisms are the model-verdict zoo of ``bench_model_verdict.py`` (tiny BERT classifiers
trained from scratch with planted triggers of several kinds, and clean twins): the screen was
developed on its ``cal`` split (WordNet glosses and Debian package descriptions) and is reported
on its ``aside`` split (dictionary definitions of FOLDOC / GCIDE / the Jargon File, other seeds
and other triggers), which it never saw while it was written; then on the ``fresh`` and
``fresh2`` splits, each built before the change it measured (``--representation``: the
opt-in penultimate-feature signal; the run also records each decision without it).

Per organism, its held-out clean examples are shuffled; 60 % are the calibration texts the
user would give (the screen splits them into reference and calibration halves), the rest are
the clean test inputs. Triggered inputs are the test inputs of other classes than the target
with the organism's own trigger inserted; "effective" ones are those the model then labels
with the target (the inputs the guard must stop). No registry is used here: the screen given
the triggers a model scan actually recorded is measured by ``bench_classify_registry.py``.

Methods, each a :class:`dormant.guard.classify.ClassifierScreen` at ``--fpr``:

- ``transplant`` (the default screen) — with the character signals, and its model test alone;
- ``strip`` — STRIP's perturbation entropy (Gao et al. 2019/2021), conformally calibrated;
- ``onion`` — ONION (Qi et al. 2021) with a bigram LM on the reference texts (no GPT-2 here).

Usage::

    python benchmarks/bench_classify_screen.py --root /tmp/vzoo --split aside --out result.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model_verdict import plan

from dormant.bench.zoo import build_organism
from dormant.guard._classify_scores import COLUMNS
from dormant.guard.classify import ClassifierScreen
from dormant.subjects.model import load_classifier

METHODS = ("transplant", "strip", "onion")


def run_organism(
    org: Any,
    *,
    fpr: float,
    seed: int,
    n_trig: int,
    n_clean: int | None = None,
    n_latency: int = 0,
    methods: tuple[str, ...] = METHODS,
    read_window: bool = False,
    representation: bool = False,
    additive: bool = False,
    calibrate_all: bool = False,
    symbol_support: bool = False,
    before: bool = False,
    long_spans: bool = False,
    long_only: bool = False,
    necessity: bool = False,
    quartile: bool = False,
    flips: bool = False,
) -> dict[str, Any]:
    model = load_classifier(org.path)
    rng, cal_rows, test = split_rows(org, fpr=fpr, seed=seed, n_clean=n_clean)
    cal = [r["text"] for r in cal_rows]
    spec = org.spec
    out: dict[str, Any] = {
        "name": spec.name,
        "attack": spec.attack,
        "corpus": spec.corpus,
        "trigger": spec.trigger.display if spec.trigger else None,
        "n_calibration": len(cal),
        "n_clean": len(test),
        "read_window": read_window,
        "representation": representation,
        "additive_support": additive,
        "calibrate_all": calibrate_all,
        "symbol_support": symbol_support,
        "before": before,
    }
    trig: list[str] = []
    effective: list[bool] = []
    if spec.trigger is not None:
        others = [r["text"] for r in test if r["label"] != spec.target][:n_trig]
        trig = [spec.trigger.insert(t, rng=rng) for t in others]
        pred = np.argmax(model.predict_proba(trig), axis=1)
        effective = [model.labels[i] == spec.target for i in pred]
        out["n_triggered"] = len(trig)
        out["n_effective"] = int(sum(effective))
    clean = [r["text"] for r in test]
    # with long_spans, the transplant test runs twice in this process: without and with it
    runs = [(m, False) for m in methods if not (long_only and m == "transplant")]
    if long_spans and "transplant" in methods:
        runs.append(("transplant", True))
    # with quartile, once more with ClassifierScreen(quartile=True) (its columns recorded)
    if quartile and "transplant" in methods:
        runs.append(("transplant", "quartile"))
    # with flips, once more with ClassifierScreen(flips=True) (its columns recorded)
    if flips and "transplant" in methods:
        runs.append(("transplant", "flips"))
    for method, long_run in runs:
        q_run = long_run == "quartile"
        f_run = long_run == "flips"
        long_run = long_run is True
        key = method + (
            "_long" if long_run else "_quartile" if q_run else "_flips" if f_run else ""
        )
        t0 = time.perf_counter()
        screen = ClassifierScreen(
            model,
            calibration=cal,
            fpr=fpr,
            method=method,
            seed=seed,
            read_window=read_window,
            # passed only when set, so that the script also runs the code before the option
            **({"representation": True} if representation else {}),
            **({"additive_support": True} if additive else {}),
            **({"calibrate_all": True} if calibrate_all and method == "transplant" else {}),
            **({"symbol_support": True} if symbol_support and method == "transplant" else {}),
            # the screen before symbol_support and calibrate_all were its default
            **({"calibrate_all": False, "symbol_support": False} if before else {}),
            **({"long_spans": True} if long_run else {}),
            **({"necessity": True} if necessity and method == "transplant" else {}),
            **({"quartile": True} if q_run else {}),
            **({"flips": True} if f_run else {}),
        )
        rec = _record_columns(screen) if long_run or q_run or f_run else None
        t_cal = time.perf_counter() - t0
        t0 = time.perf_counter()
        dc = screen.screen_many(clean)
        t_clean = (time.perf_counter() - t0) / max(1, len(clean))
        res: dict[str, Any] = {
            "calibrate_s": round(t_cal, 2),
            "latency_ms": round(1000 * t_clean, 1),
            "clean_flagged": int(sum(d.flagged for d in dc)),
            "clean_flagged_model": int(sum(_model_test(d) for d in dc)),
        }
        if representation:
            # the same screen's decision without the representation signal (the default
            # screen: its behaviour score and calibration are computed the same way)
            res["clean_flagged_without_rep"] = int(sum(_without_rep(screen, d) for d in dc))
        if calibrate_all and method == "transplant":
            # the same screen's decision against the calibration half alone: the default
            # screen (its scores of the inputs and of that half are computed the same way)
            half = _half_scores(screen)
            res["n_calibration_scores"] = len(screen.calibration_scores_)
            res["n_calibration_scores_half"] = len(half)
            res["clean_flagged_half"] = int(sum(_on_half(screen, half, d) for d in dc))
            res["clean_flagged_model_half"] = int(sum(_on_half(screen, half, d, 1) for d in dc))
        if n_latency:
            # the same inputs one call at a time (no batching across inputs), for comparison
            t0 = time.perf_counter()
            for t in clean[:n_latency]:
                screen.screen(t)
            res["latency_ms_one_by_one"] = round(
                1000 * (time.perf_counter() - t0) / max(1, len(clean[:n_latency])), 1
            )
        if trig:
            dt = screen.screen_many(trig)
            eff = [d for d, e in zip(dt, effective, strict=True) if e]
            res["trig_flagged"] = int(sum(d.flagged for d in dt))
            res["eff_flagged"] = int(sum(d.flagged for d in eff))
            res["eff_flagged_model"] = int(sum(_model_test(d) for d in eff))
            if representation:
                res["eff_flagged_without_rep"] = int(sum(_without_rep(screen, d) for d in eff))
            if calibrate_all and method == "transplant":
                res["eff_flagged_half"] = int(sum(_on_half(screen, half, d) for d in eff))
                res["eff_flagged_model_half"] = int(sum(_on_half(screen, half, d, 1) for d in eff))
        if rec is not None:
            # every transplant score of every text (calibration, clean, triggered), so that
            # the default's decision (the ``short`` column) and other combinations of the
            # same evidence can be read from this one run
            n_c = len(clean)
            res["columns"] = {
                "names": list(COLUMNS),
                "used": list(screen.columns_),
                "calibration": _rounded(screen.calibration_columns_.tolist()),
                "clean": _rounded(rec[:n_c]),
                "triggered": _rounded(rec[n_c:]),
                "effective": effective,
                # flagged by a signal other than the model test (character signals)
                "clean_other": [_other(d) for d in dc],
                "triggered_other": [_other(d) for d in dt] if trig else [],
            }
        out[key] = res
        brief = {k: v for k, v in res.items() if k != "columns"}
        print(f"  {spec.name} {key}: {brief}", file=sys.stderr, flush=True)
    return out


def _record_columns(screen: Any) -> list[list[float]]:
    """A list that receives the :data:`COLUMNS` scores of every input the screen scores
    from now on, in order (the screen's own scoring, wrapped; nothing is scored twice)."""
    rec: list[list[float]] = []
    inner = screen._scores

    def scores(texts: list[str], **kw: Any) -> Any:
        out = inner(texts, **kw)
        rec.extend(list(c) for c in out[2])
        return out

    screen._scores = scores
    return rec


def _rounded(rows: list[list[float]]) -> list[list[float | None]]:
    """Rows of scores for JSON (``-inf``, a span column with no span, as ``None``)."""
    return [[round(x, 5) if math.isfinite(x) else None for x in r] for r in rows]


def split_rows(
    org: Any, *, fpr: float, seed: int, n_clean: int | None
) -> tuple[random.Random, list[dict[str, Any]], list[dict[str, Any]]]:
    """The user's calibration rows and the clean test rows of one organism, and the rng that
    then inserts the triggers (so every script that uses it screens the same inputs)."""
    rows = [json.loads(x) for x in org.eval_path.read_text("utf-8").splitlines()]
    rng = random.Random(seed)
    rng.shuffle(rows)
    # 60 % calibration texts, and never fewer distinct ones than the screen needs at this
    # fpr (a small held-out set with repeated texts, e.g. the manual-page task's 300)
    k, need = int(0.6 * len(rows)), 2 * math.ceil(1 / fpr) + 2
    while k < len(rows) and len({r["text"] for r in rows[:k]}) < need:
        k += 1
    return rng, rows[:k], rows[k:][:n_clean]


def _other(d: Any) -> bool:
    """Whether a signal other than the model-behaviour test flagged decision ``d``."""
    return any(" test: p=" not in r and not r.startswith("no trigger") for r in d.reasons)


def _model_test(d: Any) -> bool:
    return any(" test: p=" in r for r in d.reasons)


def _without_rep(screen: Any, d: Any) -> bool:
    """Whether the screen flags ``d`` on its other signals and its behaviour score alone."""
    other = [r for r in d.reasons if " test: p=" not in r and not r.startswith("no trigger")]
    return bool(other) or (d.score is not None and screen.p_value(d.score) <= screen.fpr)


def _half_scores(screen: Any) -> np.ndarray:
    """The calibration scores of the calibration half (all of them less the donors')."""
    from collections import Counter

    left = Counter(screen.calibration_scores_.tolist()) - Counter(screen.donor_scores_.tolist())
    return np.sort(np.array(list(left.elements()), dtype=float))


def _on_half(screen: Any, half: np.ndarray, d: Any, model_only: int = 0) -> bool:
    """Whether the default screen (calibration half only) flags the input of decision ``d``."""
    other = [r for r in d.reasons if " test: p=" not in r and not r.startswith("no trigger")]
    if other and not model_only:
        return True
    if d.score is None:
        return bool(d.flagged)
    n_ge = len(half) - int(np.searchsorted(half, d.score, side="left"))
    return (1 + n_ge) / (len(half) + 1) <= screen.fpr


def wilson(k: int, n: int) -> list[float]:
    """The Wilson score 95 % interval of a binomial rate ``k / n`` (Wilson 1927)."""
    from scipy.stats import binomtest

    if n == 0:
        return [0.0, 1.0]
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(float(ci.low), 4), round(float(ci.high), 4)]


def clopper_pearson(k: int, n: int) -> list[float]:
    """The exact (Clopper-Pearson) 95 % interval of a binomial rate ``k / n``."""
    from scipy.stats import binomtest

    if n == 0:
        return [0.0, 1.0]
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return [round(float(ci.low), 4), round(float(ci.high), 4)]


def _one_by_one(results: list[dict[str, Any]], m: str) -> list[float]:
    return [r[m]["latency_ms_one_by_one"] for r in results if "latency_ms_one_by_one" in r[m]]


def _without_rep_rates(
    results: list[dict[str, Any]], m: str, n_clean: int, n_eff: int
) -> dict[str, Any]:
    if not all("clean_flagged_without_rep" in r[m] for r in results):
        return {}
    fp = sum(r[m]["clean_flagged_without_rep"] for r in results)
    tp = sum(r[m].get("eff_flagged_without_rep", 0) for r in results)
    return {
        "fpr_without_rep": fp / n_clean,
        "fpr_without_rep_ci95": clopper_pearson(fp, n_clean),
        "tpr_effective_without_rep": tp / max(1, n_eff),
        "tpr_effective_without_rep_ci95": clopper_pearson(tp, n_eff),
    }


def _half_rates(results: list[dict[str, Any]], m: str, n_clean: int, n_eff: int) -> dict[str, Any]:
    if not all("clean_flagged_half" in r[m] for r in results):
        return {}
    fp = sum(r[m]["clean_flagged_half"] for r in results)
    tp = sum(r[m].get("eff_flagged_half", 0) for r in results)
    return {
        "fpr_half": fp / n_clean,
        "fpr_half_wilson95": wilson(fp, n_clean),
        "tpr_effective_half": tp / max(1, n_eff),
        "tpr_effective_half_wilson95": wilson(tp, n_eff),
    }


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in [
        x
        for x in (*METHODS, "transplant_long", "transplant_quartile", "transplant_flips")
        if all(x in r for r in results)
    ]:
        n_clean = sum(r["n_clean"] for r in results)
        n_eff = sum(r.get("n_effective", 0) for r in results)
        n_trig = sum(r.get("n_triggered", 0) for r in results)
        s = {
            "fpr": sum(r[m]["clean_flagged"] for r in results) / n_clean,
            "fpr_model": sum(r[m]["clean_flagged_model"] for r in results) / n_clean,
            "tpr_effective": sum(r[m].get("eff_flagged", 0) for r in results) / max(1, n_eff),
            "tpr_effective_model": sum(r[m].get("eff_flagged_model", 0) for r in results)
            / max(1, n_eff),
            "tpr_all_triggered": sum(r[m].get("trig_flagged", 0) for r in results) / max(1, n_trig),
            "latency_ms_median": float(np.median([r[m]["latency_ms"] for r in results])),
            "latency_ms_one_by_one_median": (
                float(np.median(one)) if (one := _one_by_one(results, m)) else None
            ),
            "fpr_ci95": clopper_pearson(sum(r[m]["clean_flagged"] for r in results), n_clean),
            "fpr_model_ci95": clopper_pearson(
                sum(r[m]["clean_flagged_model"] for r in results), n_clean
            ),
            "tpr_effective_ci95": clopper_pearson(
                sum(r[m].get("eff_flagged", 0) for r in results), n_eff
            ),
            **_without_rep_rates(results, m, n_clean, n_eff),
            **_half_rates(results, m, n_clean, n_eff),
            "fpr_wilson95": wilson(sum(r[m]["clean_flagged"] for r in results), n_clean),
            "tpr_effective_wilson95": wilson(
                sum(r[m].get("eff_flagged", 0) for r in results), n_eff
            ),
            "n_clean": n_clean,
            "n_effective": n_eff,
            "n_triggered": n_trig,
        }
        out[m] = {k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path.home() / ".cache/dormant/zoo")
    ap.add_argument(
        "--split",
        default="aside",
        choices=(
            "cal",
            "aside",
            "fresh",
            "fresh2",
            "fresh3",
            "fresh4",
            "fresh5",
            "fresh6",
            "fresh7",
        ),
    )
    ap.add_argument("--fpr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-trig", type=int, default=120)
    ap.add_argument("--n-clean", type=int, default=None, help="clean test inputs per organism")
    ap.add_argument("--only", nargs="*", default=None, help="organism names to run")
    ap.add_argument(
        "--methods", nargs="+", default=list(METHODS), choices=METHODS, help="screens to run"
    )
    ap.add_argument(
        "--latency-n",
        type=int,
        default=0,
        help="also time this many clean inputs screened one call at a time (unbatched)",
    )
    win = ap.add_mutually_exclusive_group()
    win.add_argument(
        "--read-window",
        dest="read_window",
        action="store_true",
        help="ClassifierScreen(read_window=True): insert transplanted spans only where the "
        "model reads them",
    )
    win.add_argument(
        "--no-read-window",
        dest="read_window",
        action="store_false",
        help="insert them anywhere (the default)",
    )
    ap.add_argument(
        "--representation",
        action="store_true",
        help="ClassifierScreen(representation=True): join the penultimate-feature signal",
    )
    ap.add_argument(
        "--additive-support",
        action="store_true",
        help="ClassifierScreen(additive_support=True): the clean support of a span sums its "
        "words' lifts",
    )
    ap.add_argument(
        "--calibrate-all",
        action="store_true",
        help="ClassifierScreen(calibrate_all=True) for the transplant screen: every clean text "
        "is a calibration text; the run also records the default screen's decisions (the "
        "calibration half alone)",
    )
    ap.add_argument(
        "--symbol-support",
        action="store_true",
        help="ClassifierScreen(symbol_support=True): the clean support also counts each "
        "symbol character as a word",
    )
    ap.add_argument(
        "--before",
        action="store_true",
        help="the screen as it was before symbol_support and calibrate_all became its default "
        "(both False; the main branch's default before issue 18's fresh4 run)",
    )
    ap.add_argument(
        "--long-spans",
        action="store_true",
        help="also run the transplant screen with ClassifierScreen(long_spans=True) in the "
        "same process (key 'transplant_long'): the best window of 4, 6 and 8 words is one "
        "more candidate span",
    )
    ap.add_argument(
        "--long-only",
        action="store_true",
        help="with --long-spans: run only the long_spans screen (its 'short' column is the "
        "default's score of the same evidence)",
    )
    ap.add_argument(
        "--necessity",
        action="store_true",
        help="the transplant screens also join the leave-one-out fall (necessity) into their "
        "p-value",
    )
    ap.add_argument(
        "--quartile",
        action="store_true",
        help="also run the transplant screen with ClassifierScreen(quartile=True) in the same "
        "process, on the same inputs (every score column recorded)",
    )
    ap.add_argument(
        "--flips",
        action="store_true",
        help="also run the transplant screen with ClassifierScreen(flips=True) in the same "
        "process, on the same inputs (every score column recorded)",
    )
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--merge", nargs="+", type=Path, default=None, help="summarise these result files"
    )
    args = ap.parse_args()
    if args.merge:
        parts = [json.loads(f.read_text("utf-8")) for f in args.merge]
        results = [r for part in parts for r in part["organisms"]]
        merged = {"split": parts[0]["split"], "fpr_target": parts[0]["fpr_target"]}
        merged["summary"] = summarise(results)
        merged["organisms"] = results
        if args.out:
            args.out.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n", "utf-8")
        print(json.dumps(merged["summary"], indent=2))
        return 0
    import torch

    torch.set_num_threads(1)
    results = []
    for split, spec in plan():
        if split != args.split or (args.only and spec.name not in args.only):
            continue
        org = build_organism(spec, args.root)
        results.append(
            run_organism(
                org,
                fpr=args.fpr,
                seed=args.seed,
                n_trig=args.n_trig,
                n_clean=args.n_clean,
                n_latency=args.latency_n,
                methods=tuple(args.methods),
                read_window=args.read_window,
                representation=args.representation,
                additive=args.additive_support,
                calibrate_all=args.calibrate_all,
                symbol_support=args.symbol_support,
                before=args.before,
                long_spans=args.long_spans,
                long_only=args.long_only,
                necessity=args.necessity,
                quartile=args.quartile,
                flips=args.flips,
            )
        )
    summary = {"split": args.split, "fpr_target": args.fpr, "summary": summarise(results)}
    summary["organisms"] = results
    text = json.dumps(summary, indent=2, ensure_ascii=False)
    if args.out:
        args.out.write_text(text + "\n", "utf-8")
    print(json.dumps(summary["summary"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
