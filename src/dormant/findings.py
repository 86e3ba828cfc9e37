"""Finding: one typed, frozen result of a scanner, with its evidence and framework mappings.

Score convention (documented once, used everywhere): ``score`` is in ``[0, 1]`` and **higher
means more suspicious**. Severity is derived by the scanner from the score and the kind of
evidence; ``Severity`` values are ordered so that CI gates can compare them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from importlib import resources
from typing import Any

from .errors import ConfigError
from .triggers import Trigger


class Severity(str, Enum):
    """Ordered severities: ``info < low < medium < high < critical``."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Position in the order, 0 for ``info``."""
        return _ORDER.index(self)

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    @classmethod
    def parse(cls, value: str | Severity, *, param: str = "severity") -> Severity:
        """Parse a severity name, with an error that lists the accepted values."""
        if isinstance(value, Severity):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ConfigError(
                f"The '{param}' parameter must be one of {names}. Got {value!r} instead."
            ) from None


_ORDER = [Severity.INFO, Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


@dataclass(frozen=True)
class SubjectRef:
    """What was examined: kind (dataset, model, agent, artifact), a name and its content digest."""

    kind: str
    name: str
    digest: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "digest": self.digest}


@dataclass(frozen=True)
class Locator:
    """Where the finding points: records, target label or behaviour, a tool, a token span."""

    record_ids: tuple[str, ...] = ()
    label: str | None = None
    behaviour: str | None = None
    tool: str | None = None
    span: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_ids": list(self.record_ids),
            "label": self.label,
            "behaviour": self.behaviour,
            "tool": self.tool,
            "span": list(self.span) if self.span else None,
        }


@dataclass(frozen=True)
class Evidence:
    """One named, typed piece of evidence (a count, a rate, a p-value, an example)."""

    name: str
    value: float | int | str | bool
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "description": self.description}


@dataclass(frozen=True)
class Finding:
    """One result of a scanner.

    Parameters
    ----------
    scanner:
        Registered name of the scanner that produced it.
    subject:
        The :class:`SubjectRef` examined.
    title:
        One-line human summary.
    severity:
        :class:`Severity`.
    score:
        Suspicion in ``[0, 1]``; higher is more suspicious.
    category:
        Key into the mapping table (``data-poisoning``, ``spurious-correlation`` ...).
    trigger:
        The recovered or candidate :class:`~dormant.triggers.Trigger`, if any.
    target:
        Target label (``label:X``) or behaviour tag the trigger switches to.
    locator:
        Where it points.
    evidence:
        Named evidence values.
    explanation:
        Why the scanner believes it (planted vs accidental, for example).
    """

    scanner: str
    subject: SubjectRef
    title: str
    severity: Severity
    score: float
    category: str
    trigger: Trigger | None = None
    target: str | None = None
    locator: Locator = field(default_factory=Locator)
    evidence: tuple[Evidence, ...] = ()
    explanation: str = ""

    def __post_init__(self) -> None:
        if not (0.0 <= float(self.score) <= 1.0):
            raise ConfigError(f"Finding.score must be in [0, 1]. Got {self.score!r} instead.")
        object.__setattr__(self, "score", float(self.score))
        object.__setattr__(self, "severity", Severity.parse(self.severity))
        if self.category not in mapping_table()["categories"]:
            known = ", ".join(sorted(mapping_table()["categories"]))
            raise ConfigError(
                f"Finding.category must be one of {known}. Got {self.category!r} instead."
            )

    @property
    def mappings(self) -> tuple[str, ...]:
        """Framework ids for this finding's category, namespaced by edition."""
        return tuple(mapping_table()["categories"][self.category])

    def evidence_value(self, name: str) -> float | int | str | bool | None:
        """The value of the named evidence item, or ``None``."""
        for ev in self.evidence:
            if ev.name == name:
                return ev.value
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the schema of findings in ``report.json``)."""
        return {
            "scanner": self.scanner,
            "subject": self.subject.to_dict(),
            "title": self.title,
            "severity": self.severity.value,
            "score": round(self.score, 6),
            "category": self.category,
            "trigger": self.trigger.to_dict() if self.trigger else None,
            "target": self.target,
            "locator": self.locator.to_dict(),
            "evidence": [e.to_dict() for e in self.evidence],
            "explanation": self.explanation,
            "mappings": list(self.mappings),
        }


@lru_cache(maxsize=1)
def mapping_table() -> dict[str, Any]:
    """The framework mapping table shipped as ``dormant/data/mappings.json``."""
    text = resources.files("dormant").joinpath("data/mappings.json").read_text("utf-8")
    table: dict[str, Any] = json.loads(text)
    return table


def describe_mapping(ref: str) -> str:
    """Title of a namespaced framework id such as ``owasp-llm-2025:LLM04``."""
    ns, _, ident = ref.partition(":")
    fw = mapping_table()["frameworks"].get(ns)
    if fw is None or ident not in fw["catalogue"]:
        raise ConfigError(f"Unknown framework reference {ref!r}.")
    return str(fw["catalogue"][ident])


@dataclass(frozen=True)
class PriorTrigger:
    """A trigger an earlier stage found, handed to the next one to try first.

    A model scan replays it on clean inputs; a probe tries it on the chat model's tasks. Built
    from a data report by :func:`dormant.priors.prior_triggers`.

    Attributes
    ----------
    text:
        The trigger text as the earlier scan reported it.
    target:
        What it switched to there: ``label:X`` or a behaviour tag (``tool:send_email``), or
        ``None`` when the finding named none.
    source:
        Where it comes from: the scanner that found it (``trigger-mining``) or a file.
    severity:
        The earlier finding's :class:`Severity`.
    kind:
        The :class:`~dormant.triggers.TriggerKind` value of the finding's trigger (``token``,
        ``phrase``, ``homoglyph`` ...), or ``""`` when unknown.
    """

    text: str
    target: str | None = None
    source: str = ""
    severity: Severity = Severity.MEDIUM
    kind: str = ""

    @property
    def label(self) -> str | None:
        """The target label of a ``label:X`` target, else ``None``."""
        t = self.target
        return t[6:] if t is not None and t.startswith("label:") else None
