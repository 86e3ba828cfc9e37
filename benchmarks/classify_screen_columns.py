"""Read the classifier screen's decisions from the score columns a ``--long-spans`` run wrote.

``bench_classify_screen.py --long-spans`` records, for every calibration text and input of each
organism, the transplant test's scores by scale (``dormant.guard._classify_scores.COLUMNS``).
This script ranks them as the screen does — one column alone (the default's ``short``, the
previous ``--long-spans``'s ``max``) or several joined into one full-conformal p-value
(``combined_p_values``, as ``ClassifierScreen`` does) — so main's default and each combination
are read from the same evidence, and prints per organism and per split the effective triggered
and clean inputs flagged (Wilson 95 % intervals).

Usage::

    python benchmarks/classify_screen_columns.py \
        benchmarks/results/classify_screen_scales_dev_fresh4.json
    python benchmarks/classify_screen_columns.py \
        benchmarks/results/classify_screen_quartile_dev_fresh4.json    # with the quartiles
    python benchmarks/classify_screen_columns.py \
        benchmarks/results/classify_screen_flips_dev.json    # with the donors flipped
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_classify_screen import wilson

from dormant.guard._classify_scores import COLUMNS
from dormant.guard._features import combined_p_values

#: name -> the columns ranked (one: alone; several: joined)
SCREENS = {
    "default (main)": ("short",),
    "previous --long-spans (largest score)": ("max",),
    "new --long-spans (short + long_add)": ("short", "long_add"),
    "new --long-spans + necessity": ("short", "long_add", "necessity"),
    # the donors' upper quartile (issue 18, weak backdoors): in place of the mean (tried),
    # joined with it (``--quartile``), with the longer windows too
    "quartile in place of the mean (short_q)": ("short_q",),
    "--quartile (short + short_q)": ("short", "short_q"),
    "--long-spans --quartile (short + long_add + short_q)": ("short", "long_add", "short_q"),
    "both scales' quartiles joined too": ("short", "long_add", "short_q", "long_add_q"),
    # the share of the donors flipped (issue 18, weak backdoors): the first stage's 16 donors
    # alone (tried), with the second stage's 48 more (``--flips``), with the quartile too
    "flips of 16 donors joined (short + flips1)": ("short", "flips1"),
    "--flips (short + flips)": ("short", "flips"),
    "--quartile --flips (short + short_q + flips)": ("short", "short_q", "flips"),
    "weighed flips (short + flips_w)": ("short", "flips_w"),
}


def _matrix(
    rows: list[list[float | None]], names: tuple[str, ...], have: list[str] | None = None
) -> np.ndarray:
    idx = [(have or list(COLUMNS)).index(n) for n in names]
    return np.array(
        [[-np.inf if r[j] is None else float(r[j]) for j in idx] for r in rows], dtype=float
    ).reshape(len(rows), len(idx))


def flagged(cols: dict[str, Any], names: tuple[str, ...], kind: str, fpr: float) -> np.ndarray:
    """Which inputs of ``kind`` (``clean``/``triggered``) the screen ranking ``names`` flags."""
    have = cols.get("names")
    cal, x = _matrix(cols["calibration"], names, have), _matrix(cols[kind], names, have)
    if len(names) == 1:
        s = np.sort(cal[:, 0])
        p = (1 + len(s) - np.searchsorted(s, x[:, 0], side="left")) / (len(s) + 1)
    else:
        p = combined_p_values(cal, x) if len(x) else np.zeros(0)
    return np.asarray((p <= fpr) | np.array(cols[f"{kind}_other"], dtype=bool), dtype=bool)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--fpr", type=float, default=0.01)
    args = ap.parse_args()
    for path in args.results:
        data = json.loads(path.read_text("utf-8"))
        totals = {name: [0, 0, 0, 0] for name in SCREENS}
        for org in data["organisms"]:
            # the --flips run's columns, else the --long-spans run's, else the --quartile run's
            cols = (
                org.get("transplant_flips")
                or org.get("transplant_long")
                or org["transplant_quartile"]
            )["columns"]
            longs = any(r[cols["names"].index("long_add")] is not None for r in cols["calibration"])
            eff = np.array(cols["effective"], dtype=bool)
            line = [org["name"]]
            for name, names in SCREENS.items():
                have = cols.get("names", COLUMNS)
                if (
                    not set(names) <= set(have)
                    or (
                        not longs
                        and any(n in ("long", "max", "long_add", "long_add_q") for n in names)
                    )
                    or (
                        any(n in ("flips", "flips_w") for n in names)
                        and "flips" not in cols.get("used", ())
                    )
                ):
                    continue
                fc = flagged(cols, names, "clean", args.fpr)
                ft = flagged(cols, names, "triggered", args.fpr) if len(eff) else eff
                t = totals[name]
                t[0] += int((ft & eff).sum())
                t[1] += int(eff.sum())
                t[2] += int(fc.sum())
                t[3] += len(fc)
                line.append(
                    f"{name}: {int((ft & eff).sum())}/{int(eff.sum())}, clean {int(fc.sum())}"
                )
            print(" | ".join(line))
        for name, (a, b, c, n) in totals.items():
            if not n:
                continue
            print(f"{data['split']} {name}: TPR {a}/{b} {wilson(a, b)}, FPR {c}/{n} {wilson(c, n)}")


if __name__ == "__main__":
    main()
