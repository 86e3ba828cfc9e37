"""Tests of the differential probe: one-sided Fisher exact test and Benjamini-Hochberg."""

from __future__ import annotations

from collections.abc import Sequence


def fisher_greater(a: int, n1: int, b: int, n0: int) -> float:
    """One-sided Fisher exact p-value that ``a/n1`` exceeds ``b/n0``."""
    from scipy.stats import fisher_exact

    if n1 == 0 or n0 == 0 or a == 0:
        return 1.0
    return float(fisher_exact([[a, n1 - a], [b, n0 - b]], alternative="greater").pvalue)


def bh(pvalues: Sequence[float], *, m: int | None = None) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in input order.

    ``m`` is the size of the family when it holds further untested pairs (counted as p = 1).
    """
    if not pvalues:
        return []
    from scipy.stats import false_discovery_control

    pad = max(0, (m or 0) - len(pvalues))
    q = false_discovery_control([*pvalues, *([1.0] * pad)], method="bh")
    return [float(x) for x in q[: len(pvalues)]]
