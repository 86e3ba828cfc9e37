"""One scan runner for every subject: ``dormant.scan(subject) -> Report``.

The runner is the only place that turns scanners into a :class:`~dormant.report.Report`:

1. **Select.** The registered scanners whose ``subject_kinds`` include the subject's ``kind``
   (or the scanners given, by name or as instances).
2. **Skip.** A scanner whose requirements are missing — an extra that is not installed
   (:meth:`~dormant.scanners.base.Scanner.missing_requirements`) or a capability the subject
   lacks (``proba``, ``gradients``, ``generate`` ... in ``subject.capabilities``) — becomes a
   ``skip`` entry of the report with the reason, and the others run.
3. **Prepare.** Before each scanner, the subject's family may compute features shared by its
   scanners once, into ``context.features`` (the data family embeds the records when the
   first scanner that needs embeddings is about to run); a preparation that fails is that
   scanner's skip or error.
4. **Run, with one error policy.** Bad settings and unusable input (:class:`ConfigError`,
   :class:`InputError`) are the caller's to fix: they are raised before a report is returned
   (CLI exit code 2). Every other failure of a scanner — a :class:`DormantError` or an
   unexpected exception alike — becomes an ``error`` entry (:class:`ScanIssue`) of the report,
   which is then ``partial``; an unexpected exception keeps its type name and message, never a
   traceback. The other scanners still run.
5. **Combine.** The family's combiner merges the results: the data family fuses per-record
   scores and votes, the model family keeps the strongest verdict, the others take the union.

Families register themselves (:func:`register_family`) from the modules that define their
scanners; the CI exit code of every report is :meth:`Report.exit_code`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, DormantError, InputError
from .report import Report, ScanIssue
from .scanners.base import REGISTRY, ScanContext, Scanner, ScanResult, _load_builtin

__all__ = ["Family", "jsonable_params", "register_family", "run_scanners", "scan"]

#: subject capabilities a scanner may require (other ``requires`` entries name extras)
CAPABILITIES = frozenset({"proba", "gradients", "embeddings", "generate", "tools", "logits"})

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


def scan(
    subject: Any,
    *,
    scanners: Sequence[str | Scanner] | None = None,
    context: ScanContext | None = None,
) -> Report:
    """Run the scanners for ``subject`` and return one finished :class:`Report`.

    Parameters
    ----------
    subject:
        Anything with a ``kind`` and a ``ref()`` (a :class:`~dormant.subjects.TextDataset`,
        a :class:`~dormant.subjects.model.ClassifierModel` with clean data, a
        :class:`~dormant.scanners.agent.probes.ProbeSubject`, an
        :class:`~dormant.provenance.artifact.ArtifactSubject`).
    scanners:
        Registered scanner names or scanner instances; default: every registered scanner
        that accepts the subject's kind.
    context:
        Seed, device, progress and budget, passed to every scanner.

    Returns
    -------
    Report
        Findings of every scanner that ran, the skipped ones with the reason, the failed ones
        as errors (the report is then ``partial``).

    Raises
    ------
    ConfigError
        An unknown scanner name, a scanner that does not accept the subject's kind, or a bad
        setting of a scanner.
    InputError
        The subject cannot be scanned (malformed data, one class, ...).
    """
    _load_builtin()
    kind = subject_kind(subject)
    chosen = _select(kind, scanners)
    return run_scanners(subject, chosen, context=context)


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
    _load_builtin()
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
    caps = getattr(subject, "capabilities", None)
    if caps is None:
        return None
    lacking = [r for r in scanner.requires if r in CAPABILITIES and r not in caps]
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


def _select(kind: str, scanners: Sequence[str | Scanner] | None) -> list[Scanner]:
    if scanners is None:
        chosen = [cls() for name, cls in sorted(REGISTRY.items()) if kind in cls.subject_kinds]
        if not chosen:
            raise ConfigError(f"No registered scanner accepts subjects of kind {kind!r}.")
        return chosen
    if isinstance(scanners, str):
        raise ConfigError(
            f"The 'scanners' parameter must be a list of scanner names. Got {scanners!r}."
        )
    out: list[Scanner] = []
    for item in scanners:
        if isinstance(item, Scanner):
            scanner = item
        elif isinstance(item, str) and item in REGISTRY:
            scanner = REGISTRY[item]()
        else:
            raise ConfigError(
                f"Unknown scanner {item!r}; registered: {', '.join(sorted(REGISTRY))}."
            )
        if kind not in scanner.subject_kinds:
            raise ConfigError(
                f"Scanner {scanner.name!r} scans {', '.join(scanner.subject_kinds)} subjects. "
                f"Got a {kind!r} subject instead."
            )
        out.append(scanner)
    return out


def with_features(ctx: ScanContext, **features: Any) -> ScanContext:
    """A copy of ``ctx`` whose ``features`` hold ``features`` as well."""
    return dataclasses.replace(ctx, features={**ctx.features, **features})
