"""Prior triggers: what one stage found, typed, for the next stage to try first.

A data scan finds triggers in training data; a model scan then replays them on the classifier,
and a probe tries them on the chat model. Both take them as a list of
:class:`~dormant.findings.PriorTrigger` built here by :func:`prior_triggers`, from a
:class:`~dormant.report.Report`, a ``report.json`` path (read by :func:`dormant.load_report`)
or, for callers written before reports could be read back, the parsed JSON dict. The CLI's
``--data-report`` goes through :func:`prior_triggers_from_path`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError, DataFormatError
from .findings import PriorTrigger, Severity
from .report import Report, load_report

__all__ = ["PriorSource", "check_priors", "prior_triggers", "prior_triggers_from_path"]

#: what :func:`prior_triggers` reads
PriorSource = Report | str | os.PathLike[str] | Mapping[str, Any] | Sequence[PriorTrigger]


def prior_triggers(
    source: PriorSource | None, *, min_severity: Severity | str | None = None
) -> list[PriorTrigger]:
    """The triggers of an earlier report, in its order, as typed :class:`PriorTrigger` records.

    Parameters
    ----------
    source:
        A :class:`Report`, the path of a ``report.json`` (read with :func:`dormant.load_report`),
        a parsed ``report.json`` dict (only each finding's ``trigger``, ``target``, ``scanner``
        and ``severity`` are read, so a hand-written ``{"findings": [{"trigger": {"text": ...}}]}``
        works), a sequence of :class:`PriorTrigger` (returned as a list), or ``None`` (none).
    min_severity:
        Keep only findings at least this severe (e.g. ``"medium"``: a data scan's task features,
        reported as ``info``, are natural by its own verdict).

    Returns
    -------
    list of PriorTrigger
        One per finding that names a trigger with a non-empty text.

    Raises
    ------
    InputNotFoundError, DataFormatError
        A path that is missing or not a dormant report; a dict without a ``findings`` list.
    ConfigError
        ``source`` of another type, or an unknown ``min_severity``.
    """
    floor = _severity(min_severity, "min_severity") if min_severity is not None else None
    if source is None:
        out: list[PriorTrigger] = []
    elif isinstance(source, Report):
        out = [
            PriorTrigger(f.trigger.text, f.target, f.scanner, f.severity, f.trigger.kind.value)
            for f in source.findings
            if f.trigger is not None and f.trigger.text
        ]
    elif isinstance(source, str | os.PathLike):
        out = prior_triggers(load_report(source))
    elif isinstance(source, Mapping):
        out = _from_dict(source)
    elif isinstance(source, Sequence) and all(isinstance(p, PriorTrigger) for p in source):
        out = [p for p in source if isinstance(p, PriorTrigger)]
    else:
        raise ConfigError(
            "Prior triggers come from a Report, a report.json path, a parsed report dict or a "
            f"list of PriorTrigger. Got {type(source).__name__} instead."
        )
    return [p for p in out if floor is None or p.severity >= floor]


def prior_triggers_from_path(
    path: str | os.PathLike[str] | None, *, what: str = "--data-report"
) -> list[PriorTrigger]:
    """``--data-report``: the triggers of a ``report.json`` read by :func:`dormant.load_report`.

    Raises
    ------
    InputNotFoundError, DataFormatError
        The file is missing or is not a dormant report (the message names ``what``).
    """
    if not path:
        return []
    try:
        return prior_triggers(load_report(Path(path)))
    except DataFormatError as exc:
        raise DataFormatError(f"{what} {path}: {exc}") from None


def check_priors(value: object, param: str, owner: str) -> tuple[PriorTrigger, ...]:
    """``value`` as a tuple of :class:`PriorTrigger`, for a scanner setting.

    Raises
    ------
    ConfigError
        ``value`` is not a list or tuple of :class:`PriorTrigger` (names ``param``).
    """
    if not isinstance(value, list | tuple) or not all(isinstance(p, PriorTrigger) for p in value):
        raise ConfigError(
            f"The {param!r} parameter of {owner} must be a tuple of PriorTrigger (see "
            f"dormant.priors.prior_triggers). Got {type(value).__name__} instead."
        )
    return tuple(value)


def _severity(value: object, where: str) -> Severity:
    try:
        return Severity(value)
    except ValueError:
        raise ConfigError(
            f"The {where!r} parameter must be one of "
            f"{', '.join(s.value for s in Severity)}. Got {value!r} instead."
        ) from None


def _from_dict(report: Mapping[str, Any]) -> list[PriorTrigger]:
    findings = report.get("findings", [])
    if not isinstance(findings, list):
        raise DataFormatError(
            "A data report must be an object with a 'findings' list; its 'findings' is a "
            f"{type(findings).__name__}."
        )
    return list(_dict_findings(findings))


def _dict_findings(findings: Iterable[Any]) -> Iterable[PriorTrigger]:
    for f in findings:
        trig = f.get("trigger") if isinstance(f, dict) else None
        if not isinstance(trig, dict):
            continue
        text = trig.get("text")
        if not isinstance(text, str) or not text:
            continue
        target = f.get("target")
        sev = f.get("severity")
        kind = trig.get("kind")
        yield PriorTrigger(
            text,
            target if isinstance(target, str) else None,
            str(f.get("scanner") or ""),
            Severity(sev) if sev in {s.value for s in Severity} else Severity.MEDIUM,
            kind if isinstance(kind, str) else "",
        )
