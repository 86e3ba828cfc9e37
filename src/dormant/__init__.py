"""dormant — find, prove and contain backdoor triggers in machine-learning systems."""

from __future__ import annotations

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
from .findings import Evidence, Finding, Locator, Severity, SubjectRef
from .report import RecordScore, Report, ScanIssue
from .triggers import Position, Trigger, TriggerKind

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
]
