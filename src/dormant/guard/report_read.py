"""Read a ``guard-report.json`` (``dormant guard report``) back into typed records.

The guard report is not a scan :class:`~dormant.report.Report`: it summarises an audit log
(counts, alerts, the entries with their hash chain). :func:`load_guard_report` is its
counterpart of :func:`dormant.load_report`; ``GuardReport.to_dict()`` gives back the JSON
written, and :meth:`GuardReport.hashes_intact` re-checks each entry's hash without the database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

from ..errors import DataFormatError
from .audit import AuditEntry
from .report import GuardSummary

__all__ = ["GuardAlert", "GuardReport", "load_guard_report"]

_TUPLES = ("triggers", "reasons", "alerts", "behaviours")


@dataclass(frozen=True)
class GuardAlert:
    """One alert raised on an audit entry: its name, severity and the entry's sequence number."""

    alert: str
    severity: str
    seq: int

    def to_dict(self) -> dict[str, Any]:
        return {"alert": self.alert, "severity": self.severity, "seq": self.seq}


@dataclass(frozen=True)
class GuardReport:
    """A guard report: the summary, the alerts (critical first) and the entries covered."""

    summary: GuardSummary
    alerts: tuple[GuardAlert, ...]
    entries: tuple[AuditEntry, ...]

    @classmethod
    def from_dict(cls, data: Any) -> GuardReport:
        """The report whose :meth:`to_dict` is ``data``; :class:`DataFormatError` otherwise."""
        try:
            if not isinstance(data, dict):
                raise TypeError(f"a JSON {type(data).__name__}, not an object")
            names = {f.name for f in fields(AuditEntry)}
            entries = []
            for e in data["entries"]:
                unknown = set(e) - names
                if unknown:
                    raise KeyError(f"unknown entry fields {sorted(unknown)}")
                kw: dict[str, Any] = {k: tuple(v) if k in _TUPLES else v for k, v in e.items()}
                entries.append(AuditEntry(**kw))
            return cls(
                summary=GuardSummary(**data["summary"]),
                alerts=tuple(GuardAlert(**a) for a in data["alerts"]),
                entries=tuple(entries),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataFormatError(
                f"Not a dormant guard report ({type(exc).__name__}: {exc}); expected the "
                "guard-report.json written by 'dormant guard report'."
            ) from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": dict(self.summary.__dict__),
            "alerts": [a.to_dict() for a in self.alerts],
            "entries": [e.to_dict() for e in self.entries],
        }

    def hashes_intact(self) -> bool:
        """Every entry's stored hash matches its content, and each links to the one before."""
        prev = None
        for e in self.entries:
            if e.compute_hash() != e.hash or (prev is not None and e.prev_hash != prev.hash):
                return False
            prev = e
        return True


def load_guard_report(path: str | os.PathLike[str]) -> GuardReport:
    """Read a ``guard-report.json``.

    Raises
    ------
    InputNotFoundError, DataFormatError
        Missing, unreadable, or not a guard report.
    """
    from ..report import load_report_json

    return GuardReport.from_dict(load_report_json(path, what="Guard report"))
