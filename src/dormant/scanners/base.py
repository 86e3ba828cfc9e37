"""Scanner base class, result type and the registry (the scan context is :mod:`dormant.context`).

Contract (checked for every registered scanner by ``tests/scanners/test_scanner_contract.py``):

- class attributes ``name``, ``subject_kinds``, ``requires``, ``category``, ``paper``,
  ``limits`` are set;
- ``__init__`` takes keyword-only settings, stores each under its own name, and does no work;
- ``get_params()`` returns those settings; ``scan`` never changes them;
- ``scan(subject, context=...)`` returns a :class:`ScanResult` whose per-record arrays have one
  entry per record of the subject, scores in ``[0, 1]`` (higher = more suspicious).
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..context import ProgressFn as ProgressFn
from ..context import ScanContext
from ..errors import ConfigError
from ..findings import Finding
from ..report import ScanIssue


@dataclass
class ScanResult:
    """Output of one scanner.

    ``record_scores`` (float, ``[0, 1]``) and ``record_flags`` (bool) are aligned with the
    subject's records in read order, or ``None`` when the scanner does not score records.
    ``extras`` holds JSON-serialisable data for the report's plots; ``issues`` what the scanner
    could not do while still returning a result (a skipped part, a model that failed mid-run).
    """

    findings: list[Finding] = field(default_factory=list)
    record_scores: np.ndarray | None = None
    record_flags: np.ndarray | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    issues: list[ScanIssue] = field(default_factory=list)


class Scanner:
    """Base class of all scanners. Subclasses set the class attributes and implement ``scan``."""

    name: ClassVar[str] = ""
    #: subject kinds this scanner accepts: ``labelled``, ``instruction``, ``classifier`` ...
    subject_kinds: ClassVar[tuple[str, ...]] = ()
    #: capabilities or extras it needs, e.g. ``("embeddings",)``
    requires: ClassVar[tuple[str, ...]] = ()
    #: key into the framework mapping table for its findings
    category: ClassVar[str] = "data-poisoning"
    #: the published method it follows
    paper: ClassVar[str] = ""
    #: known limits, stated plainly
    limits: ClassVar[str] = ""

    def get_params(self) -> dict[str, Any]:
        """The settings given to ``__init__`` (scikit-learn style)."""
        sig = inspect.signature(type(self).__init__)
        return {
            p: getattr(self, p)
            for p in sig.parameters
            if p != "self" and sig.parameters[p].kind is inspect.Parameter.KEYWORD_ONLY
        }

    def check_params(self) -> None:
        """Reject a setting whose type differs from its default's (scikit-learn's
        ``_validate_params`` idea, by the defaults in the signature): an int setting must be
        an integer, a float one a real number, a flag a bool, a text a str, a tuple a sequence.
        Value ranges stay each scanner's own check, made when ``scan`` starts.

        Raises
        ------
        ConfigError
            Naming the parameter, what was expected and what was received.
        """
        sig = inspect.signature(type(self).__init__)
        for name, p in sig.parameters.items():
            if p.kind is not inspect.Parameter.KEYWORD_ONLY or not hasattr(self, name):
                continue
            want = _expected(p.default)
            if want is None:
                continue
            ok, what = want
            value = getattr(self, name)
            if not ok(value):
                raise ConfigError(
                    f"The '{name}' parameter of {self.name} must be {what}. Got {value!r} instead."
                )

    def missing_requirements(self) -> str | None:
        """Why this scanner cannot run here (a missing extra), or ``None`` when it can."""
        return None

    def scan(self, subject: Any, *, context: ScanContext | None = None) -> ScanResult:
        raise NotImplementedError


def _expected(default: Any) -> tuple[Callable[[Any], bool], str] | None:
    """What a setting with this default must be: (test, description), or ``None`` (any)."""
    if isinstance(default, bool):
        return (lambda v: isinstance(v, bool | np.bool_)), "a bool"
    if isinstance(default, numbers.Integral):
        return (
            lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_)
        ), "an int"
    if isinstance(default, numbers.Real):
        return (
            lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_)
        ), "a number"
    if isinstance(default, str):
        return (lambda v: isinstance(v, str)), "a str"
    if isinstance(default, tuple):
        return (lambda v: isinstance(v, tuple | list | frozenset)), "a tuple"
    return None


REGISTRY: dict[str, type[Scanner]] = {}


def register(cls: type[Scanner]) -> type[Scanner]:
    """Class decorator: add a scanner to :data:`REGISTRY` under ``cls.name``."""
    if not cls.name:
        raise ConfigError(f"Scanner {cls.__name__} has no name.")
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ConfigError(f"Scanner name {cls.name!r} is registered twice.")
    REGISTRY[cls.name] = cls
    return cls
