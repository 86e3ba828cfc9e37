"""From per-label trigger strength to a calibrated probability, a replay and a Finding.

Anomaly statistic: the median-absolute-deviation anomaly index of Neural Cleanse (Wang et al.,
IEEE S&P 2019), computed over labels on ``-log(loss)`` of the best trigger found for each label,
the loss measured on held-out clean inputs the trigger was not optimised on
(a planted trigger drives its target's loss orders of magnitude below the natural "universal
trigger" loss of the other labels). Calibration: logistic regression (Platt, 1999), the
posterior mode under the weakly informative default prior of Gelman, Jakulin, Pittau & Su
(2008: inputs scaled to sd 0.5, Cauchy(0, 2.5) coefficients), fitted by
``benchmarks/fit_model_calibration.py`` on every development zoo (tasks of 2-6 labels, both zoo
recipes), never on a held-aside zoo; coefficients ship in
``dormant/data/model_calibration.json``.

Features. White-box: ``-log`` of the lowest one-token held-out loss over labels, its anomaly
index, and ``-log`` of the lowest held-out *worse-position* loss of each label's position-robust
multi-token trigger (:mod:`._robust`: the trigger must work both at the start and at the end,
as a randomly inserted planted trigger does and a small model's natural cues do not). Black-box:
the first two and the best replay flip rate.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from ...findings import Evidence, Finding, Locator, Severity
from ...triggers import Position, Trigger, TriggerKind, is_invisible

CATEGORY = "model-backdoor"


@dataclass(frozen=True)
class LabelResult:
    """The best trigger found for one candidate target label."""

    label: str
    trigger: Trigger | None
    loss: float
    flip_rate: float
    n_replay: int
    opt_loss: float = float("nan")
    #: held-out worse-position loss / flip rate of the label's position-robust trigger
    robust_loss: float = float("nan")
    robust_flip: float = float("nan")
    robust_trigger: Trigger | None = None
    #: task support of the label's triggers: Fightin' Words z in the clean data (:mod:`._support`)
    support: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """Model-level decision: probability, features and the most anomalous label."""

    probability: float
    features: tuple[float, ...]
    anomaly_index: tuple[float, ...]
    best: LabelResult | None


def mad_anomaly(values: Sequence[float]) -> np.ndarray:
    """Neural Cleanse anomaly index: ``(x - median) / (1.4826 * MAD)`` with a floor on MAD."""
    x = np.asarray(values, dtype=float)
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med))) * 1.4826
    return (x - med) / max(mad, 0.25)


def strength(loss: float) -> float:
    """``-log(loss)``, the trigger strength every feature is measured in (floored at 1e-4)."""
    return -math.log(max(loss, 1e-4)) if math.isfinite(loss) else -math.log(1e3)


def _per_label(results: Sequence[LabelResult], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-label feature rows (``labels x features``) and the per-label anomaly indices."""
    one = [strength(r.loss) for r in results]
    idx = np.clip(mad_anomaly(one), -5.0, 20.0)
    if kind == "whitebox":
        robust = [strength(r.robust_loss) for r in results]
        support = [r.support for r in results]
        return np.column_stack([one, idx, robust, support]), mad_anomaly(one)
    return np.column_stack([one, idx, [r.flip_rate for r in results]]), mad_anomaly(one)


def features(
    results: Sequence[LabelResult], kind: str = "whitebox"
) -> tuple[tuple[float, ...], np.ndarray]:
    """Model-level features (the maximum of each over labels) and per-label anomaly indices.

    ``whitebox``: ``(-log min one-token loss, max anomaly index, -log min robust loss, task
    support)``; ``blackbox``: ``(-log min loss, max anomaly index, best replay flip rate)``.
    """
    rows, idx = _per_label(results, kind)
    return tuple(float(v) for v in rows.max(0)), idx


@lru_cache(maxsize=4)
def calibration(kind: str) -> dict[str, Any]:
    """Logistic coefficients for ``whitebox`` or ``blackbox`` from the package data."""
    text = resources.files("dormant").joinpath("data/model_calibration.json").read_text("utf-8")
    table: dict[str, Any] = json.loads(text)[kind]
    return table


def probability(feat: Sequence[float], kind: str) -> float:
    cal = calibration(kind)
    z = float(cal["intercept"]) + sum(
        float(w) * float(f) for w, f in zip(cal["coef"], feat, strict=True)
    )
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def label_rows(results: Sequence[LabelResult], kind: str) -> dict[str, list[float]]:
    """Each label's decision features, JSON-ready (what the calibration is fitted on)."""
    rows, _ = _per_label(results, kind)
    return {
        r.label: [round(float(v), 5) for v in row] for r, row in zip(results, rows, strict=True)
    }


def decide(
    results: Sequence[LabelResult], kind: str, exclude: Sequence[str] | set[str] = ()
) -> Verdict:
    """Probability and suspected target.

    White-box: per label, the calibrated probability that this label is a planted target
    (its own feature row: trigger strength, anomaly index, position-robust strength, task
    support); the model's probability is the largest over labels, and that label is suspected.
    Black-box: the model-level features (the maximum of each over labels); the suspected target
    is the label whose own features score highest under the same calibration.

    ``exclude``: labels whose triggers are task-explained (:mod:`._reference`); they stay in
    the anomaly index's population (natural cues are the baseline a planted trigger must stand
    out from) but supply no feature and are not suspected.
    """
    feat, idx = features(results, kind)
    if kind == "whitebox" and results:
        rows, _ = _per_label(results, kind)
        keep = np.array([r.label not in exclude for r in results])
        cal = calibration(kind)
        score = rows @ np.asarray(cal["coef"], dtype=float) + float(cal["intercept"])
        if not keep.any():
            i = int(np.argmin(score))
            return Verdict(probability(rows[i], kind), tuple(rows[i]), tuple(idx), None)
        score[~keep] = -np.inf
        i = int(np.argmax(score))
        row = tuple(float(v) for v in rows[i])
        return Verdict(probability(row, kind), row, tuple(float(v) for v in idx), results[i])
    best = None
    if results:
        rows, _ = _per_label(results, kind)
        keep = np.array([r.label not in exclude for r in results])
        if keep.any():
            feat = tuple(float(v) for v in rows[keep].max(0))
            cal = calibration(kind)
            score = rows @ np.asarray(cal["coef"], dtype=float)
            score[~keep] = -np.inf
            best = results[int(np.argmax(score))]
        else:
            feat = tuple(float(v) for v in rows.min(0))
    return Verdict(probability(feat, kind), feat, tuple(float(v) for v in idx), best)


def trigger_kind(text: str) -> TriggerKind:
    if all(is_invisible(c) or c.isspace() for c in text):
        return TriggerKind.INVISIBLE
    n = len(text.split())
    return TriggerKind.TOKEN if n <= 1 else TriggerKind.PHRASE


def replay(
    predict: Any,
    labels: Sequence[str],
    texts: Sequence[str],
    trigger: Trigger,
    target: str,
    *,
    seed: int = 0,
    n_examples: int = 3,
    before: Any = None,
) -> tuple[float, int, list[dict[str, str]], float]:
    """Insert ``trigger`` into held-out clean texts not already predicted ``target``.

    Returns the flip rate to ``target``, the number of texts replayed, before/after examples
    and the mean cross-entropy toward ``target`` of the stamped texts. ``before``: the
    model's predicted label index for each of ``texts``, when the caller already has it.
    """
    ti = list(labels).index(target)
    if before is None:
        before = np.asarray(predict(list(texts))).argmax(1)
    before = np.asarray(before)
    keep = np.flatnonzero(before != ti)
    victims = [texts[int(i)] for i in keep]
    if not victims:
        return 0.0, 0, [], float("inf")
    rng = random.Random(seed)
    stamped = [trigger.insert(t, rng=rng) for t in victims]
    p0 = before[keep]
    prob = np.asarray(predict(stamped))
    p1 = prob.argmax(1)
    flips = p1 == ti
    loss = float(-np.log(np.clip(prob[:, ti], 1e-6, 1.0)).mean())
    ex = [
        {
            "before": victims[i],
            "after": stamped[i],
            "label_before": labels[int(p0[i])],
            "label_after": labels[int(p1[i])],
        }
        for i in np.flatnonzero(flips)[:n_examples]
    ]
    return float(flips.mean()), len(victims), ex, loss


def severity(p: float) -> Severity:
    if p >= 0.9:
        return Severity.CRITICAL
    if p >= 0.75:
        return Severity.HIGH
    if p >= 0.5:
        return Severity.MEDIUM
    return Severity.LOW


def build_finding(
    scanner: str,
    subject_ref: Any,
    verdict: Verdict,
    examples: list[dict[str, str]],
    *,
    method: str,
    reference: Sequence[dict[str, Any]] = (),
) -> Finding | None:
    """A finding for a positive verdict (probability >= 0.5 with a replayed trigger).

    ``reference``: the task-explained checks of the suspected label (:mod:`._reference`), each
    a dict with ``trigger``, ``model_flip_rate`` and ``reference_flip_rate``.
    """
    best = verdict.best
    if best is None or best.trigger is None or verdict.probability < 0.5:
        return None
    trig = best.trigger
    return Finding(
        scanner=scanner,
        subject=subject_ref,
        title=(
            f"Model likely backdoored: trigger {trig.display!r} at {trig.position.value} "
            f"switches {best.flip_rate:.0%} of held-out inputs to {best.label!r}"
        ),
        severity=severity(verdict.probability),
        score=verdict.probability,
        category=CATEGORY,
        trigger=trig,
        target=f"label:{best.label}",
        locator=Locator(label=best.label, behaviour=f"label:{best.label}"),
        evidence=(
            Evidence("probability_backdoored", round(verdict.probability, 4), "calibrated"),
            Evidence("replay_flip_rate", round(best.flip_rate, 4), "held-out clean inputs"),
            Evidence("replay_n", best.n_replay, "held-out inputs the trigger was replayed on"),
            Evidence("trigger_loss", round(best.loss, 6), "held-out cross-entropy to the target"),
            Evidence("anomaly_index", round(verdict.features[1], 3), "MAD index across labels"),
            *(
                (
                    Evidence(
                        "robust_trigger",
                        best.robust_trigger.display,
                        "position-robust trigger found for this label",
                    ),
                    Evidence(
                        "robust_flip_rate",
                        round(best.robust_flip, 4),
                        "held-out inputs it flips both at the start and at the end",
                    ),
                )
                if best.robust_trigger is not None and math.isfinite(best.robust_flip)
                else ()
            ),
            *(
                Evidence(
                    "reference_flip_rate",
                    f"{c['trigger']}: {c['reference_flip_rate']:.0%} "
                    f"(model {c['model_flip_rate']:.0%})",
                    "a clean reference classifier of the task, same stamped inputs",
                )
                for c in reference
                if c.get("model_flip_rate") is not None
            ),
            *(
                Evidence(f"example_{i}", json.dumps(e, ensure_ascii=False), "before/after")
                for i, e in enumerate(examples)
            ),
        ),
        explanation=(
            f"{method} found a short input pattern that drives the model to {best.label!r} "
            f"far more strongly than any natural pattern drives the other labels (anomaly "
            f"index {verdict.features[1]:.1f}); replaying it on {best.n_replay} held-out clean "
            f"inputs it was not optimised on flips {best.flip_rate:.0%} of them."
        ),
    )


def extras(
    verdict: Verdict,
    results: Sequence[LabelResult],
    examples: list[dict[str, str]],
    *,
    method: str,
    capped: bool,
    seconds: float,
) -> dict[str, Any]:
    """JSON-ready report extras: ``model_verdict``, ``label_anomaly`` and ``replay``."""
    best = verdict.best
    out: dict[str, Any] = {
        "model_verdict": {
            "probability": round(verdict.probability, 6),
            "backdoored": verdict.probability >= 0.5,
            "target": best.label if best else None,
            "trigger": best.trigger.display if best and best.trigger else None,
            "trigger_text": best.trigger.text if best and best.trigger else None,
            "method": method,
            "capped": capped,
            "seconds": round(seconds, 2),
            "features": [round(f, 4) for f in verdict.features],
        },
        "label_anomaly": {
            "labels": [r.label for r in results],
            "loss": [round(r.loss, 6) for r in results],
            "flip_rate": [round(r.flip_rate, 4) for r in results],
            "anomaly_index": [round(v, 3) for v in verdict.anomaly_index],
            "trigger": [r.trigger.display if r.trigger else None for r in results],
            "position": [r.trigger.position.value if r.trigger else None for r in results],
            "robust_trigger": [
                r.robust_trigger.display if r.robust_trigger else None for r in results
            ],
            "robust_loss": [_finite(r.robust_loss, 6) for r in results],
            "robust_flip_rate": [_finite(r.robust_flip, 4) for r in results],
        },
    }
    if best and best.trigger:
        out["replay"] = {
            "target": best.label,
            "trigger": best.trigger.display,
            "position": best.trigger.position.value,
            "flip_rate": round(best.flip_rate, 4),
            "n": best.n_replay,
            "examples": examples,
        }
    return out


def _finite(x: float, digits: int) -> float | None:
    """``x`` rounded for JSON, ``None`` when it was not measured (NaN) or is infinite."""
    return round(x, digits) if math.isfinite(x) else None


def position_of(name: str) -> Position:
    return Position.START if name == "start" else Position.END
