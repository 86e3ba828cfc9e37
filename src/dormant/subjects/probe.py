"""The agent subject: a chat model, the tasks it is given and its sandbox of honeytoken tools.

What the differential trigger probe (:mod:`dormant.scanners.agent.probes`) examines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .agent import ChatModel, ProbeTask
from .sandbox import Sandbox

__all__ = ["ProbeSubject"]


@dataclass
class ProbeSubject:
    """What the probe examines: a chat model, the tasks it is given and its tool sandbox."""

    model: ChatModel
    tasks: Sequence[ProbeTask]
    tools: Sandbox = field(default_factory=Sandbox)
    kind: str = "agent"

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(self.model.capabilities)

    def ref(self) -> Any:
        return self.model.ref()
