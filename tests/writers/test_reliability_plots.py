"""Plots must not depend on machine load: matplotlib's ``loc="best"`` legend placement warns
("Creating legend with loc='best' can be slow with large amounts of data") when it takes long,
which made a test fail on a loaded machine. Every legend gets a fixed location."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np

import dormant

SRC = Path(dormant.__file__).parent


def _legend_calls() -> list[tuple[str, ast.Call]]:
    calls = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "legend"
            ):
                calls.append((f"{path.relative_to(SRC)}:{node.lineno}", node))
    return calls


def test_every_legend_has_a_fixed_location() -> None:
    calls = _legend_calls()
    assert calls, "no legend found: the check looks in the wrong place"
    for where, call in calls:
        loc = [k.value for k in call.keywords if k.arg == "loc"]
        assert loc, f"{where}: legend without loc= (matplotlib's default is 'best')"
        assert isinstance(loc[0], ast.Constant) and loc[0].value not in ("best", 0), where


def test_a_large_score_histogram_draws_without_warnings() -> None:
    from dormant.report import RecordScore
    from dormant.writers import _plots

    rng = np.random.default_rng(0)
    records = [RecordScore(str(i), float(s), s > 0.99) for i, s in enumerate(rng.random(20_000))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot = _plots.score_plot(records, 0.99)
    assert plot.png is not None and plot.png.startswith(b"\x89PNG")
