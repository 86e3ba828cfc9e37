"""A second signal for the classifier screen: where the model's own representation puts an input.

The transplant test (:mod:`dormant.guard._strip`) reads only the label's confidence, and a
trigger and a clean decisive word of the target class can both drive it to the model's
ceiling. A trigger-driven input is, however, not a natural member of the class it is sent
to: in the penultimate features a backdoored model gives poisoned inputs their own region
(the separation activation clustering exploits, Chen et al. 2019, "Detecting Backdoor Attacks
on Deep Neural Networks by Activation Clustering"; Beatrix, Ma et al. NDSS 2023, tests the
same departure with Gram matrices). The score here is the Mahalanobis distance of the input's
penultimate features to the clean texts the model gives its predicted label, under the
class-conditional Gaussian with a tied covariance of Lee et al. (NeurIPS 2018, "A Simple
Unified Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks"), its
covariance shrunk by Ledoit & Wolf (2004) (:class:`sklearn.covariance.LedoitWolf`) because
the reference texts are few next to the feature dimension.

Two scores of one input are joined into one conformal p-value by
:func:`combined_p_values`: each score is ranked within the bag of the calibration texts plus
the input (a full-conformal conformity measure, Vovk, Gammerman & Shafer 2005, ch. 2: any
function of the bag and the point keeps the p-value valid), the ranks become p-values and
are combined by the Cauchy combination of Liu & Xie (JASA 2020, "Cauchy Combination Test"),
and the input's combined statistic is ranked among the bag's. Under exchangeability of the
input with the calibration texts, ``P(p <= a) <= a`` exactly, whatever the dependence
between the two scores — unlike a Bonferroni min-p at ``a / 2``, it needs no more
calibration texts than one score does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataValidationError


@dataclass(frozen=True)
class ClassGaussian:
    """Class means and a shared (shrunk) precision of clean penultimate features.

    Attributes
    ----------
    means:
        ``(k, d)`` class means; a class with no reference text has a row of NaN (any input
        predicted as it gets distance ``inf``).
    precision:
        ``(d, d)`` inverse of the shared Ledoit-Wolf covariance.
    """

    means: np.ndarray
    precision: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, n_labels: int) -> ClassGaussian:
        """Fit on clean features and the model's own labels for them.

        Raises
        ------
        DataValidationError
            Fewer than two feature rows, or rows of another shape than ``labels``.
        """
        from sklearn.covariance import LedoitWolf

        f = np.asarray(features, dtype=float)
        y = np.asarray(labels, dtype=int)
        if f.ndim != 2 or len(f) < 2 or len(y) != len(f) or not np.isfinite(f).all():
            raise DataValidationError(
                f"features: expected a finite (n >= 2, d) array with one label per row; got "
                f"shape {f.shape} and {len(y)} labels."
            )
        means = np.full((n_labels, f.shape[1]), np.nan)
        centred = np.empty_like(f)
        for c in range(n_labels):
            rows = y == c
            if rows.any():
                means[c] = f[rows].mean(axis=0)
                centred[rows] = f[rows] - means[c]
        lw = LedoitWolf(assume_centered=True).fit(centred)
        return cls(means, np.asarray(lw.precision_))

    def distance(self, features: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each row to the mean of its label."""
        f = np.asarray(features, dtype=float)
        y = np.asarray(labels, dtype=int)
        if len(f) == 0:
            return np.zeros(0)
        d = f - self.means[y]
        out = np.einsum("ij,jk,ik->i", d, self.precision, d)
        return np.where(np.isfinite(out), out, np.inf)


def _rank_p(column: np.ndarray) -> np.ndarray:
    """``(#{j: x_j >= x_i}) / n`` within one column (self counted): small = extreme."""
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
    out = np.empty(len(x))
    for i, row in enumerate(x):
        bag = np.vstack([cal, row[None, :]])
        ranks = np.column_stack([_rank_p(bag[:, j]) for j in range(bag.shape[1])])
        stat = _cauchy(ranks)
        out[i] = float(np.mean(stat >= stat[-1]))
    return out


__all__ = ["ClassGaussian", "combined_p_values"]
