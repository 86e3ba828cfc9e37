"""The one-sided sign test both trigger recoveries decide an extension by.

A recovered trigger is extended by a token only when the extension raises the switch on more
held-out inputs than chance would: the exact sign test of "the median gain is below
``margin``" (Dixon & Mood, "The statistical sign test", *JASA* 1946), scipy's ``binomtest`` on
the inputs that are no tie. The classifier scan's extension (:mod:`.model._extend`) uses it; the
LLM/agent probe's refinement (:mod:`.agent._recover`) applies the same test.
"""

from __future__ import annotations

from collections.abc import Sequence


def sign_test(gains: Sequence[float], margin: float) -> tuple[int, int, float]:
    """(inputs gaining at least ``margin``, inputs that are no tie, one-sided p) of a sign test
    of "the median gain is below ``margin``"; an input whose gain is exactly zero (both texts
    saturate the switch there) is a tie and is left out, as in any sign test."""
    from scipy.stats import binomtest

    n = sum(1 for g in gains if g != 0.0)
    k = sum(1 for g in gains if g != 0.0 and g >= margin)
    if n == 0:
        return 0, 0, 1.0
    return k, n, float(binomtest(k, n, 0.5, alternative="greater").pvalue)
