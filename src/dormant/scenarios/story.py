"""The story page: one self-contained HTML page per scenario, and the JSON summaries.

The page walks the stages in order, linked by the trigger, with each stage's verdict, time and
evidence and links to its reports. It is rendered with Jinja2 (autoescape on for every value:
triggers, log lines and model output are attacker-controlled text) and carries a
Content-Security-Policy that allows no script, no remote resource and no form, like the report
writer of :mod:`dormant.writers.html`. Files are written to a temporary name and renamed, so a
page or summary is either complete or absent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import require
from .runner import ScenarioResult

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'none'"
TEMPLATE = "story.html.j2"


def _env() -> Any:
    jinja2: Any = require("jinja2", "demo")
    return jinja2.Environment(
        loader=jinja2.PackageLoader("dormant.scenarios", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_story(result: ScenarioResult) -> str:
    """The scenario's page as HTML text."""
    from .._version import __version__

    return str(
        _env()
        .get_template(TEMPLATE)
        .render(r=result, d=result.to_dict(), csp=CSP, version=__version__)
    )


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, "utf-8")
    tmp.replace(path)
    return path


def write_story(result: ScenarioResult) -> tuple[Path, Path]:
    """Write ``story.html`` and ``summary.json`` into the scenario's output directory."""
    page = _write(result.out_dir / "story.html", render_story(result))
    summary = _write(
        result.out_dir / "summary.json",
        json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n",
    )
    return page, summary


def write_summary(results: Sequence[ScenarioResult], path: Path) -> Path:
    """One JSON file over several scenarios: per scenario and stage, caught and seconds."""
    rows = [
        {
            "scenario": r.name,
            "caught": r.caught,
            "trigger": r.trigger,
            "build_seconds": round(r.build_seconds, 2),
            "stages": {
                s.key: {"caught": s.caught, "seconds": round(s.seconds, 2)} for s in r.stages
            },
            "story": str(Path(r.name) / "story.html"),
        }
        for r in results
    ]
    doc = {"caught": all(r.caught for r in results), "scenarios": rows}
    return _write(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
