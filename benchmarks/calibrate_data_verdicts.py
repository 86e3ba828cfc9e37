"""Fit the data-scan verdict (``P(planted)``) on many corpora with planted and natural features.

For every calibration corpus (:data:`_verdict_corpora.CALIBRATION_CORPORA`; the held-out
``manpages`` is never read here) and seed, every case of the poisoning grid is scanned by trigger
mining and every described candidate group is kept with its evidence vector
(:func:`dormant.scanners.data._mining_verdict.verdict_features`) and its truth: planted when at
least half of its records are poisoned records, natural otherwise. A logistic regression
(scikit-learn, L2, standardised features) is fitted on all of them and written, as plain numbers,
to ``src/dormant/data/data_verdict_calibration.json``.

Usage (the first writes benchmarks/results/verdict_features.jsonl, the second the package
data file)::

    python benchmarks/calibrate_data_verdicts.py collect
    python benchmarks/calibrate_data_verdicts.py fit
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _verdict_corpora import CALIBRATION_CORPORA, corpus_records, grid, poison

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


def scan_candidates(records: list[dict], truth: frozenset[str], tmp: Path) -> list[dict]:
    """Scan ``records``; one row per described candidate group with its evidence and truth."""
    path = write_dataset(records, tmp / "data.jsonl")
    ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
    miner = TriggerMiner()
    miner.scan(ds)
    ids = [r["id"] for r in records]
    rows = []
    for m in miner.candidates_:
        hit = sum(ids[r] in truth for r in m.rows)
        rows.append(
            {
                "x": list(m.evidence),
                "planted": int(hit >= 0.5 * len(m.rows)),
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
    with tempfile.TemporaryDirectory() as d, out.open("a") as fh:
        for corpus in args.corpora.split(","):
            for seed in range(args.seeds):
                base = corpus_records(corpus, n=args.n, seed=seed)
                cases = grid(clean_rates=(0.01, 0.03))
                if args.small_grid and corpus != "glosses":
                    cases = [c for c in cases if c in SMALL_GRID]
                for kind, rate, clean in cases:
                    case = f"{corpus}/{seed}/{kind}/{rate}/{'clean' if clean else 'dirty'}"
                    if case in done:
                        continue
                    t0 = time.perf_counter()
                    pd = poison(base, kind, rate, clean, seed)
                    recs = pd.records if pd else base
                    truth = pd.poisoned_ids if pd else frozenset()
                    rows = scan_candidates(recs, truth, Path(d))
                    fh.write(json.dumps({"case": case, "rows": rows}) + "\n")
                    fh.flush()
                    print(
                        case,
                        len(rows),
                        sum(r["planted"] for r in rows),
                        f"{time.perf_counter() - t0:.1f}s",
                        flush=True,
                    )


def fit(args: argparse.Namespace) -> None:
    from sklearn.linear_model import LogisticRegression

    xs, ys, cases = [], [], []
    for line in Path(args.features).read_text().splitlines():
        obj = json.loads(line)
        for r in obj["rows"]:
            xs.append(r["x"])
            ys.append(r["planted"])
            cases.append(obj["case"])
    x, y = np.array(xs), np.array(ys)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    clf = LogisticRegression(C=args.C, max_iter=5000)
    clf.fit((x - mean) / scale, y)
    p = clf.predict_proba((x - mean) / scale)[:, 1]
    loss = -np.mean(y * np.log(np.clip(p, 1e-12, 1)) + (1 - y) * np.log(np.clip(1 - p, 1e-12, 1)))
    blob = {
        "features": list(FEATURES),
        "mean": mean.round(6).tolist(),
        "scale": scale.round(6).tolist(),
        "coef": clf.coef_[0].round(6).tolist(),
        "intercept": round(float(clf.intercept_[0]), 6),
        "fitted_on": {
            "corpora": sorted({c.split("/")[0] for c in cases}),
            "cases": len(set(cases)),
            "groups": len(y),
            "planted": int(y.sum()),
            "training_log_loss": round(float(loss), 4),
            "C": args.C,
            "command": "python benchmarks/calibrate_data_verdicts.py fit",
        },
    }
    dest = ROOT / "src" / "dormant" / CALIBRATION_RESOURCE
    dest.write_text(json.dumps(blob, indent=1) + "\n")
    print(json.dumps(blob["fitted_on"]), dict(zip(FEATURES, blob["coef"], strict=True)))


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
    c.set_defaults(func=collect)
    f = sub.add_parser("fit")
    f.add_argument("--features", default="benchmarks/results/verdict_features.jsonl")
    f.add_argument("--C", type=float, default=1.0)
    f.set_defaults(func=fit)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
