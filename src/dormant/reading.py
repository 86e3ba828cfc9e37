"""Read reports back: the inverse of ``Report.to_dict`` and of the ``scores.jsonl`` writer.

Used by :meth:`dormant.report.Report.from_dict` and :func:`dormant.load_report`, so a report
can be re-rendered, merged, diffed or fed to the next stage as typed objects rather than a raw
dict. Every field is checked: a key that is missing or of the wrong type is a
:class:`~dormant.errors.DataFormatError` naming it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ._records import RecordScore, ScanIssue
from .errors import DataFormatError, InputNotFoundError
from .findings import Evidence, Finding, Locator, SubjectRef
from .triggers import Position, Trigger, TriggerKind

_ISSUE_KINDS = {"errors": "error", "skips": "skip", "warnings": "warning"}


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DataFormatError(f"Report field {where!r} must be an object. Got {value!r}.")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise DataFormatError(f"Report field {where!r} must be a list. Got {value!r}.")
    return value


def subject_from_dict(d: Any, where: str = "subject") -> SubjectRef:
    d = _obj(d, where)
    return SubjectRef(kind=str(d["kind"]), name=str(d["name"]), digest=str(d["digest"]))


def trigger_from_dict(d: Any) -> Trigger | None:
    if d is None:
        return None
    d = _obj(d, "trigger")
    return Trigger(
        text=str(d["text"]), kind=TriggerKind(d["kind"]), position=Position(d["position"])
    )


def finding_from_dict(d: Any) -> Finding:
    """The :class:`Finding` of one entry of a report's ``findings``."""
    d = _obj(d, "findings[]")
    loc = _obj(d.get("locator") or {}, "locator")
    span = loc.get("span")
    return Finding(
        scanner=str(d["scanner"]),
        subject=subject_from_dict(d["subject"], "findings[].subject"),
        title=str(d["title"]),
        severity=d["severity"],
        score=float(d["score"]),
        category=str(d["category"]),
        trigger=trigger_from_dict(d.get("trigger")),
        target=d.get("target"),
        locator=Locator(
            record_ids=tuple(str(x) for x in loc.get("record_ids") or ()),
            label=loc.get("label"),
            behaviour=loc.get("behaviour"),
            tool=loc.get("tool"),
            span=(int(span[0]), int(span[1])) if span else None,
        ),
        evidence=tuple(
            Evidence(name=str(e["name"]), value=e["value"], description=e.get("description", ""))
            for e in _list(d.get("evidence", []), "evidence")
        ),
        explanation=str(d.get("explanation", "")),
    )


def record_from_dict(d: Any) -> RecordScore:
    """One line of ``scores.jsonl``: id, score, flagged and ``score_<scanner>`` parts."""

    d = _obj(d, "scores line")
    parts = tuple(
        (k.removeprefix("score_"), float(v)) for k, v in d.items() if k.startswith("score_")
    )
    return RecordScore(
        record_id=str(d["id"]), score=float(d["score"]), flagged=bool(d["flagged"]), parts=parts
    )


def report_from_dict(cls: Any, data: Any, records: list[RecordScore]) -> Any:
    """The :class:`Report` (of class ``cls``) whose ``to_dict()`` is ``data``."""

    data = _obj(data, "report")
    if "run" not in data and {"summary", "entries"} <= set(data):
        raise DataFormatError(
            "This is a guard report (an audit-log summary), not a scan report; read it with "
            "dormant.guard.report_read.load_guard_report."
        )
    run = _obj(data["run"], "run")
    issues = [
        ScanIssue(scanner=str(i["scanner"]), kind=kind, message=str(i["message"]))
        for key, kind in _ISSUE_KINDS.items()
        for i in _list(data.get(key, []), key)
    ]
    return cls(
        subject=subject_from_dict(data["subject"]),
        config=_obj(run.get("config", {}), "run.config"),
        seed=int(run.get("seed", 0)),
        findings=[finding_from_dict(f) for f in _list(data["findings"], "findings")],
        issues=issues,
        records=list(records),
        extras=_obj(data.get("extras", {}), "extras"),
        started=str(run["started"]),
        finished=run.get("finished"),
        partial=bool(run.get("partial", False)),
    )


def read_record_scores(path: str | os.PathLike[str]) -> list[RecordScore]:
    """Read a ``scores.jsonl`` (one JSON object per record) into :class:`RecordScore` rows."""
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"Score file not found: {p} (no such file).")
    out = []
    try:
        with p.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        out.append(record_from_dict(json.loads(line)))
                    except (KeyError, TypeError, ValueError) as exc:
                        raise DataFormatError(
                            f"{p} line {n} is not a dormant score line ({exc}); expected "
                            "id, score, flagged."
                        ) from None
    except UnicodeDecodeError:
        raise DataFormatError(f"{p} is not UTF-8 text.") from None
    return out
