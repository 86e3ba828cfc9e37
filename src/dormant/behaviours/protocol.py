"""The one contract every behaviour detector meets: :class:`Detector`, and its hit record.

The data scan, the agent probe and the runtime guard all read outputs through objects of this
shape, so a detector written once (a new secret format, a new unsafe-advice family) is seen by
all three. :class:`Detector` is a :class:`typing.Protocol` (PEP 544), checkable at run time:
any object with ``name``, ``reads``, ``families`` and ``detect(text) -> list[BehaviourHit]``
qualifies, a subclass of :class:`BehaviourDetector` or not. :class:`BehaviourDetector` and
:class:`RuleDetector` are conveniences for the built-ins (one lower-casing of the text shared by
all detectors; precompiled rule tables gated by substring prefilters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, runtime_checkable

from ..errors import InputError
from .rule import Rule, run_rules

__all__ = ["READS", "BehaviourDetector", "BehaviourHit", "Detector", "Reads", "RuleDetector"]

#: What a detector reads: ``"text"`` — any output text (a response, a generation, tool-call
#: arguments); ``"tool-calls"`` — tool calls written as JSON text (OpenAI ``tool_calls``,
#: ``<tool_call>`` markup), as an API returns them or a model writes them.
Reads = Literal["text", "tool-calls"]
READS: tuple[str, ...] = ("text", "tool-calls")


@dataclass(frozen=True)
class BehaviourHit:
    """One behaviour found in an output: its tag, character span and a short detail.

    ``text[span[0]:span[1]]`` is the matched substring. ``detail`` never repeats secret
    material (it says what kind and how long, not the value).
    """

    tag: str
    span: tuple[int, int]
    detail: str = ""


@runtime_checkable
class Detector(Protocol):
    """What the data scan, the probe and the guard call: one output text in, typed hits out.

    Attributes
    ----------
    name:
        Unique name in the registry (:func:`dormant.behaviours.get_detector`).
    reads:
        The kind of output it reads (:data:`Reads`).
    families:
        The tag families it emits (``"egress"``, ``"secret"`` ...); each is a key of
        :data:`dormant.behaviours.BEHAVIOUR_CATEGORY`.
    """

    @property
    def name(self) -> str: ...

    @property
    def reads(self) -> str: ...

    @property
    def families(self) -> tuple[str, ...]: ...

    def detect(self, text: str) -> list[BehaviourHit]:
        """All hits in ``text``, in order of position."""
        ...


class BehaviourDetector:
    """Base class of the built-in detectors (a :class:`Detector`).

    Subclasses set ``name``, ``description``, ``reads`` and ``families`` and override
    :meth:`detect`, or, to share the lowercased text that :func:`behaviour_tags` computes once
    for all detectors, ``_detect(text, lowered)``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    reads: ClassVar[str] = "text"
    families: ClassVar[tuple[str, ...]] = ()

    def detect(self, text: str) -> list[BehaviourHit]:
        """All hits in ``text``, in order of position."""
        if not isinstance(text, str):
            raise InputError(
                f"The 'text' parameter of {type(self).__name__}.detect must be a str. "
                f"Got {type(text).__name__} instead."
            )
        return self._detect(text, text.lower())

    def _detect(self, text: str, lowered: str) -> list[BehaviourHit]:
        raise NotImplementedError(f"{type(self).__name__} must implement detect(text)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RuleDetector(BehaviourDetector):
    """Runs a table of precompiled rules, each gated by cheap substring prefilters."""

    rules: ClassVar[tuple[Rule, ...]] = ()

    def _detect(self, text: str, lowered: str) -> list[BehaviourHit]:
        hits = [
            BehaviourHit(rule.tag, m.span(), self._detail(m))
            for rule, m in run_rules(self.rules, text, lowered)
        ]
        hits.sort(key=lambda h: h.span)
        return hits

    def _detail(self, m: re.Match[str]) -> str:
        return m.group(0)[:80]


def run_detector(det: Detector, text: str, lowered: str) -> list[BehaviourHit]:
    """``det``'s hits, sharing ``lowered`` with a built-in that only overrides ``_detect``."""
    if isinstance(det, BehaviourDetector) and type(det).detect is BehaviourDetector.detect:
        return det._detect(text, lowered)
    return det.detect(text)
