"""The HTML report's plots, drawn with matplotlib's Agg renderer into PNG bytes.

Each function returns a :class:`Plot`: the PNG (``None`` when the data is missing or unusable)
and a note saying what is shown or why it was left out. Plots aggregate, so their cost and size
do not grow with the number of records beyond one histogram pass and a bounded scatter sample.
matplotlib is imported lazily (``matplotlib.figure.Figure`` only: no pyplot, no global state).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from ..data_sections import FlagThreshold, Projection, TriggerStats
from ..data_sections import finite_number as _number
from ..errors import DataFormatError
from ..report import RecordScore, Report
from ..sections import section

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Most triggers in the trigger-evidence chart.
MAX_TRIGGERS = 15
_FLAG = "#c0392b"
_CLEAN = "#7f8c8d"
_BAR = "#2c6e9b"


@dataclass(frozen=True)
class Plot:
    """One plot of the report: a title, the PNG bytes (or ``None``) and a caption or note."""

    title: str
    png: bytes | None
    note: str


def plot_label(text: str, limit: int = 40) -> str:
    """Make data text safe for a matplotlib label: ASCII only, no mathtext, bounded length."""
    out = []
    for ch in text:
        if ch == "$":
            out.append(r"\$")
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.append(f"<U+{ord(ch):04X}>")
    label = "".join(out)
    return label if len(label) <= limit else label[: limit - 3] + "..."


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure  # a base dependency, imported only when plotting

    return Figure(figsize=(width, height), layout="constrained")


def _png(fig: Figure, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def trigger_plot(stats: TriggerStats | None, *, error: str | None = None, dpi: int = 100) -> Plot:
    """Bar chart of the top triggers by score, annotated with purity and support.

    ``error`` is why the report's ``triggers`` could not be read (the plot is left out).
    """
    title = "Trigger evidence"
    if error is not None:
        return Plot(title, None, f"Omitted: {error}")
    if stats is None:
        return Plot(title, None, "Omitted: the report holds no trigger statistics.")
    rows = [(float(r.score), r) for r in stats.rows]
    if not rows:
        return Plot(title, None, "Omitted: no trigger candidates were recorded.")
    rows.sort(key=lambda r: -r[0])
    top = rows[:MAX_TRIGGERS][::-1]
    fig = _figure(8.0, 1.2 + 0.38 * len(top))
    ax = fig.subplots()
    labels = []
    for _, item in top:
        target = item.target
        label = plot_label(str(item.trigger))
        labels.append(f"{label} -> {plot_label(str(target), 24)}" if target else label)
    scores = [s for s, _ in top]
    ys = np.arange(len(top))
    ax.barh(ys, scores, color=_BAR)
    ax.set_yticks(ys, labels=labels, fontsize=8)
    ax.set_xlim(0, max(1.0, max(scores)) * 1.35)
    ax.set_xlabel("score (higher = more suspicious)")
    for y, (score, item) in zip(ys, top, strict=True):
        bits = []
        purity, support = _number(item.purity), _number(item.support)
        p = _number(item.p_value)
        if purity is not None:
            bits.append(f"purity {purity:.2f}")
        if support is not None:
            bits.append(f"n={int(support)}")
        if p is not None:
            bits.append(f"p={p:.1e}")
        ax.text(score, float(y), "  " + ", ".join(bits), va="center", fontsize=7)
    shown = f"top {len(top)} of {len(rows)}" if len(rows) > len(top) else f"all {len(rows)}"
    return Plot(title, _png(fig, dpi), f"Candidate triggers by score ({shown}).")


def score_plot(
    records: Sequence[RecordScore],
    threshold: FlagThreshold | float | None,
    *,
    malformed: bool = False,
    dpi: int = 100,
) -> Plot:
    """Histogram of per-record scores, flagged records stacked in red, threshold drawn.

    ``malformed``: the report records a threshold that is not a finite number (not drawn).
    """
    title = "Score distribution"
    if not records:
        return Plot(title, None, "Omitted: the report holds no per-record scores.")
    scores = np.fromiter((r.score for r in records), dtype=float, count=len(records))
    flagged = np.fromiter((r.flagged for r in records), dtype=bool, count=len(records))
    lo, hi = min(0.0, float(scores.min())), max(1.0, float(scores.max()))
    edges = np.linspace(lo, hi, 51)
    clean_counts, _ = np.histogram(scores[~flagged], bins=edges)
    flag_counts, _ = np.histogram(scores[flagged], bins=edges)
    fig = _figure(8.0, 3.6)
    ax = fig.subplots()
    width = np.diff(edges)
    ax.bar(edges[:-1], clean_counts, width=width, align="edge", color=_CLEAN, label="not flagged")
    ax.bar(
        edges[:-1],
        flag_counts,
        width=width,
        align="edge",
        bottom=clean_counts,
        color=_FLAG,
        label="flagged",
    )
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("record score (higher = more suspicious)")
    ax.set_ylabel("records")
    note = f"{len(records)} records, {int(flagged.sum())} flagged."
    thr = threshold.value if isinstance(threshold, FlagThreshold) else _number(threshold)
    if thr is not None and not malformed:
        ax.axvline(thr, color="black", linestyle="--", linewidth=1, label=f"threshold {thr:.3g}")
        note += f" Flag threshold {thr:.3g}."
    elif threshold is None and not malformed:
        note += " No flag threshold recorded."
    else:
        note += " The recorded threshold is not a finite number and is not drawn."
    ax.legend(fontsize=8, loc="upper right")  # a fixed place: "best" is slow on big data
    return Plot(title, _png(fig, dpi), note)


def projection_plot(
    projection: Projection | None,
    records: Sequence[RecordScore],
    *,
    error: str | None = None,
    max_points: int = 20_000,
    seed: int = 0,
    dpi: int = 100,
) -> Plot:
    """2-D embedding projection, flagged records in red; large sets are subsampled.

    ``error`` is why the report's ``projection`` could not be read (the plot is left out).
    """
    title = "Embedding projection"
    if error is not None:
        return Plot(title, None, f"Omitted: {error}")
    if projection is None:
        return Plot(title, None, "Omitted: the report holds no embedding projection.")
    x = np.asarray(projection.x, dtype=float)
    y = np.asarray(projection.y, dtype=float)
    index = np.asarray(projection.index, dtype=np.int64)
    if len(x) == 0:
        return Plot(title, None, "Omitted: the projection is empty.")
    n_records = len(records)
    if n_records and (index.min() < 0 or index.max() >= n_records):
        return Plot(
            title, None, f"Omitted: projection indices fall outside the {n_records} records."
        )
    if records:
        flags = np.fromiter((r.flagged for r in records), dtype=bool, count=len(records))
        flagged = flags[index]
    else:
        flagged = np.zeros(len(x), dtype=bool)
    rng = np.random.default_rng(seed)
    keep_f = np.flatnonzero(flagged)
    keep_c = np.flatnonzero(~flagged)
    n_f = min(len(keep_f), max_points // 2)
    n_c = min(len(keep_c), max_points - n_f)
    if n_f < len(keep_f):
        keep_f = np.sort(rng.choice(keep_f, n_f, replace=False))
    if n_c < len(keep_c):
        keep_c = np.sort(rng.choice(keep_c, n_c, replace=False))
    fig = _figure(6.5, 5.5)
    ax = fig.subplots()
    ax.scatter(x[keep_c], y[keep_c], s=4, c=_CLEAN, alpha=0.5, linewidths=0, label="not flagged")
    if len(keep_f):
        ax.scatter(x[keep_f], y[keep_f], s=10, c=_FLAG, alpha=0.9, linewidths=0, label="flagged")
    ax.legend(fontsize=8, markerscale=2, loc="upper right")  # fixed: "best" can be slow
    ax.set_xticks([])
    ax.set_yticks([])
    method = plot_label(projection.method or "projection", 30)
    ax.set_title(method, fontsize=9)
    shown = len(keep_f) + len(keep_c)
    note = f"{method} of {len(x)} records ({int(flagged.sum())} flagged)."
    if shown < len(x):
        note += (
            f" A random sample of {shown} points is drawn, flagged ones kept first "
            f"(up to {max_points // 2})."
        )
    return Plot(title, _png(fig, dpi), note)


S = TypeVar("S", TriggerStats, FlagThreshold, Projection)


def _read(report: Report, kind: type[S]) -> tuple[S | None, str | None]:
    """The typed section ``kind`` of ``report``, or why it could not be read."""
    try:
        return section(report.extras, kind), None
    except DataFormatError as exc:
        return None, str(exc)


def data_plots(report: Report, *, max_points: int = 20_000, dpi: int = 100) -> list[Plot]:
    """The data scan's three plots, from its typed sections (a malformed one is noted)."""
    stats, stats_error = _read(report, TriggerStats)
    threshold, threshold_error = _read(report, FlagThreshold)
    projection, projection_error = _read(report, Projection)
    return [
        trigger_plot(stats, error=stats_error, dpi=dpi),
        score_plot(report.records, threshold, malformed=threshold_error is not None, dpi=dpi),
        projection_plot(
            projection,
            report.records,
            error=projection_error,
            max_points=max_points,
            seed=report.seed,
            dpi=dpi,
        ),
    ]
