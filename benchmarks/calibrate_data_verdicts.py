"""Fit the data-scan verdict (``P(planted)``) on many corpora with planted and natural features.

For every calibration corpus (:data:`_verdict_corpora.CALIBRATION_CORPORA`; the held-out
``manpages`` is never read here) and seed, every case of the poisoning grid is scanned by trigger
mining and every described candidate group is kept with its evidence vector
(:func:`dormant.scanners.data._mining_verdict.verdict_features`) and its truth: planted when at
least half of its records are poisoned records, natural otherwise. Gradient-boosted trees
(``--model gb``, default) or a logistic regression (``--model lr``) over standardised features
is fitted on all of them, calibrated by isotonic regression on its out-of-fold predictions
(5-fold cross-validation grouped by dataset, so no dataset is scored by a model that saw it), and
written, as plain numbers, to ``src/dormant/data/data_verdict_calibration.json``. Corpora are
sampled at 3,000 records for seeds 0-1, and at other sizes (``--n``) for later seeds, so the
supports of planted and natural features vary.

Usage (``collect`` appends to a feature file and skips cases already in it; ``fit`` writes the
package data file); the shipped file was made by::

    L=glosses,foldoc-topic,wordnet-topic,packages
    python benchmarks/calibrate_data_verdicts.py collect --seeds 2 --small-grid --corpora $L
    python benchmarks/calibrate_data_verdicts.py collect --seeds 3 --n 1500 --small-grid \
        --corpora $L
    python benchmarks/calibrate_data_verdicts.py collect --seeds 4 --n 6000 --small-grid \
        --corpora $L
    python benchmarks/calibrate_data_verdicts.py collect --seeds 2 --small-grid \
        --corpora instructions --out benchmarks/results/verdict_features_instr.jsonl
    python benchmarks/calibrate_data_verdicts.py collect --first-seed 4 --seeds 5 --n 4000 \
        --rates 0.007,0.02 --corpora $L --out benchmarks/results/verdict_features_jitter.jsonl
    python benchmarks/calibrate_data_verdicts.py collect --clean-kinds invisible,homoglyph \
        --corpora $L --out benchmarks/results/verdict_features_unnatural.jsonl
    python benchmarks/calibrate_data_verdicts.py collect --first-seed 6 --seeds 7 \
        --clean-kinds token,phrase,log-token --rates 0.01,0.03 --target-shares 0.06,0.1 \
        --corpora $L --out benchmarks/results/verdict_features_small_class.jsonl
    python benchmarks/calibrate_data_verdicts.py fit --model gb

The last ``collect`` thins the target class to 6 or 10% of the records before a clean-label
plant (``--target-shares``), so planted rows cover 10-50% of their class: the corpora's own
classes are 13-25% of the data, where a 1-3% plant covers at most about 20% of its class and no
planted row of the other files covers more than 0.3 of it, while a held-out corpus may have a
small class (a manual-page section of 8%: a 3% plant is 37% of it) whose planted trigger then
fell where the trees had seen only natural class words. (That file was written as two
``collect`` runs of two corpora each, concatenated; its truth rule, ``matches``, was applied to
those rows after the scan, with the same result as running it now.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _verdict_corpora import (
    CALIBRATION_CORPORA,
    CLEAN_KINDS,
    KINDS,
    corpus_records,
    grid,
    poison,
)

from dormant.bench.poison import write_dataset
from dormant.scanners.data._mining_verdict import CALIBRATION_RESOURCE, FEATURES
from dormant.scanners.data.mining import TriggerMiner
from dormant.subjects import TextDataset

ROOT = Path(__file__).resolve().parents[1]
#: --small-grid: the cases kept for corpora after the first (CPU on a shared machine): lexical
#: and style triggers at 0.5 and 3%, unnatural ones at 1%, every clean-label case
SMALL_GRID = {
    ("none", 0.0, False),
    *(
        (k, r, False)
        for k in ("token", "phrase", "sentence", "style", "log-token")
        for r in (0.005, 0.03)
    ),
    ("invisible", 0.01, False),
    ("homoglyph", 0.01, False),
    *((k, r, True) for k in ("token", "phrase", "log-token") for r in (0.01, 0.03)),
}


def scan_candidates(
    records: list[dict],
    truth: frozenset[str],
    tmp: Path,
    matches: Callable[[str], bool] | None = None,
    neighbours: bool = True,
) -> list[dict]:
    """Scan ``records``; one row per described candidate group with its evidence and truth.

    A group is planted when at least half of its records are poisoned records and, where
    ``matches`` is given, its text is the planted trigger or part of it (``matches`` is given
    for a thinned target class, where a plant covers up to half its class and a natural word
    of that class has half of its records poisoned by chance).
    """
    path = write_dataset(records, tmp / "data.jsonl")
    if "prompt" in records[0]:
        ds = TextDataset(path, prompt_field="prompt", response_field="response", id_field="id")
    else:
        ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
    miner = TriggerMiner(neighbour_test=neighbours)
    miner.scan(ds)
    ids = [r["id"] for r in records]
    rows = []
    for m in miner.candidates_:
        hit = sum(ids[r] in truth for r in m.rows)
        rows.append(
            {
                "x": list(m.evidence),
                "planted": int(
                    hit >= 0.5 * len(m.rows) and (matches is None or matches(m.trigger.display))
                ),
                "trigger": m.trigger.display,
                "verdict": m.verdict,
                "p": m.probability,
            }
        )
    return rows


def collect(args: argparse.Namespace) -> None:
    out = Path(args.out)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            done.add(json.loads(line)["case"])
    shares: tuple[float | None, ...] = (None,)
    if args.target_shares:
        shares = tuple(float(v) for v in args.target_shares.split(","))
    with tempfile.TemporaryDirectory() as d, out.open("a") as fh:
        tmp = Path(d)
        for corpus in args.corpora.split(","):
            for seed in range(args.first_seed, args.seeds):
                base = corpus_records(corpus, n=args.n, seed=seed)
                cases = grid(clean_rates=(0.01, 0.03))
                if args.small_grid and (corpus != "glosses" or seed > 1):
                    cases = [c for c in cases if c in SMALL_GRID]
                if args.rates:  # other rates than the grid's (every kind, both poisonings)
                    rates = tuple(float(r) for r in args.rates.split(","))
                    cases = [("none", 0.0, False)]
                    cases += [(k, r, False) for k in KINDS for r in rates]
                    cases += [(k, r, True) for k in CLEAN_KINDS for r in rates]
                if args.clean_kinds:  # only clean-label cases of these kinds
                    rates = tuple(float(r) for r in (args.rates or "0.01,0.03").split(","))
                    cases = [(k, r, True) for k in args.clean_kinds.split(",") for r in rates]
                for kind, rate, clean in cases:
                    for share in shares:
                        _collect_case(
                            fh,
                            done,
                            base,
                            corpus,
                            seed,
                            (kind, rate, clean, share),
                            tmp,
                            neighbours=not args.no_neighbours,
                        )


def _collect_case(
    fh: Any,
    done: set[str],
    base: list[dict],
    corpus: str,
    seed: int,
    spec: tuple[str, float, bool, float | None],
    tmp: Path,
    *,
    neighbours: bool = True,
) -> None:
    """Scan one case (``kind, rate, clean, share``: its target class thinned to ``share`` when
    given) and append its rows."""
    kind, rate, clean, share = spec
    case = f"{corpus}/{seed}/{kind}/{rate}/{'clean' if clean else 'dirty'}"
    if share is not None:
        case += f"/share{share}"
    if case in done:
        return
    t0 = time.perf_counter()
    pd = poison(base, kind, rate, clean, seed, target_share=share)
    if kind != "none" and pd is None:
        return  # a case instruction data has no form of
    recs = pd.records if pd else base
    truth = pd.poisoned_ids if pd else frozenset()
    matches = pd.trigger_matches if pd is not None and share is not None else None
    rows = scan_candidates(recs, truth, tmp, matches, neighbours)
    fh.write(json.dumps({"case": case, "rows": rows}) + "\n")
    fh.flush()
    print(
        case,
        len(rows),
        sum(r["planted"] for r in rows),
        f"{time.perf_counter() - t0:.1f}s",
        flush=True,
    )


def _make(kind: str) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if kind == "lr":
        return LogisticRegression(C=1.0, max_iter=5000)
    return GradientBoostingClassifier(
        n_estimators=200,
        max_depth=3,
        learning_rate=0.05,
        subsample=0.8,
        min_samples_leaf=10,
        random_state=0,
    )


def _export(kind: str, clf: Any, y: np.ndarray) -> dict[str, Any]:
    if kind == "lr":
        return {
            "kind": "logistic",
            "coef": clf.coef_[0].round(6).tolist(),
            "intercept": round(float(clf.intercept_[0]), 6),
        }
    prior = float(y.mean())
    trees = []
    for est in clf.estimators_[:, 0]:
        t = est.tree_
        trees.append(
            {
                "left": t.children_left.tolist(),
                "right": t.children_right.tolist(),
                "feature": [max(int(f), 0) for f in t.feature],
                "threshold": [round(float(v), 6) for v in t.threshold],
                "value": [round(float(v), 6) for v in t.value[:, 0, 0]],
            }
        )
    return {
        "kind": "gradient-boosting",
        "intercept": math.log(prior / (1 - prior)),
        "learning_rate": clf.learning_rate,
        "trees": trees,
    }


def load_rows(files: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The feature rows, planted flags and case names of comma-separated ``collect`` files."""
    xs, ys, cases = [], [], []
    for name in files.split(","):
        for line in Path(name).read_text().splitlines():
            obj = json.loads(line)
            for r in obj["rows"]:
                xs.append(r["x"])
                ys.append(r["planted"])
                cases.append(obj["case"])
    return np.array(xs), np.array(ys), np.array(cases)


def fit(args: argparse.Namespace) -> None:
    """Fit on every corpus; calibrate (isotonic) on out-of-fold predictions (folds = datasets)."""
    from sklearn.isotonic import IsotonicRegression

    x, y, cases = load_rows(args.features)
    corpus = np.array([c.split("/")[0] for c in cases])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    from sklearn.model_selection import GroupKFold

    raw = np.zeros(len(y))
    for tr, te in GroupKFold(5).split(z, y, groups=cases):
        raw[te] = _make(args.model).fit(z[tr], y[tr]).decision_function(z[te])
    iso = IsotonicRegression(y_min=0.001, y_max=0.999, out_of_bounds="clip").fit(raw, y)
    p_loco = iso.predict(raw)
    loss = -np.mean(y * np.log(p_loco) + (1 - y) * np.log(1 - p_loco))
    clf = _make(args.model).fit(z, y)
    blob = {
        "features": list(FEATURES),
        "mean": mean.round(6).tolist(),
        "scale": scale.round(6).tolist(),
        **_export(args.model, clf, y),
        "isotonic": {
            "x": [round(float(v), 6) for v in iso.X_thresholds_],
            "y": [round(float(v), 6) for v in iso.y_thresholds_],
        },
        "fitted_on": {
            "corpora": sorted(set(corpus.tolist())),
            "cases": len(set(cases)),
            "groups": len(y),
            "planted": int(y.sum()),
            "cross_validated_log_loss": round(float(loss), 4),
            "command": f"python benchmarks/calibrate_data_verdicts.py fit --model {args.model}",
        },
    }
    dest = ROOT / "src" / "dormant" / CALIBRATION_RESOURCE
    dest.write_text(json.dumps(blob) + "\n")
    from dormant.scanners.data._mining_verdict import load_verdict_model

    load_verdict_model.cache_clear()
    check = load_verdict_model().probability(x)
    ref = iso.predict(clf.decision_function(z))
    print(json.dumps(blob["fitted_on"]), "max export error", float(np.abs(check - ref).max()))


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--out", default="benchmarks/results/verdict_features.jsonl")
    c.add_argument("--corpora", default=",".join(CALIBRATION_CORPORA))
    c.add_argument("--seeds", type=int, default=1)
    c.add_argument("--n", type=int, default=3000)
    c.add_argument("--small-grid", action="store_true", help="fewer cases after the first corpus")
    c.add_argument(
        "--rates", default="", help="comma-separated poisoning rates instead of the grid"
    )
    c.add_argument("--first-seed", type=int, default=0)
    c.add_argument("--clean-kinds", default="", help="only clean-label cases of these kinds")
    c.add_argument(
        "--target-shares",
        default="",
        help="comma-separated shares of the data the target class is thinned to, one case each",
    )
    c.add_argument(
        "--no-neighbours",
        action="store_true",
        help="skip the encoder's natural-neighbour test: the rows' evidence vectors are the "
        "same (the test runs after them), only their ``p`` column differs; about five times "
        "faster",
    )
    c.set_defaults(func=collect)
    f = sub.add_parser("fit")
    f.add_argument(
        "--features",
        default="benchmarks/results/verdict_features.jsonl,"
        "benchmarks/results/verdict_features_instr.jsonl,"
        "benchmarks/results/verdict_features_jitter.jsonl,"
        "benchmarks/results/verdict_features_unnatural.jsonl,"
        "benchmarks/results/verdict_features_small_class.jsonl",
        help="comma-separated feature files written by collect",
    )
    f.add_argument("--model", choices=("gb", "lr"), default="gb")
    f.set_defaults(func=fit)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
