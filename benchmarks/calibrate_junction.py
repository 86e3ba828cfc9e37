"""Fit the natural-feature densities of the junction and clean-label tests, scaled by size.

Scans calibration corpora (never the held-out manual pages) with trigger mining, runs the
junction test (``_mining_junction``) and the clean-label test (``_mining_cleanlabel``) on every
consistent lexical group that is planted-looking or a task feature, and fits, on the natural
groups, a two-component normal mixture (scikit-learn's ``GaussianMixture``) to each test's
per-record effect ``z / sqrt(records)``: a natural feature's z-score grows with the square root
of its group's size, a plant's stays N(0, 1). It prints the constants ``NATURAL_WEIGHTS``,
``NATURAL_MEANS``, ``NATURAL_SDS`` of :mod:`dormant.scanners.data._mining_junction` and
``NATURAL_EFFECT_*`` of :mod:`dormant.scanners.data._mining_cleanlabel`, and the planted
groups' values. The shipped constants came from::

    python benchmarks/calibrate_junction.py collect --out /tmp/junction.jsonl \
        wordnet-topic:token:0.03:clean:31 wordnet-topic:token:0.03:clean:33 \
        wordnet-topic:token:0.03:clean:34 foldoc-topic:token:0.03:clean:31 \
        foldoc-topic:token:0.03:clean:33 foldoc-topic:token:0.03:clean:34 \
        glosses:token:0.03:clean:31 glosses:token:0.03:clean:33 glosses:token:0.03:clean:34 \
        packages:token:0.03:clean:31 packages:token:0.03:clean:33 packages:token:0.03:clean:34
    python benchmarks/calibrate_junction.py fit --out /tmp/junction.jsonl

A case is ``corpus:kind:rate:clean|dirty:seed`` (``kind`` ``none`` for the clean sample). The
natural groups of a poisoned sample are as natural as those of a clean one; seeds 31-34 are
not among those the verdict model or the benchmarks sample (0-5).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _verdict_corpora import mined_case

from dormant.scanners.base import ScanContext
from dormant.scanners.data._mining_cleanlabel import CONFINED_SHARE, clean_label_test
from dormant.scanners.data._mining_features import _is_lexical
from dormant.scanners.data._mining_junction import junction_test


def collect(out: Path, cases: list[str]) -> None:
    with out.open("a", encoding="utf-8") as fh, tempfile.TemporaryDirectory() as d:
        for spec in cases:
            case = mined_case(spec, Path(d), verdicts=("planted", "task-feature"))
            cands, ds = case.groups, case.dataset
            # the pairs' counts are the counting pass's bigram table, as in a scan
            counted = case.miner._count(ds, ScanContext())
            counted[-1].close()
            heads = [(c.rows, c.target, [c.trigger.text]) for c in cands]
            lexical = [(c.rows, c.target, [f for f in c.features if _is_lexical(f)]) for c in cands]
            junction = junction_test(ds, heads, counted[1], 512, ScanContext())
            clean = clean_label_test(ds, lexical, case.miner._outcomes, 512, ScanContext())
            for c, j, r in zip(cands, junction, clean, strict=True):
                row = {
                    "case": spec,
                    "trigger": c.trigger.display,
                    "p": c.probability,
                    "planted": case.planted(c),
                    "support": c.support,
                    "junction_z": None if j is None else j.z,
                    "junction_n": None if j is None else j.records,
                    "clean_z": None if r is None or r.copies_only else r.z,
                    "confined": None if r is None else bool(r.confinement >= CONFINED_SHARE),
                }
                fh.write(json.dumps(row) + "\n")
            fh.flush()
            print(spec, len(cands), flush=True)


def _mixture(effect: np.ndarray) -> tuple[list[float], list[float], list[float]]:
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(2, random_state=0).fit(effect[:, None])
    order = np.argsort(-gm.weights_)
    return (
        [round(float(gm.weights_[k]), 3) for k in order],
        [round(float(gm.means_.ravel()[k]), 3) for k in order],
        [round(float(np.sqrt(gm.covariances_.ravel()[k])), 3) for k in order],
    )


def fit(out: Path) -> None:
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    nat = [r for r in rows if not r["planted"]]
    for test, zk, nk in (
        ("junction", "junction_z", "junction_n"),
        ("clean-label", "clean_z", "support"),
    ):
        sel = [r for r in nat if r[zk] is not None]
        eff = np.array([r[zk] / np.sqrt(min(r[nk], 300)) for r in sel])
        w, m, s = _mixture(eff)
        print(f"{test}: {len(sel)} natural groups; weights {w}, means {m}, sds {s}")
        for r in rows:
            if r["planted"] and r[zk] is not None:
                print(f"  planted {r['case']} {r['trigger']!r}: z {r[zk]:.2f}, n {r[nk]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("step", choices=("collect", "fit"))
    ap.add_argument("--out", required=True)
    ap.add_argument("cases", nargs="*")
    args = ap.parse_intermixed_args()
    if args.step == "collect":
        collect(Path(args.out), args.cases)
    else:
        fit(Path(args.out))


if __name__ == "__main__":
    main()
