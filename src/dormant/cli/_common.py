"""Shared CLI helpers: progress bars, report summary, option parsing."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..findings import Severity
from ..report import Report


class Progress:
    """A ``ProgressFn`` that draws one tqdm bar per stage on stderr (only when enabled)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bars: dict[str, Any] = {}
        self._order: list[str] = []

    def __call__(self, stage: str, advance: int, total: int | None) -> None:
        if not self.enabled:
            return
        bar = self._bars.get(stage)
        if bar is None:
            from tqdm import tqdm

            for old in self._order:
                self._bars[old].close()
            bar = tqdm(total=total, desc=f"{stage:>11}", unit="rec", file=sys.stderr, leave=False)
            self._bars[stage] = bar
            self._order.append(stage)
        bar.update(advance)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def progress_enabled(flag: bool | None) -> bool:
    """``--progress``/``--no-progress``; by default only when stderr is a terminal."""
    if flag is not None:
        return flag
    return sys.stderr.isatty()


def add_report_options(p: Any) -> None:
    p.add_argument(
        "--out", "-o", default="dormant-out", help="output directory (default: %(default)s)"
    )
    p.add_argument(
        "--fail-on",
        default="high",
        metavar="SEVERITY",
        help="exit 1 when a finding is at or above this severity: info, low, medium, high, "
        "critical, or never (default: %(default)s)",
    )
    p.add_argument(
        "--formats",
        default="json,sarif,md,html,scores",
        help="report formats to write, comma-separated (default: %(default)s)",
    )
    prog = p.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None)
    prog.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--quiet", "-q", action="store_true", help="print only errors")


def parse_formats(value: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """``--formats``: a comma-separated, non-empty subset of ``allowed`` (the report formats)."""
    from ..outputs import REPORT_FORMATS

    allowed = allowed or REPORT_FORMATS
    formats = tuple(dict.fromkeys(f.strip() for f in value.split(",") if f.strip()))
    bad = [f for f in formats if f not in allowed]
    if bad or not formats:
        raise ConfigError(
            f"The '--formats' option must be a comma-separated list of "
            f"{', '.join(allowed)}. Got {value!r}"
            + (f" ({', '.join(map(repr, bad))} unknown)." if bad else ".")
        )
    return formats


def check_out_dir(value: str | os.PathLike[str], *, option: str = "--out") -> Path:
    """Check before any work that reports can be written into directory ``value``.

    Raises :class:`ConfigError` (exit 2) when it is an existing file, or when it (or the
    nearest existing folder above it, where it would be created) is not a writable directory.
    """
    out = Path(value)
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"{option} {out} exists and is not a directory; give a directory to write the "
            "reports into."
        )
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{option} {out}: {probe} is not a directory, so {out} cannot be made.")
    try:  # os.access alone is not enough: root passes it on read-only mounts
        if not os.access(probe, os.W_OK | os.X_OK):
            raise PermissionError(13, "permission denied")
        os.rmdir(tempfile.mkdtemp(prefix=".dormant-write-check-", dir=probe))
    except OSError as exc:
        raise ConfigError(
            f"{option} {out}: the directory {probe} is not writable ({exc.strerror or exc}); "
            "choose another output directory."
        ) from None
    return out


def write_recorded(
    write: Callable[[], dict[str, Any]], out: Any, report: Report, registry: Any
) -> dict[str, Any]:
    """Run ``write`` (the command's writer into ``out``), then record ``report`` in
    ``registry`` when one is given; the written paths.

    Raises
    ------
    ConfigError
        The writer failed (an ``OSError``): nothing was written, an earlier output stands.
    """
    try:
        paths = write()
    except OSError as exc:
        raise ConfigError(
            f"cannot write the outputs into {out}: {exc.strerror or exc}; nothing was "
            "written there (an earlier output is unchanged)."
        ) from None
    if registry is not None:
        registry.record_scan(report)
    return paths


def parse_fail_on(value: str) -> Severity | None:
    if value.lower() in ("never", "none"):
        return None
    return Severity.parse(value, param="--fail-on")


def summarise(report: Report, paths: dict[str, Any]) -> str:
    """A short human summary of a report and where its files are."""
    from ..writers._common import split_task_features

    lines = []
    flagged = sum(1 for r in report.records if r.flagged)
    sev = report.max_severity()
    findings, task = split_task_features(report.findings)
    lines.append(
        f"scanned {len(report.records):,} records of {report.subject.name}: "
        f"{len(findings)} finding(s), max severity {sev.value if sev else 'none'}, "
        f"{flagged:,} record(s) flagged"
        + (f", {len(task)} task feature(s) listed apart" if task else "")
        + (" (PARTIAL: a scanner failed)" if report.partial else "")
    )
    for f in findings[:5]:
        lines.append(f"  [{f.severity.value:>8}] {f.title}  (score {f.score:.2f})")
    if len(findings) > 5:
        lines.append(f"  ... and {len(findings) - 5} more in the report")
    for issue in report.issues:
        lines.append(f"  {issue.kind}: {issue.scanner}: {issue.message}")
    for key in ("html", "json", "sarif", "md", "scores", "clean", "quarantine"):
        if key in paths:
            lines.append(f"  {key:>10}: {paths[key]}")
    return "\n".join(lines)
