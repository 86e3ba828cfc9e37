"""Shared test fixtures. Keep them small and generic: anything expensive (a scan, a trained
model) belongs in the test module that needs it, behind a session- or module-scoped fixture."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest


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
