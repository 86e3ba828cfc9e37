"""The rows of a report that the readers build as well: a scanner issue and a record's score.

They sit below :mod:`dormant.report` (which re-exports them) so that :mod:`dormant.reading`
builds them without importing the report module that calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScanIssue:
    """A scanner that failed (``kind='error'``) or was skipped (``kind='skip'``), and why."""

    scanner: str
    kind: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"scanner": self.scanner, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class RecordScore:
    """Per-record fused suspicion: id, score in [0, 1], flagged, and per-scanner parts."""

    record_id: str
    score: float
    flagged: bool
    parts: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.record_id,
            "score": round(self.score, 6),
            "flagged": self.flagged,
            **{f"score_{k}": round(v, 6) for k, v in self.parts},
        }
