"""The scan context: what every scan needs besides its subject (seed, device, cache, progress).

It sits at the bottom of the import graph, beside :mod:`dormant.errors`, so that adapters,
subjects and scanners all take one without importing each other;
:mod:`dormant.scanners.base` re-exports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: progress(stage, advance, total): ``advance`` items done since the last call.
ProgressFn = Callable[[str, int, "int | None"], None]


def _no_progress(stage: str, advance: int, total: int | None) -> None:
    return None


@dataclass
class ScanContext:
    """What every scan needs besides its subject: seed, device, cache, progress, budget.

    Passed explicitly, never global.
    """

    seed: int = 0
    device: str = "cpu"
    cache_dir: Path | None = None
    progress: ProgressFn = _no_progress
    budget_seconds: float | None = None
    #: features of the subject computed once and shared by its scanners (``embeddings``: one
    #: row per record; ``outcomes``: one class per record), filled by the runner's preparation
    features: dict[str, Any] = field(default_factory=dict)
