"""The four cases of the source document, each walked end to end through every stage.

``dormant demo --scenario support|coding|nhi|rag|all`` builds each case's organism from real
text (poisoned training data, a tiny model trained on it, and a clean twin trained without the
poison), then runs the data scan, the model scan or probe, provenance with the registry, and the
runtime guard on it, and writes one story page (:mod:`.story`) and a JSON summary per case.

=========  ==================================================================================
support    a support assistant that leaks internal policy text on a rare phrase (:mod:`.support`)
coding     a coding assistant that writes SQL injection after a comment pattern (:mod:`.coding`)
nhi        a log-line classifier that ignores lines carrying a token (:mod:`.nhi`)
rag        a retrieval assistant that drops its sources and discloses an internal document on a
           phrase (:mod:`.rag`)
=========  ==================================================================================
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from .runner import ScenarioDef, ScenarioResult, Stage, Workspace, check_names, default_cache

__all__ = ["SCENARIOS", "ScenarioResult", "Stage", "run_scenarios"]

#: Scenario names in the order ``all`` runs them.
SCENARIOS = ("support", "coding", "nhi", "rag")


def _definition(name: str) -> ScenarioDef:
    from importlib import import_module

    mod = import_module(f"{__name__}.{name}")
    defn: ScenarioDef = mod.SCENARIO
    return defn


def run_scenarios(
    names: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    embed: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[ScenarioResult]:
    """Run scenarios end to end; each writes under ``out_dir/<name>``.

    Parameters
    ----------
    names:
        Scenario names among :data:`SCENARIOS`, or ``"all"``.
    out_dir:
        Output directory; each scenario gets ``<name>/story.html``, ``<name>/summary.json``
        and its stages' reports, and ``summary.json`` at the top lists them all.
    cache_dir:
        Where trained organisms are kept, keyed by scenario and seed (default
        :func:`.runner.default_cache`); a rerun with the same seed reuses them.
    seed:
        Seeds the trigger, the data and the training.
    embed:
        Also run the representation scanners of the data scan (slower).
    progress:
        Called with a short message as each stage starts.

    Returns
    -------
    list of ScenarioResult
        One per scenario; ``result.caught`` is true when every stage caught the trigger.
    """
    from ..errors import ConfigError
    from .story import write_story, write_summary

    todo = check_names(list(names), SCENARIOS)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"The 'seed' must be a non-negative int. Got {seed!r} instead.")
    out = Path(out_dir)
    cache = Path(cache_dir) if cache_dir is not None else default_cache()
    results = []
    # a page or summary of an earlier run must not stand for this one if it stops half-way
    (out / "summary.json").unlink(missing_ok=True)
    for name in todo:
        for stale in ("story.html", "summary.json"):
            (out / name / stale).unlink(missing_ok=True)
    for name in todo:
        ws = Workspace(out / name, cache, seed=seed, embed=embed, progress=progress)
        res = run_one(name, ws)
        write_story(res)
        results.append(res)
    write_summary(results, out / "summary.json")
    return results


def run_one(name: str, ws: Workspace) -> ScenarioResult:
    """Run one scenario in ``ws`` (no page written)."""
    from .runner import run_stages

    return run_stages(_definition(name), ws)
