"""The writers' access to a report's typed sections, and their dispatch by section type.

Each writer keeps a table ``{section class: renderer}``; :func:`present` yields the sections a
report has, in the table's order, so a new section type is one renderer and one table entry.
A section that is malformed (a hand-edited report) is left out of the page rather than
failing the whole report: the JSON report still holds it as written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from ..errors import DataFormatError
from ..report import Report
from ..sections import KEYS, section

S = TypeVar("S")
R = TypeVar("R")


def read_section(report: Report, kind: type[S]) -> S | None:
    """The typed section ``kind`` of ``report``, or ``None`` when it has none (or a bad one)."""
    if kind not in KEYS:
        raise TypeError(f"{kind.__name__} is not a report section type.")
    try:
        out: S | None = section(report.extras, kind)  # type: ignore[type-var]
    except DataFormatError:
        return None
    return out


def present(
    report: Report, renderers: Mapping[type, Callable[..., R]]
) -> Iterator[tuple[Callable[..., R], Any]]:
    """``(renderer, section)`` for each section type of ``renderers`` the report holds."""
    for kind, render in renderers.items():
        value = read_section(report, kind)
        if value is not None:
            yield render, value
