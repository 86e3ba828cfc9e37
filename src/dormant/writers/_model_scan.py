"""A model scan's part of the HTML and Markdown reports: verdict, replay, per-label anomaly.

A classifier scan (:mod:`dormant.scanners.model`) leaves the typed sections
:class:`~dormant.sections.ModelVerdict`
(probability, target, trigger, method, capped, seconds, features), ``LabelAnomaly`` (one entry
per candidate target label: the best one-token trigger, its held-out loss and flip rate, the MAD
anomaly index, the position-robust trigger with its worse-position loss and flip rate) and,
for a verdict with a trigger, ``Replay`` (trigger, position, target, flip rate, n,
before/after examples). :func:`model_scan` turns them into typed rows both writers render and
:func:`anomaly_plot` draws the per-label chart. Trigger texts and examples come from the model
and the user's data and stay untrusted: the writers escape them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..report import Report
from ..sections import LabelAnomaly, ModelVerdict, ProbeSummary, Replay, TaskExplained
from ..triggers import describe_text
from ._plots import Plot, _figure, _number, _png, plot_label
from ._sections import read_section

_TARGET = "#c0392b"
_ONE = "#2c6e9b"
_ROBUST = "#e67e22"


@dataclass(frozen=True)
class LabelRow:
    """One candidate target label of a model scan."""

    label: str
    trigger: str | None
    position: str | None
    loss: float | None
    flip_rate: float | None
    anomaly_index: float | None
    robust_trigger: str | None
    robust_loss: float | None
    robust_flip: float | None

    @property
    def strength(self) -> float | None:
        """``-log`` of the one-token held-out loss (what the decision compares)."""
        return _strength(self.loss)

    @property
    def robust_strength(self) -> float | None:
        return _strength(self.robust_loss)


@dataclass(frozen=True)
class ModelScan:
    """The verdict of a classifier scan and its per-label evidence."""

    probability: float
    backdoored: bool
    target: str | None
    method: str
    capped: bool
    seconds: float | None
    labels: tuple[LabelRow, ...]
    replay: Replay | None
    #: sentences on the task-explained check (labels left out, or why it was not made)
    explained: tuple[str, ...] = ()


def _strength(loss: float | None) -> float | None:
    return None if loss is None else -math.log(max(loss, 1e-4))


def _at(values: tuple[object, ...], i: int) -> object:
    return values[i] if i < len(values) else None


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def model_scan(report: Report) -> ModelScan | None:
    """The model-scan part of a report, or ``None`` when the report is not a model scan.

    Read from the typed sections (:attr:`Report.model_verdict`, :attr:`Report.label_anomaly`,
    :attr:`Report.replay`); a probe's report (which has a probe summary) is not a model scan.
    """
    v, la = read_section(report, ModelVerdict), read_section(report, LabelAnomaly)
    if v is None or la is None or read_section(report, ProbeSummary) is not None:
        return None
    prob = _number(v.probability)
    if prob is None:
        return None
    rows = tuple(
        LabelRow(
            label=str(lab),
            trigger=_str(_at(la.trigger, i)),
            position=_str(_at(la.position, i)),
            loss=_number(_at(la.loss, i)),
            flip_rate=_number(_at(la.flip_rate, i)),
            anomaly_index=_number(_at(la.anomaly_index, i)),
            robust_trigger=_str(_at(la.robust_trigger, i)),
            robust_loss=_number(_at(la.robust_loss, i)),
            robust_flip=_number(_at(la.robust_flip_rate, i)),
        )
        for i, lab in enumerate(la.labels)
    )
    replay = read_section(report, Replay)
    return ModelScan(
        probability=prob,
        backdoored=bool(v.backdoored),
        target=_str(v.target),
        method=str(v.method or "model scan"),
        capped=bool(v.capped),
        seconds=_number(v.seconds),
        labels=rows,
        replay=replay if replay is not None and replay.flip_rate is not None else None,
        explained=_explained(read_section(report, TaskExplained)),
    )


def _explained(te: TaskExplained | None) -> tuple[str, ...]:
    """The task-explained check as sentences (see ``scanners.model._reference``)."""
    if te is None:
        return ()
    out = []
    for lab, checks in te.explained_labels.items():
        for c in checks:
            m, r = _number(c.model_flip_rate), _number(c.reference_flip_rate)
            out.append(
                f"Not suspected, task-explained: '{describe_text(str(c.trigger))}' "
                f"switches {(m or 0.0):.0%} of held-out inputs to '{lab}', and a clean reference "
                f"classifier of the task {(r or 0.0):.0%} of the same inputs."
            )
    if te.skipped:
        out.append(f"Task-explained check not made: {te.skipped}.")
    return tuple(out)


def verdict_text(ms: ModelScan) -> str:
    """One sentence: the probability and, for a positive verdict, the replayed proof."""
    text = f"P(backdoored) = {ms.probability:.3f} ({ms.method})"
    r = ms.replay
    if ms.backdoored and r:
        rate = _number(r.flip_rate)
        trigger = describe_text(str(r.trigger or ""))
        text += (
            f": trigger '{trigger}' at {r.position} switches {(rate or 0.0):.0%} of "
            f"{r.n} held-out clean inputs to '{r.target}'."
        )
    else:
        text += ": no backdoor evidence above the decision threshold (0.5)."
    for line in ms.explained:
        text += " " + line
    if ms.capped:
        text += " The search was CAPPED by --budget-seconds: this is the best verdict so far."
    return text


def fmt(value: float | None, pattern: str) -> str:
    return "–" if value is None else format(value, pattern)


def anomaly_plot(ms: ModelScan | None, *, dpi: int = 100) -> Plot:
    """Per-label trigger strength: the one-token and the position-robust trigger, side by side.

    Strength is ``-log`` of the held-out loss toward the label (higher = the trigger pulls
    harder); each pair of bars is annotated with the flip rates and the MAD anomaly index. The
    suspected target label is drawn in red.
    """
    title = "Per-label anomaly"
    if ms is None or not ms.labels:
        return Plot(title, None, "Omitted: the report holds no per-label scan results.")
    rows = [r for r in ms.labels if r.strength is not None]
    if not rows:
        return Plot(title, None, "Omitted: no label has a measured trigger loss.")
    rows = rows[::-1][:40]
    fig = _figure(8.0, 1.4 + 0.5 * len(rows))
    ax = fig.subplots()
    ys = np.arange(len(rows))
    one = [float(r.strength or 0.0) for r in rows]
    rob = [r.robust_strength for r in rows]
    colors = [_TARGET if r.label == ms.target else _ONE for r in rows]
    ax.barh(ys + 0.2, one, height=0.38, color=colors)
    if any(x is not None for x in rob):
        ax.barh(
            ys - 0.2,
            [float(x) if x is not None else 0.0 for x in rob],
            height=0.38,
            color=_ROBUST,
        )
    ax.set_yticks(ys, labels=[plot_label(r.label, 30) for r in rows], fontsize=8)
    ax.axvline(0.0, color="#555", linewidth=0.6)
    lo = min(0.0, *one, *(x for x in rob if x is not None))
    hi = max(1.0, *one, *(x for x in rob if x is not None))
    ax.set_xlim(lo - 0.3, hi * 1.25 + 1.0)
    ax.set_xlabel("trigger strength: -log held-out loss toward the label (higher = stronger)")
    for y, r, s in zip(ys, rows, one, strict=True):
        bits = [f"flip {fmt(r.flip_rate, '.0%')}", f"MAD {fmt(r.anomaly_index, '.1f')}"]
        if r.robust_flip is not None:
            bits.append(f"robust flip {r.robust_flip:.0%}")
        ax.text(max(s, 0.0), float(y) + 0.2, "  " + ", ".join(bits), va="center", fontsize=7)
    from matplotlib.patches import Patch

    handles = [Patch(color=_ONE, label="one-token trigger (suspected target in red)")]
    if any(x is not None for x in rob):
        handles.append(Patch(color=_ROBUST, label="position-robust trigger (worse of start/end)"))
    fig.legend(handles=handles, loc="outside upper center", ncols=2, fontsize=7, frameon=False)
    note = (
        "Held-out strength of the best trigger found for each candidate target label; a "
        "planted trigger stands out far above the natural cues of the other labels."
        + (f" Suspected target: {ms.target} (red)." if ms.backdoored and ms.target else "")
    )
    return Plot(title, _png(fig, dpi), note)


__all__ = ["LabelRow", "ModelScan", "anomaly_plot", "fmt", "model_scan", "verdict_text"]
