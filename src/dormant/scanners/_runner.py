"""The runner's core: run given scanner instances on a subject under one error policy.

:mod:`dormant.runner` (``dormant.scan``) selects the registered scanners and calls
:func:`run_scanners`; the family runners (``scan_dataset``, ``scan_model``, ``probe_model``,
``ArtifactScanner.scan_path``) call it directly with their own scanners. It sits inside
``scanners`` and never imports the scanner families, so that they can import it without an
import cycle. The policy is described in :mod:`dormant.runner`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, DormantError, InputError
from ..report import Report, ScanIssue
from ..subjects.protocol import CAPABILITIES, Subject
from .base import ScanContext, Scanner, ScanResult

__all__ = ["Family", "jsonable_params", "register_family", "run_scanners"]


#: (name, result) of every scanner that returned, in run order
Results = list[tuple[str, ScanResult]]
#: (subject, scanner about to run, context) -> (context to run it with, or why it cannot run)
Prepare = Callable[[Any, Scanner, ScanContext], tuple[ScanContext, ScanIssue | None]]
Combine = Callable[[Any, Results, Report], None]


@dataclass(frozen=True)
class Family:
    """How the runner treats the subjects of some kinds: shared preparation and combination."""

    kinds: tuple[str, ...]
    combine: Combine
    prepare: Prepare | None = None


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Register the combiner (and preparation) used for ``family.kinds``."""
    for kind in family.kinds:
        _FAMILIES[kind] = family
    return family


def run_scanners(
    subject: Any,
    scanners: Sequence[Scanner],
    *,
    context: ScanContext | None = None,
    report: Report | None = None,
    combine: Combine | None = None,
) -> Report:
    """Run the given scanner instances on ``subject`` under the runner's policy.

    The family runners (``scan_dataset``, ``scan_model``, ``probe_model``,
    ``ArtifactScanner.scan_path``) call this with their own scanner settings, a report
    carrying their configuration and, where they need one, their own combiner.
    """
    ctx = context or ScanContext()
    family = _FAMILIES.get(subject_kind(subject))
    for scanner in scanners:  # every setting is checked before any work
        scanner.check_params()
    if report is None:
        report = Report(
            subject=subject.ref(),
            seed=ctx.seed,
            config={"scanners": {s.name: jsonable_params(s.get_params()) for s in scanners}},
        )
    runnable = []
    for scanner in scanners:
        reason = missing(scanner, subject)
        if reason:
            report.issues.append(ScanIssue(scanner.name, "skip", reason))
        else:
            runnable.append(scanner)
    results: Results = []
    for scanner in runnable:
        if family is not None and family.prepare is not None:
            ctx, issue = family.prepare(subject, scanner, ctx)
            if issue is not None:
                report.issues.append(issue)
                continue
        res = run_one(scanner, subject, ctx, report)
        if res is not None:
            results.append((scanner.name, res))
    (combine or (family.combine if family else combine_union))(subject, results, report)
    report.partial = report.partial or bool(report.errors)
    return report.finish()


def run_one(scanner: Scanner, subject: Any, ctx: ScanContext, report: Report) -> ScanResult | None:
    """Run one scanner; its failure becomes an ``error`` issue of ``report`` (see module)."""
    try:
        res = scanner.scan(subject, context=ctx)
    except (ConfigError, InputError):
        raise
    except DormantError as exc:
        report.issues.append(ScanIssue(scanner.name, "error", str(exc)))
        return None
    except Exception as exc:  # a failing scanner is an error record, never a crash
        report.issues.append(ScanIssue(scanner.name, "error", f"{type(exc).__name__}: {exc}"))
        return None
    report.issues.extend(res.issues)
    return res


def missing(scanner: Scanner, subject: Any) -> str | None:
    """Why ``scanner`` cannot run on ``subject`` here, or ``None`` when it can."""
    reason = scanner.missing_requirements()
    if reason:
        return reason
    needed = [r for r in scanner.requires if r in CAPABILITIES]
    if not needed:
        return None
    if not isinstance(subject, Subject):
        return (
            f"a {type(subject).__name__} is not a Subject (kind, capabilities, ref()), so it "
            f"offers none of {', '.join(needed)}"
        )
    lacking = [r for r in needed if r not in subject.capabilities]
    if lacking:
        return f"the subject lacks the capability {', '.join(lacking)}"
    return None


def combine_union(subject: Any, results: Results, report: Report) -> None:
    """Every finding of every scanner; the first scanner's value of each extras key."""
    for _, res in results:
        report.findings.extend(res.findings)
        for k, v in res.extras.items():
            report.extras.setdefault(k, v)


def subject_kind(subject: Any) -> str:
    """The subject's ``kind``, or a :class:`ConfigError` naming what a subject must have."""
    kind = getattr(subject, "kind", None)
    if not isinstance(kind, str) or not callable(getattr(subject, "ref", None)):
        raise ConfigError(
            "The 'subject' parameter must be a dormant subject (with a 'kind' and a 'ref()'): "
            "a TextDataset, a ClassifierModel, a ProbeSubject or an ArtifactSubject. "
            f"Got {type(subject).__name__} instead."
        )
    return kind


def jsonable_params(params: dict[str, Any]) -> dict[str, Any]:
    """A scanner's settings for a report's config: plain values kept, objects as ``<given>``."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if isinstance(v, int | float | str | bool | type(None)):
            out[k] = v
        elif isinstance(v, tuple | list) and all(isinstance(x, str) for x in v):
            out[k] = list(v)
        else:
            out[k] = "<given>"
    return out


def with_features(ctx: ScanContext, **features: Any) -> ScanContext:
    """A copy of ``ctx`` whose ``features`` hold ``features`` as well."""
    return dataclasses.replace(ctx, features={**ctx.features, **features})
