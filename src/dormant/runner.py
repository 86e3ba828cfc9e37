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

from collections.abc import Sequence
from typing import Any

from .errors import ConfigError
from .report import Report
from .scanners._runner import (
    CAPABILITIES,
    Combine,
    Family,
    Prepare,
    Results,
    combine_union,
    jsonable_params,
    missing,
    register_family,
    run_one,
    run_scanners,
    subject_kind,
    with_features,
)
from .scanners.base import REGISTRY, ScanContext, Scanner
from .scanners.catalog import _load_builtin as _load_families

__all__ = [
    "CAPABILITIES",
    "Combine",
    "Family",
    "Prepare",
    "Results",
    "combine_union",
    "jsonable_params",
    "missing",
    "register_family",
    "run_one",
    "run_scanners",
    "scan",
    "subject_kind",
    "with_features",
]


def _load_builtin() -> None:
    """Import every built-in scanner so it registers itself: the scanner families, and the
    artifact scanner (it lives in :mod:`dormant.provenance`, a layer the families never
    import)."""
    _load_families()
    from .provenance import artifact  # noqa: F401


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
