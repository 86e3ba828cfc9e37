"""dormant — find, prove and contain backdoor triggers in machine-learning systems."""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._version import __version__
from .errors import (
    ConfigError,
    DataFormatError,
    DataValidationError,
    DormantError,
    EndpointError,
    InputError,
    InputNotFoundError,
    MissingDependencyError,
    ProvenanceError,
    ScanError,
)
from .findings import Evidence, Finding, Locator, PriorTrigger, Severity, SubjectRef
from .priors import prior_triggers
from .report import RecordScore, Report, ScanIssue, load_report
from .triggers import Position, Trigger, TriggerKind

if _TYPE_CHECKING:
    from collections.abc import Sequence

    from .scanners.base import ScanContext, Scanner


def scan(
    subject: object,
    *,
    scanners: Sequence[str | Scanner] | None = None,
    context: ScanContext | None = None,
) -> Report:
    """Run the registered scanners for ``subject``; one :class:`Report`.

    See :func:`dormant.runner.scan` (imported on first use, so ``import dormant`` stays light).
    """
    from .runner import scan as run

    return run(subject, scanners=scanners, context=context)


__all__ = [
    "ConfigError",
    "DataFormatError",
    "DataValidationError",
    "DormantError",
    "EndpointError",
    "Evidence",
    "Finding",
    "InputError",
    "InputNotFoundError",
    "Locator",
    "MissingDependencyError",
    "Position",
    "PriorTrigger",
    "ProvenanceError",
    "RecordScore",
    "Report",
    "ScanError",
    "ScanIssue",
    "Severity",
    "SubjectRef",
    "Trigger",
    "TriggerKind",
    "__version__",
    "load_report",
    "prior_triggers",
    "scan",
]
