"""The one skeleton of the ``scan model`` and ``probe`` commands, and their shared parts.

Every scan and probe command ends the same way (:func:`finish`): the report's config records
the CLI settings, the reports are written, the verdict and summary printed, the report is
recorded in the registry given with ``--registry``, and the exit code is
:meth:`~dormant.report.Report.exit_code` — the one rule for every command (0 clean, 1 a
finding at or above ``--fail-on``, 3 a scanner failed and nothing reached ``--fail-on``).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..findings import Severity
from ..report import Report
from ._common import summarise


def load_data_report(path: str | None) -> list[Any]:
    """``--data-report``: the triggers of a ``report.json`` (read by ``dormant.load_report``),
    as typed :class:`~dormant.findings.PriorTrigger` records (``[]`` without one).

    Raises
    ------
    InputNotFoundError, DataFormatError
        Not a file, or not a dormant report.
    """
    from ..priors import prior_triggers_from_path

    return list(prior_triggers_from_path(path, what="--data-report"))


def write_reports(report: Report, out: str, formats: tuple[str, ...]) -> dict[str, Any]:
    """Write the report formats (``scores`` has no meaning without records: dropped)."""
    from pathlib import Path

    formats = tuple(f for f in formats if f != "scores") or ("json",)
    try:
        from ..writers import write_all
    except ImportError:  # writers not installed in a trimmed build: JSON only
        return {"json": report.write_json(Path(out) / "report.json")}
    return dict(write_all(report, out, formats=formats))


def verdict_line(report: Report) -> str:
    """One line: the verdict of a model scan or a probe, and whether it was capped."""
    if "probe" in report.extras or "tasks" in report.config:
        return _probe_verdict(report)
    return _model_verdict(report)


def finish(
    args: argparse.Namespace,
    report: Report,
    formats: tuple[str, ...],
    fail_on: Severity | None,
    registry: Any = None,
    *,
    failed: str = "scanner {scanner} failed: {message}",
) -> int:
    """Write, print, record and return the exit code (see the module docstring)."""
    from . import error

    report.config["cli"] = {"fail_on": args.fail_on, "formats": list(formats)}
    paths = write_reports(report, args.out, formats)
    if registry is not None:
        registry.record_scan(report)
    if not args.quiet:
        print(verdict_line(report))
        print("\n".join(summarise(report, paths).splitlines()[1:]))
    for issue in report.errors:
        error(failed.format(scanner=issue.scanner, message=issue.message))
    return report.exit_code(fail_on)


def _model_verdict(report: Report) -> str:
    v = report.extras.get("model_verdict")
    if not v:
        return "no verdict (every scanner failed; see errors)"
    line = f"P(backdoored) = {v['probability']:.3f}"
    if v["backdoored"]:
        r = report.extras.get("replay", {})
        line += (
            f": trigger {r.get('trigger')!r} at {r.get('position')} -> label "
            f"{r.get('target')!r}, flips {r.get('flip_rate', 0):.0%} of {r.get('n')} held-out "
            "clean examples"
        )
    else:
        line += ": no backdoor evidence"
    if v.get("capped"):
        line += " (CAPPED by --budget-seconds: best verdict so far)"
    feats = [f for f in report.extras.get("task_features") or [] if f.get("flip_rate", 0) >= 0.5]
    if feats:
        line += (
            "\ntask features (a class's own words in the clean data; not findings): "
            + ", ".join(
                f"{f['feature']!r} -> {f['label']!r} flips {f['flip_rate']:.0%}" for f in feats
            )
        )
    return line


def _probe_verdict(report: Report) -> str:
    v = report.extras.get("model_verdict")
    if not v:
        return "no verdict (the probe failed before it had results; see errors)"
    line = f"P(trigger switches behaviour) = {v['probability']:.3f}"
    top = report.findings[0] if report.findings else None
    if top is not None:
        rate = top.evidence_value("replay_rate")
        rep = (
            f"replays on {rate:.0%} of {top.evidence_value('replay_n')} held-out runs"
            if isinstance(rate, float) and rate >= 0
            else "not replayed"
        )
        line += (
            f": trigger {v['trigger']!r} ({v['position']}) -> {v['target']!r}, "
            f"{top.evidence_value('rate_with_trigger'):.0%} with vs "
            f"{top.evidence_value('rate_without_trigger'):.0%} without, {rep}"
        )
    else:
        line += ": no condition switches the model's behaviour"
    if v.get("capped"):
        line += " (CAPPED by --budget-seconds: best result so far)"
    if report.partial:
        line += " (PARTIAL: the model failed mid-run)"
    return line
