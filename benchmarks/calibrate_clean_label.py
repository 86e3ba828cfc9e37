"""Fit the natural-feature density of the clean-label test (``_mining_cleanlabel``).

Scans calibration corpora (never the held-out manual pages) with trigger mining, runs the
clean-label test on every consistent lexical group, and prints the mean and spread of ``z``
and the share of confined groups among natural groups (and the planted groups' values), the
constants ``NATURAL_Z_MEAN``, ``NATURAL_Z_SD``, ``NATURAL_CONFINED`` and ``PLANTED_CONFINED``
of :mod:`dormant.scanners.data._mining_cleanlabel`, and the Beta of the natural single-word
groups' share below the confinement cut (``NATURAL_SHARE_BETA``). The shipped constants came from::

    python benchmarks/calibrate_clean_label.py collect --out /tmp/clean_label.jsonl \
        wordnet-topic:token:0.03:clean:0 foldoc-topic:token:0.03:clean:0 \
        packages:token:0.03:clean:0 glosses:token:0.03:clean:0 packages:none:0:dirty:5 \
        wordnet-topic:token:0.03:clean:1
    python benchmarks/calibrate_clean_label.py fit --out /tmp/clean_label.jsonl

A case is ``corpus:kind:rate:clean|dirty:seed`` (``kind`` ``none`` for the clean sample).
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


def collect(out: Path, cases: list[str]) -> None:
    with out.open("a", encoding="utf-8") as fh, tempfile.TemporaryDirectory() as d:
        for spec in cases:
            case = mined_case(spec, Path(d))
            specs = [
                ([int(r) for r in c.rows], c.target, [f for f in c.features if _is_lexical(f)])
                for c in case.groups
            ]
            res = clean_label_test(case.dataset, specs, case.miner._outcomes, 512, ScanContext())
            for c, r in zip(case.groups, res, strict=True):
                if r is None:
                    continue
                row = {
                    "case": spec,
                    "trigger": c.trigger.display,
                    "p": c.probability,
                    "planted": case.planted(c),
                    "support": c.support,
                    "z": r.z,
                    "conf": r.confinement,
                    "holding": r.holding,
                    "phrase": len(r.word.split()) > 1,
                    "copies": r.copies,
                }
                fh.write(json.dumps(row) + "\n")
            fh.flush()
            print(spec, len(case.groups), flush=True)


def fit(out: Path) -> None:
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    for planted in (0, 1):
        sel = [r for r in rows if r["planted"] == planted]
        if not sel:
            continue
        z = np.array([r["z"] for r in sel])
        conf = np.array([r["conf"] >= CONFINED_SHARE for r in sel])
        print(
            f"{'planted' if planted else 'natural'}: {len(sel)} groups, z mean {z.mean():.2f} "
            f"sd {z.std(ddof=1) if len(z) > 1 else 0:.2f}, confined share {conf.mean():.3f}"
        )
    # NATURAL_SHARE_BETA: the natural single-word groups' share below the cut, a Beta fitted
    # by the method of moments (rows collected before "holding" was recorded are left out)
    share = np.array(
        [
            r["conf"]
            for r in rows
            if r["planted"] == 0
            and not r.get("phrase", False)
            and r.get("holding", 0) > 0
            and r["conf"] < CONFINED_SHARE
        ]
    )
    if len(share) > 2:
        m, v = float(share.mean()), float(share.var(ddof=1))
        common = m * (1.0 - m) / v - 1.0
        print(
            f"natural words below the cut: {len(share)} groups, share mean {m:.3f} sd "
            f"{v**0.5:.3f}: NATURAL_SHARE_BETA = ({m * common:.2f}, {(1.0 - m) * common:.2f})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("step", choices=("collect", "fit"))
    ap.add_argument("--out", required=True)
    ap.add_argument("cases", nargs="*")
    args = ap.parse_intermixed_args()  # "collect --out F cases..." as the docstring writes it
    if args.step == "collect":
        collect(Path(args.out), args.cases)
    else:
        fit(Path(args.out))


if __name__ == "__main__":
    main()
