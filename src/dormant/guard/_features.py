"""A second signal for the classifier screen, read from the model's own representation.

The transplant test (:mod:`dormant.guard._strip`) reads only the label's confidence: it
inserts the input's deciding span into clean donor texts of other classes and measures how
far their label moves. A trigger and a clean decisive word of the target class can both
drive it to the model's confidence ceiling, where that test cannot tell them apart. What a
trigger does beyond that is *override* the rest of the text: a backdoored model maps
poisoned inputs, whatever else they say, to one tight region of its penultimate features —
the separation activation clustering detects in training data (Chen et al. 2019, "Detecting
Backdoor Attacks on Deep Neural Networks by Activation Clustering"; the spectral signature
of Tran, Li & Madry, NeurIPS 2018) and STRIP's premise of an input-agnostic trigger (Gao et
al. 2019). :func:`collapse` measures it on the donors the span moved: the minus log mean
squared distance of their penultimate features to their centroid (higher = tighter). Per
model it is compared only with the same statistic of clean calibration texts, so its scale
needs no cut-off.

Two scores of one input are joined into one conformal p-value by
:func:`combined_p_values`: each score is ranked within the bag of the calibration texts plus
the input (a full-conformal conformity measure, Vovk, Gammerman & Shafer 2005, ch. 2: any
function of the bag and the point keeps the p-value valid), the ranks become p-values and
are combined by the Cauchy combination of Liu & Xie (JASA 2020, "Cauchy Combination Test"),
and the input's combined statistic is ranked among the bag's. Under exchangeability of the
input with the calibration texts, ``P(p <= a) <= a`` whatever the dependence between the
two scores; unlike a Bonferroni min-p at ``a / 2`` it needs no more calibration texts than
one score does. Written here (a few lines of numpy) because the conformal packages at hand
(MAPIE, crepes) calibrate one score of a fitted predictor, not several scores of one input.

Also measured during development (class-conditional Gaussian / Mahalanobis distance of the
input's penultimate features to its predicted class, Lee et al. NeurIPS 2018): triggered
inputs sit *closer* to the target class's mean than clean inputs to theirs, so it does not
flag them (BENCHMARKS.md, "A signal beyond the label's confidence").
"""

from __future__ import annotations

import math

import numpy as np


def collapse(features: np.ndarray) -> float:
    """``-log`` of the mean squared distance of the rows of ``features`` to their centroid.

    Higher = the rows (the donor texts with one span inserted) sit closer together. Needs at
    least two finite rows.
    """
    f = np.asarray(features, dtype=float)
    if f.ndim != 2 or len(f) < 2 or not np.isfinite(f).all():
        raise ValueError(f"features: need a finite (n >= 2, d) array; got shape {f.shape}")
    spread = float(((f - f.mean(axis=0)) ** 2).sum(axis=1).mean())
    return -math.log(spread + 1e-12)


def _rank_p(column: np.ndarray) -> np.ndarray:
    """``#{j: x_j >= x_i} / n`` within one column (self counted): small = extreme."""
    s = np.sort(column)
    return (len(s) - np.searchsorted(s, column, side="left")) / len(s)


def _cauchy(p: np.ndarray) -> np.ndarray:
    """Liu & Xie's statistic with equal weights, row-wise: ``mean(tan((0.5 - p) pi))``."""
    return np.asarray(np.tan((0.5 - np.clip(p, 1e-12, 1.0)) * np.pi).mean(axis=1))


def combined_p_values(calibration: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Full-conformal p-values of inputs scored by several scores (higher = more suspicious).

    Parameters
    ----------
    calibration:
        ``(n, m)`` scores of the clean calibration texts.
    scores:
        ``(t, m)`` scores of the inputs, each tested on its own against the calibration bag.

    Returns
    -------
    numpy.ndarray
        ``(t,)`` p-values in ``[1 / (n + 1), 1]``; ``p <= a`` with probability at most ``a``
        for an input exchangeable with the calibration texts.
    """
    cal = np.asarray(calibration, dtype=float)
    x = np.asarray(scores, dtype=float)
    if cal.ndim != 2 or x.ndim != 2 or cal.shape[1] != x.shape[1] or np.isnan(x).any():
        raise ValueError(
            f"scores: expected (t, {cal.shape[-1]}) numbers against calibration of shape "
            f"{cal.shape}; got shape {x.shape}"
        )
    out = np.empty(len(x))
    for i, row in enumerate(x):
        bag = np.vstack([cal, row[None, :]])
        ranks = np.column_stack([_rank_p(bag[:, j]) for j in range(bag.shape[1])])
        stat = _cauchy(ranks)
        out[i] = float(np.mean(stat >= stat[-1]))
    return out


__all__ = ["collapse", "combined_p_values"]
