"""Typed report sections of a data scan: the mined triggers, the flag threshold, the projection.

A data scan stores three plot inputs in :attr:`Report.extras <dormant.report.Report.extras>`:
``triggers`` (a list of the mined candidates' statistics), ``threshold`` (the lowest fused
score of a flagged record, a number) and ``projection`` (a 2-D projection of the record
embeddings: ``x``, ``y``, ``index``, ``method``). ``report.json`` keeps exactly that JSON;
these frozen dataclasses are its typed view, read with :attr:`Report.trigger_stats`,
:attr:`Report.flag_threshold` and :attr:`Report.projection` (or
:func:`dormant.sections.section`). ``to_dict()`` gives back the stored JSON, so
``TriggerStats.from_dict(v).to_dict() == v`` for every value a scan writes (the stored value
of ``triggers`` is a list and of ``threshold`` a number; the names follow the other sections).

A malformed value (a hand-edited report) raises :class:`DataFormatError` whose message says
what is wrong; the HTML writer shows it in place of the plot ("Omitted: ...").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from .errors import DataFormatError

__all__ = ["FlagThreshold", "Projection", "TriggerStat", "TriggerStats", "finite_number"]


def finite_number(value: object) -> float | None:
    """A finite number as ``float``; ``None`` for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


@dataclass(frozen=True)
class TriggerStat:
    """One mined trigger candidate as the data scan records it.

    ``trigger`` (its display text) and ``score`` are always present; the other statistics
    are ``None`` where the report does not carry them. ``keys`` records which keys were
    stored, in their order, so that :meth:`to_dict` gives back the stored object exactly.
    """

    trigger: str
    score: float
    kind: str | None = None
    target: str | None = None
    support: int | None = None
    purity: float | None = None
    inconsistency: float | None = None
    context_auc_class: float | None = None
    context_auc_all: float | None = None
    p_planted: float | None = None
    p_value: float | None = None
    verdict: str | None = None
    quarantined: bool | None = None
    keys: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: Any, i: int = 0) -> TriggerStat:
        if not isinstance(d, Mapping) or "trigger" not in d:
            raise DataFormatError(f"triggers[{i}] has no 'trigger' entry.")
        if finite_number(d.get("score")) is None:
            raise DataFormatError(f"triggers[{i}]['score'] is not a finite number.")
        names = {f.name for f in fields(cls)} - {"keys"}
        return cls(
            **{k: v for k, v in d.items() if k in names},
            keys=tuple(k for k in d if k in names),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.keys}


@dataclass(frozen=True)
class TriggerStats:
    """The data scan's mined trigger candidates (``extras["triggers"]``), in the scan's order."""

    rows: tuple[TriggerStat, ...]

    @classmethod
    def from_dict(cls, value: Any) -> TriggerStats:
        if not isinstance(value, list | tuple):
            raise DataFormatError(f"'triggers' must be a list, got {type(value).__name__}.")
        return cls(tuple(TriggerStat.from_dict(d, i) for i, d in enumerate(value)))

    def to_dict(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.rows]


@dataclass(frozen=True)
class FlagThreshold:
    """The lowest fused score of a flagged record (``extras["threshold"]``)."""

    value: float

    @classmethod
    def from_dict(cls, value: Any) -> FlagThreshold:
        f = finite_number(value)
        if f is None:
            raise DataFormatError("The recorded threshold is not a finite number.")
        return cls(f)

    def to_dict(self) -> float:
        return self.value


@dataclass(frozen=True)
class Projection:
    """A 2-D projection of the record embeddings (``extras["projection"]``).

    ``x[i]``, ``y[i]`` are the coordinates of record number ``index[i]`` (a position in
    ``report.records``); ``method`` names the projection (``"pca"``).
    """

    x: tuple[float, ...]
    y: tuple[float, ...]
    index: tuple[int, ...]
    method: str | None = None

    @classmethod
    def from_dict(cls, value: Any) -> Projection:
        if not isinstance(value, Mapping):
            raise DataFormatError("'projection' must be a mapping with x, y and index.")
        try:
            x = np.asarray(value["x"], dtype=float)
            y = np.asarray(value["y"], dtype=float)
            index = np.asarray(value["index"], dtype=np.int64)
        except KeyError as exc:
            raise DataFormatError(f"the projection lacks {exc.args[0]!r}.") from None
        except (TypeError, ValueError):
            raise DataFormatError(
                "the projection's x, y and index must be lists of numbers."
            ) from None
        if not (x.ndim == y.ndim == index.ndim == 1 and len(x) == len(y) == len(index)):
            raise DataFormatError(
                f"the projection's x, y and index must be lists of one length; "
                f"got {x.size}, {y.size} and {index.size}."
            )
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise DataFormatError("the projection holds non-finite coordinates.")
        method = value.get("method")
        return cls(
            x=tuple(x.tolist()),
            y=tuple(y.tolist()),
            index=tuple(index.tolist()),
            method=None if method is None else str(method),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"x": list(self.x), "y": list(self.y), "index": list(self.index)}
        if self.method is not None:
            out["method"] = self.method
        return out
