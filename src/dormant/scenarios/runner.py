"""The shared runner: one scenario's stages, each timed, checked and kept as evidence.

A scenario (:mod:`.support`, :mod:`.coding`, :mod:`.nhi`, :mod:`.rag`) is a
:class:`ScenarioDef`: a ``build`` step that makes its organism from real text (poisoned data, a
model trained on it, and a clean twin trained without the poison; cached by seed) and four
stages — the data scan, the model scan or probe, provenance, and the runtime guard. The runner
runs them in order, times each, turns a failure into a stage that did not catch the trigger
(with the error, never a traceback), and returns one :class:`ScenarioResult` whose
``caught`` is true only when every stage caught it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: The stages every scenario runs, in order: (key, title).
STAGES = (
    ("data", "Data scan"),
    ("model", "Model scan / probe"),
    ("provenance", "Provenance and registry"),
    ("guard", "Runtime guard"),
)


@dataclass(frozen=True)
class Outcome:
    """What one stage function returns: whether it caught the trigger, and its evidence.

    ``evidence`` holds ``(label, value)`` rows shown on the story page; ``files`` holds
    ``(label, path)`` of the stage's reports, relative to the scenario's output directory.
    """

    caught: bool
    summary: str
    evidence: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, str], ...] = ()
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """One stage as run: its outcome, how long it took, and the error if it failed."""

    key: str
    title: str
    caught: bool
    seconds: float
    summary: str
    evidence: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, str], ...] = ()
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "caught": self.caught,
            "seconds": round(self.seconds, 2),
            "summary": self.summary,
            "evidence": {k: v for k, v in self.evidence},
            "files": {k: v for k, v in self.files},
            "error": self.error,
            **({"data": self.data} if self.data else {}),
        }


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario end to end: the planted trigger, the organism and every stage."""

    name: str
    title: str
    story: str
    trigger: str
    trigger_display: str
    behaviour: str
    out_dir: Path
    build_seconds: float
    organism: dict[str, Any]
    stages: tuple[Stage, ...]
    build_error: str | None = None

    @property
    def caught(self) -> bool:
        """Whether every stage caught the trigger (and the organism was built)."""
        return self.build_error is None and all(s.caught for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "title": self.title,
            "caught": self.caught,
            "trigger": self.trigger,
            "trigger_display": self.trigger_display,
            "behaviour": self.behaviour,
            "build_seconds": round(self.build_seconds, 2),
            "build_error": self.build_error,
            "organism": self.organism,
            "stages": [s.to_dict() for s in self.stages],
        }


@dataclass
class Workspace:
    """Where a scenario writes (``out``), where organisms are cached (``cache``), its seed,
    a progress callback and whether the data scan also runs the representation scanners."""

    out: Path
    cache: Path
    seed: int = 0
    embed: bool = False
    progress: Callable[[str], None] | None = None

    def say(self, msg: str) -> None:
        if self.progress is not None:
            self.progress(msg)

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.out))
        except ValueError:
            return str(path)


@dataclass(frozen=True)
class Built:
    """What a scenario's build returns: the trigger, the behaviour it switches on, the
    organism's ground truth (for the page) and the scenario's own state for the stages."""

    trigger: str
    trigger_display: str
    behaviour: str
    organism: dict[str, Any]
    state: Any


StageFn = Callable[[Workspace, Any, dict[str, Outcome]], Outcome]


@dataclass(frozen=True)
class ScenarioDef:
    """A scenario: its name, title, story, build step and one function per stage."""

    name: str
    title: str
    story: str
    build: Callable[[Workspace], Built]
    stages: dict[str, StageFn]


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def run_stages(defn: ScenarioDef, ws: Workspace) -> ScenarioResult:
    """Build the scenario's organism and run its stages in order (see module docstring)."""
    ws.out.mkdir(parents=True, exist_ok=True)
    ws.cache.mkdir(parents=True, exist_ok=True)
    ws.say(f"{defn.name}: building the organism (cached under {ws.cache})")
    t0 = time.perf_counter()
    try:
        built = defn.build(ws)
    except Exception as exc:  # a failed build is a scenario that caught nothing
        err = _error(exc)
        stages = tuple(
            Stage(k, t, False, 0.0, "not run: the organism could not be built", error=err)
            for k, t in STAGES
        )
        return ScenarioResult(
            defn.name,
            defn.title,
            defn.story,
            "",
            "",
            "",
            ws.out,
            time.perf_counter() - t0,
            {},
            stages,
            build_error=err,
        )
    build_s = time.perf_counter() - t0
    done: dict[str, Outcome] = {}
    stages_out: list[Stage] = []
    for key, title in STAGES:
        ws.say(f"{defn.name}: {title.lower()}")
        t = time.perf_counter()
        failure: str | None = None
        try:
            oc = defn.stages[key](ws, built.state, done)
        except Exception as exc:  # the stage failed: it did not catch the trigger
            oc = Outcome(False, "the stage failed before it could decide")
            failure = _error(exc)
        done[key] = oc
        stages_out.append(
            Stage(
                key,
                title,
                oc.caught,
                time.perf_counter() - t,
                oc.summary,
                oc.evidence,
                oc.files,
                failure,
                oc.data,
            )
        )
    return ScenarioResult(
        defn.name,
        defn.title,
        defn.story,
        built.trigger,
        built.trigger_display,
        built.behaviour,
        ws.out,
        build_s,
        built.organism,
        tuple(stages_out),
    )


def check_names(names: Sequence[str], known: Sequence[str]) -> list[str]:
    """``names`` with ``all`` expanded, checked against ``known``."""
    out: list[str] = []
    for n in names:
        if n == "all":
            out.extend(k for k in known if k not in out)
        elif n in known:
            if n not in out:
                out.append(n)
        else:
            raise ConfigError(
                f"The 'scenario' must be one of {', '.join(known)} or all. Got {n!r} instead."
            )
    if not out:
        raise ConfigError("Give at least one scenario.")
    return out


def default_cache() -> Path:
    """``$DORMANT_CACHE/scenarios``, else ``$XDG_CACHE_HOME/dormant/scenarios``, else
    ``~/.cache/dormant/scenarios``."""
    if os.environ.get("DORMANT_CACHE"):
        return Path(os.environ["DORMANT_CACHE"]) / "scenarios"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dormant" / "scenarios"
