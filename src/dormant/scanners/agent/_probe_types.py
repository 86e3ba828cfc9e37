"""The records of a differential probe run, and what the run reads of its scanner.

They sit below :mod:`._probe_run` (the stages), :mod:`._probe_report` (findings) and
:mod:`.probes` (the scanner), so that none of those imports another that imports it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ...findings import PriorTrigger
from ...subjects.agent import ProbeTask
from .candidates import Candidate, insert


@dataclass(frozen=True)
class Condition:
    """A candidate trigger at one position."""

    candidate: Candidate
    position: str

    def apply(self, prompt: str) -> str:
        return insert(self.candidate.trigger, prompt, self.position)

    @property
    def label(self) -> str:
        return f"{self.candidate.trigger.display!r} ({self.position})"


@dataclass
class PairTest:
    """One (condition, tag) comparison on one task set."""

    cond: Condition
    tag: str
    a: int
    n1: int
    b: int
    n0: int
    p: float
    q: float = 1.0

    @property
    def effect(self) -> float:
        return self.a / max(self.n1, 1) - self.b / max(self.n0, 1)


# a run key: (condition index or -1 for the baseline, task id, sample)
Key = tuple[int, str, int]


class ProbeSettings(Protocol):
    """The settings and helpers of :class:`~.probes.TriggerProbeScanner` a run reads."""

    @property
    def name(self) -> str: ...

    sources: tuple[str, ...]
    candidates: tuple[str, ...]
    priors: tuple[PriorTrigger, ...]
    max_candidates: int
    vocab_tail: int
    alpha: float
    min_effect: float
    max_confirm: int
    samples: int
    temperature: float
    max_tokens: int
    max_turns: int
    batch_size: int
    invert: str
    invert_targets: int
    invert_seconds: float
    scope_tools: tuple[str, ...] | None
    scope_destinations: tuple[str, ...] | None
    explain: bool
    refine: bool

    def _split(self, tasks: Sequence[ProbeTask], seed: int) -> tuple[list[ProbeTask], ...]: ...

    def _conditions(
        self, cands: Sequence[Candidate], tasks: Sequence[ProbeTask]
    ) -> list[Condition]: ...
