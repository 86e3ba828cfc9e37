"""The verdict of trigger mining: a calibrated probability that a mined pattern was planted.

Each merged group of features (a candidate trigger) is described by the evidence the miner
already gathers — support, purity, the association's BH q-value, the content model's
inconsistency (:mod:`._mining_consistency`), how well the rest of its records predict it within
its class and across the data and how typical of its class its own words are
(:mod:`._mining_context`), whether it is unnatural (invisible characters, confusables), a
whole-record style, how long it is, how much of its class it covers and how often it occurs
outside its target — and a model over that vector gives ``P(planted)``.

The model is package data (``data/data_verdict_calibration.json``), fitted by
``benchmarks/calibrate_data_verdicts.py`` on many labelled corpora unlike each other (dictionary
glosses by source and by topic, Debian package descriptions by section, 1,500-6,000 records;
instruction data)
with planted triggers of every kind (dirty-label 0.5-3%, clean-label 1-3%, the latter also
into a target class thinned to 6-10% of the records, so a plant covers up to half its class as
in a corpus with a small class) and the natural
features of the same corpora, and evaluated on a corpus kept aside (manual pages by section).
It is gradient-boosted trees (Friedman, Annals of Statistics 2001; scikit-learn's
``GradientBoostingClassifier``, exported as plain arrays so loading it runs no code) or a
logistic regression, followed by isotonic calibration (Zadrozny & Elkan, KDD 2002) fitted on
its out-of-fold predictions (5-fold cross-validation grouped by dataset, so no dataset is
scored by a model that saw it). How well that holds on a corpus none of the calibration data
came from is measured on the corpus kept aside (BENCHMARKS.md). The evidence has no hand-set cut.

**Quarantine** follows from the probabilities and a target false-discovery rate: groups are
taken in order of ``P(planted)`` while the estimated FDR of the taken set — the mean of
``1 - p`` over it (the Bayesian FDR of Müller, Parmigiani & Rice 2006; Storey 2003) — stays at
or below ``fdr``. Nearby cases cannot flip on one point of a cut: the decision moves only as the
probabilities themselves move.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np

from ...errors import ConfigError, InputNotFoundError
from ._mining_context import ContextFit

CALIBRATION_RESOURCE = "data/data_verdict_calibration.json"

FEATURES = (
    "log_support",
    "purity",
    "log_q",
    "inconsistency",
    "ctx_class",
    "ctx_all",
    "z_class",
    "z_all",
    "inc_x_ctx_class",
    "inc_x_ctx_all",
    "consistent_x_ctx_class",
    "consistent_x_ctx_all",
    "unnatural",
    "style",
    "lexical",
    "log_words",
    "class_share",
    "log_outside",
    "exact",
    "typicality",
    "typicality_x_consistent",
)


def verdict_features(
    *,
    support: int,
    purity: float,
    q_value: float,
    inconsistency: float,
    fit: ContextFit,
    unnatural: bool,
    style: bool,
    lexical: bool,
    words: int,
    class_share: float,
    outside: int = 0,
) -> np.ndarray:
    """The evidence vector of one candidate trigger, in the order of :data:`FEATURES`."""
    inc = float(min(max(inconsistency, 0.0), 1.0))
    dc = fit.auc_class - 0.5
    da = fit.auc_all - 0.5
    return np.array(
        [
            math.log10(max(support, 1)),
            purity,
            min(-math.log10(max(q_value, 1e-300)), 30.0) / 10.0,
            inc,
            dc,
            da,
            float(np.clip(fit.z_class, -5.0, 15.0)) / 5.0,
            float(np.clip(fit.z_all, -5.0, 15.0)) / 5.0,
            inc * dc,
            inc * da,
            (1.0 - inc) * dc,
            (1.0 - inc) * da,
            float(unnatural),
            float(style),
            float(lexical),
            math.log1p(max(words, 0)),
            min(max(class_share, 0.0), 1.0),
            math.log1p(max(outside, 0)),
            float(outside == 0),
            fit.typicality,
            fit.typicality * (1.0 - inc),
        ],
        dtype=np.float64,
    )


@dataclass(frozen=True)
class _Tree:
    """One regression tree in the array form of scikit-learn's ``tree_`` (leaf: left = -1)."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        node = np.zeros(len(x), dtype=np.int64)
        for _ in range(64):
            inner = self.left[node] >= 0
            if not inner.any():
                break
            idx = np.nonzero(inner)[0]
            go_left = x[idx, self.feature[node[idx]]] <= self.threshold[node[idx]]
            node[idx] = np.where(go_left, self.left[node[idx]], self.right[node[idx]])
        return self.value[node]


@dataclass(frozen=True)
class VerdictModel:
    """``P(planted)`` from the evidence vector (see the module docstring).

    ``kind`` is ``logistic`` (standardised features, ``coef``, ``intercept``) or
    ``gradient-boosting`` (Friedman 2001, fitted with scikit-learn and stored as plain arrays:
    the log-odds ``init`` plus ``learning_rate`` × the sum of the trees), either mapped to a
    probability by an isotonic step function (``iso_x`` → ``iso_y``, linear between steps)
    fitted on out-of-fold predictions.
    """

    features: tuple[str, ...]
    kind: str
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    trees: tuple[_Tree, ...] = ()
    learning_rate: float = 0.0
    iso_x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    iso_y: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def probability(self, x: np.ndarray) -> np.ndarray:
        """``P(planted)`` for each row of ``x`` (or one vector)."""
        z = (np.atleast_2d(x) - self.mean) / self.scale
        if self.kind == "gradient-boosting":
            raw = self.intercept + self.learning_rate * sum(t.predict(z) for t in self.trees)
        else:
            raw = z @ self.coef + self.intercept
        raw = np.asarray(raw, dtype=np.float64)
        if len(self.iso_x):
            return np.interp(raw, self.iso_x, self.iso_y)
        return 1.0 / (1.0 + np.exp(-np.clip(raw, -50.0, 50.0)))


@lru_cache(maxsize=1)
def load_verdict_model() -> VerdictModel:
    """The packaged verdict model.

    Raises
    ------
    InputNotFoundError
        The calibration file is missing from the install (reinstall the package).
    ConfigError
        The file does not describe the features this version computes.
    """
    res = resources.files("dormant").joinpath(CALIBRATION_RESOURCE)
    try:
        raw = json.loads(res.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputNotFoundError(
            f"The packaged verdict calibration {CALIBRATION_RESOURCE} is missing from this "
            "install of dormant; reinstall the package."
        ) from exc
    if tuple(raw.get("features", ())) != FEATURES:
        raise ConfigError(
            f"{CALIBRATION_RESOURCE} was fitted on features {raw.get('features')!r}; this "
            f"version computes {list(FEATURES)!r}. Refit it with "
            "benchmarks/calibrate_data_verdicts.py."
        )
    trees = tuple(
        _Tree(
            left=np.asarray(t["left"], dtype=np.int64),
            right=np.asarray(t["right"], dtype=np.int64),
            feature=np.asarray(t["feature"], dtype=np.int64),
            threshold=np.asarray(t["threshold"], dtype=np.float64),
            value=np.asarray(t["value"], dtype=np.float64),
        )
        for t in raw.get("trees", ())
    )
    iso = raw.get("isotonic", {"x": [], "y": []})
    return VerdictModel(
        features=FEATURES,
        kind=str(raw.get("kind", "logistic")),
        mean=np.asarray(raw["mean"], dtype=np.float64),
        scale=np.asarray(raw["scale"], dtype=np.float64),
        coef=np.asarray(raw.get("coef", [0.0] * len(FEATURES)), dtype=np.float64),
        intercept=float(raw["intercept"]),
        trees=trees,
        learning_rate=float(raw.get("learning_rate", 0.0)),
        iso_x=np.asarray(iso["x"], dtype=np.float64),
        iso_y=np.asarray(iso["y"], dtype=np.float64),
    )


def check_fdr(fdr: object) -> float:
    """Validate a target false-discovery rate: a number in (0, 1)."""
    if isinstance(fdr, bool) or not isinstance(fdr, int | float) or not 0.0 < fdr < 1.0:
        raise ConfigError(
            f"The false-discovery rate (fdr) must be a number strictly between 0 and 1, e.g. "
            f"0.05 for 5%. Got {fdr!r}."
        )
    return float(fdr)


def fdr_select(p: np.ndarray, fdr: float) -> np.ndarray:
    """Which candidates to quarantine: the largest top-``k`` by ``p`` whose mean ``1 - p``
    is at most ``fdr`` (a boolean mask over ``p``)."""
    p = np.asarray(p, dtype=np.float64)
    chosen = np.zeros(len(p), dtype=bool)
    if not len(p):
        return chosen
    order = np.argsort(-p, kind="stable")
    est = np.cumsum(1.0 - p[order]) / np.arange(1, len(p) + 1)
    ok = np.nonzero(est <= fdr)[0]
    if len(ok):
        chosen[order[: ok[-1] + 1]] = True
    return chosen
