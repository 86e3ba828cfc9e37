"""Out-of-fold reliability of the data-scan verdict, before and after a recalibration.

The procedure is the one ``calibrate_data_verdicts.py fit`` runs (gradient-boosted trees on
standardised features, 5-fold cross-validation grouped by case, isotonic calibration of the
out-of-fold scores), applied to two sets of feature files: ``--before`` (the shipped model's
files before the change) and ``--after``. For each it prints the cross-validated log loss, the
Brier score, the expected calibration error (ECE, equal-mass-free bins at fixed edges; Naeini,
Cooper & Hauskrecht, AAAI 2015) and the reliability table (mean predicted P against the planted
share per bin), then the out-of-fold P of the planted clean-label triggers by kind and by how
much of their class they cover, and the natural rows at P >= 0.5.

Usage::

    python benchmarks/verdict_reliability.py --out benchmarks/results/verdict_reliability.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate_data_verdicts import _make, load_rows

from dormant.scanners.data._mining_verdict import FEATURES

OLD = (
    "benchmarks/results/verdict_features.jsonl,benchmarks/results/verdict_features_instr.jsonl,"
    "benchmarks/results/verdict_features_jitter.jsonl,"
    "benchmarks/results/verdict_features_unnatural.jsonl"
)
NEW = OLD + ",benchmarks/results/verdict_features_small_class.jsonl"
EDGES = (0.0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1.0)


def out_of_fold(x: np.ndarray, y: np.ndarray, cases: np.ndarray) -> np.ndarray:
    from sklearn.isotonic import IsotonicRegression
    from sklearn.model_selection import GroupKFold

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    raw = np.zeros(len(y))
    for tr, te in GroupKFold(5).split(z, y, groups=cases):
        raw[te] = _make("gb").fit(z[tr], y[tr]).decision_function(z[te])
    iso = IsotonicRegression(y_min=0.001, y_max=0.999, out_of_bounds="clip").fit(raw, y)
    return np.asarray(iso.predict(raw))


def summary(p: np.ndarray, x: np.ndarray, y: np.ndarray, cases: np.ndarray) -> dict[str, Any]:
    idx = np.clip(np.digitize(p, EDGES[1:-1]), 0, len(EDGES) - 2)
    table, ece = [], 0.0
    for b in range(len(EDGES) - 1):
        k = idx == b
        if k.any():
            ece += abs(p[k].mean() - y[k].mean()) * k.sum() / len(p)
            table.append(
                [EDGES[b], EDGES[b + 1], int(k.sum()), float(p[k].mean()), float(y[k].mean())]
            )
    share = x[:, FEATURES.index("class_share")]
    clean = np.array([c.split("/")[4] == "clean" for c in cases])
    kinds: dict[str, Any] = {}
    for kind in ("token", "phrase", "log-token"):
        k = clean & (y == 1) & np.array([c.split("/")[2] == kind for c in cases])
        for lo, hi in ((0.0, 0.2), (0.2, 1.01)):
            kk = k & (share >= lo) & (share < hi)
            if kk.any():
                kinds[f"{kind} share {lo}-{min(hi, 1.0)}"] = {
                    "n": int(kk.sum()),
                    "median_p": float(np.median(p[kk])),
                    "p>=0.5": int((p[kk] >= 0.5).sum()),
                }
    dirty = (y == 1) & ~clean
    return {
        "rows": len(y),
        "planted": int(y.sum()),
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": float(ece),
        "reliability": table,
        "clean_label": kinds,
        "dirty_planted_p>=0.5": [int((p[dirty] >= 0.5).sum()), int(dirty.sum())],
        "natural_p>=0.5": int((p[y == 0] >= 0.5).sum()),
    }


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default=OLD)
    ap.add_argument("--after", default=NEW)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    res = {}
    for name, files in (("before", args.before), ("after", args.after)):
        x, y, cases = load_rows(files)
        res[name] = summary(out_of_fold(x, y, cases), x, y, cases)
        print(name, json.dumps(res[name], indent=1), flush=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
