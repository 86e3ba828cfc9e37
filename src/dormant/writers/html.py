"""HTML writer: one self-contained page (no external CSS, scripts, fonts or images).

The page holds a summary, a findings table, the plots (trigger evidence, score distribution,
embedding projection; PNGs inlined as ``data:`` URIs, each left out with a note when its data
is missing), one section per finding (evidence, framework mappings, example record ids), the
most suspicious records, errors and skips, and the run information.

A report of a differential trigger probe (``dormant probe``) also gets a "Probe" section
(verdict, notices when the run was capped or partial, confirmation tests with rates and p/q
values, screening, baseline behaviour rates, trigger inversion) and, in each finding, its
transcripts: the same task without and with the trigger side by side, message by message with
the tool calls, the trigger highlighted and invisible characters shown as ``⟨U+XXXX⟩``, and the
behaviour tags of each run. Other reports render exactly as before.

The page is rendered from Jinja2 templates shipped in ``dormant/writers/templates/`` (one per
section type, see :data:`RENDERERS`) with autoescaping on. Record text, record ids, trigger
strings and model output come from what is under scan and may be hostile: every one of them is
HTML-escaped on output (the environment's ``finalize`` escapes with :func:`html.escape`, quotes
included, and autoescape catches anything it misses), and the page carries a
Content-Security-Policy that allows no script and no outside resource, so an escaping slip still
cannot run code or call out. The page's size does not grow with the number of records (plots
aggregate; at most ``MAX_FLAGGED_LISTED`` records are listed), and a transcript message longer
than 4,000 characters is shown by its start and end.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from .._version import __version__
from ..findings import Finding
from ..report import Report, atomic_write
from ..sections import (
    LabelAnomaly,
    ModelVerdict,
    ProbeSummary,
    Replay,
    Run,
    Transcript,
    finding_transcripts,
)
from ..triggers import describe_text
from ._common import (
    ROLES,
    TASK_FEATURE_HEAD,
    TASK_FEATURE_NOTE,
    Piece,
    clip,
    evidence_dict,
    fmt_value,
    json_default,
    mapping_titles,
    plain,
    reveal,
    split_task_features,
    task_feature_cells,
    visible_json,
)
from ._model_scan import anomaly_plot, fmt, model_scan, verdict_text
from ._plots import data_plots
from ._probe import (
    baseline_rates,
    count_rate,
    fmt_p,
    inversion,
    pair_finding,
    pct,
    probe_facts,
    probe_notices,
    probe_replay,
    probe_verdict,
)
from ._sections import present, read_section

#: Record ids shown per finding.
MAX_EXAMPLE_IDS = 20
#: Flagged records listed (highest score first).
MAX_FLAGGED_LISTED = 50

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'none'"
_CONTROL = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


def esc(value: object) -> str:
    """HTML-escape any value (quotes included)."""
    return html.escape(str(value), quote=True)


# -- filters: the few bits of markup built in Python, each escaping its input ----------------


def _code(value: object) -> Markup:
    return Markup(f"<code>{esc(str(value).translate(_CONTROL))}</code>")


def _pieces(pieces: list[Piece]) -> str:
    out = []
    for occurrence, group in itertools.groupby(pieces, key=lambda p: p.trigger):
        inner = "".join(
            f'<span class="inv" title="invisible character">{esc(p.text)}</span>'
            if p.mark
            else esc(p.text)
            for p in group
        )
        out.append(f'<mark class="trig" title="trigger">{inner}</mark>' if occurrence else inner)
    return "".join(out)


def _shown(text: str, trigger: str | None) -> Markup:
    """Untrusted text with the trigger marked and hidden characters shown, as markup.

    Built here rather than in a template: it goes inside a ``white-space: pre-wrap`` block,
    where every character of the template would show.
    """
    head, cut, tail = clip(text)
    if not cut:
        return Markup(_pieces(reveal(text, trigger)))
    return Markup(
        _pieces(reveal(head, trigger))
        + f'<span class="cut">[… {cut} characters left out …]</span>'
        + _pieces(reveal(tail, trigger))
    )


def _finalize(value: object) -> object:
    """Escape every output value as :func:`html.escape` does (``&#x27;`` for a quote)."""
    return value if isinstance(value, Markup) else Markup(esc(value))


def _user_has(run: Run, trigger: str) -> bool:
    return any(trigger in m.content for m in run.messages if m.role == "user")


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dormant.writers", "templates"),
        autoescape=jinja2.select_autoescape(("html", "j2"), default=True),
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        code=_code,
        shown=_shown,
        revealed=lambda v: plain(reveal(str(v))),
        describe=lambda v: describe_text(str(v)),
        b64=lambda b: base64.b64encode(b).decode("ascii"),
        count_rate=count_rate,
        fmt_p=fmt_p,
        pct=pct,
    )
    env.globals.update(roles=ROLES, user_has=_user_has, pair_finding=pair_finding, fmt=fmt)
    return env


def _render(name: str, **context: Any) -> Markup:
    return Markup(_env().get_template(name).render(**context))


# -- one renderer per section type -----------------------------------------------------------


def _probe(report: Report, probe: ProbeSummary, *, dpi: int) -> Markup:
    verdict = read_section(report, ModelVerdict)
    targets, triggers = inversion(probe)
    return _render(
        "probe.html.j2",
        probe=probe,
        verdict=probe_verdict(verdict, len(report.findings)),
        notices=probe_notices(verdict, probe, partial=report.partial),
        facts=probe_facts(verdict, probe),
        replay=probe_replay(read_section(report, Replay)),
        findings=report.findings,
        base=baseline_rates(probe),
        targets=targets,
        triggers=triggers,
    )


def _model(report: Report, _: LabelAnomaly, *, dpi: int) -> Markup:
    ms = model_scan(report)
    if ms is None:
        return Markup("")
    return _render(
        "model.html.j2",
        ms=ms,
        verdict=verdict_text(ms),
        examples=(ms.replay.examples if ms.replay else None) or (),
        plot=anomaly_plot(ms, dpi=dpi),
    )


#: The renderer of each section type, in the order the sections appear on the page.
RENDERERS: dict[type, Callable[..., Markup]] = {
    ProbeSummary: _probe,
    LabelAnomaly: _model,
}


@dataclass(frozen=True)
class _Example:
    """A transcript as shown: its anchor, and where it was shown first when repeated."""

    k: int
    anchor: str
    t: Transcript
    ref: str = ""
    label: str = ""


def _finding(i: int, f: Finding, seen: dict[str, tuple[str, str]]) -> Markup:
    ts = finding_transcripts(f)
    in_transcripts = {t.name for t in ts}
    desc = {e.name: e.description for e in f.evidence}
    examples = []
    for k, t in enumerate(ts, 1):
        anchor = f"finding-{i}-example-{k}"
        if t.raw in seen:
            examples.append(_Example(k, anchor, t, *seen[t.raw]))
        else:
            seen[t.raw] = (anchor, f"finding {i}, example {k}")
            examples.append(_Example(k, anchor, t))
    return _render(
        "finding.html.j2",
        i=i,
        f=f,
        max_ids=MAX_EXAMPLE_IDS,
        evidence=[
            (k, fmt_value(v), desc[k])
            for k, v in evidence_dict(f).items()
            if k not in in_transcripts
        ],
        mappings=mapping_titles(f),
        examples=examples,
        trigger=f.trigger.text if f.trigger is not None else None,
        tag=f.target or f.locator.behaviour,
    )


def render_html(report: Report, *, max_points: int = 20_000, dpi: int = 100) -> Iterator[str]:
    """Yield the page in chunks (see :func:`write_html`)."""
    config = visible_json(
        json.dumps(report.config, indent=2, ensure_ascii=False, default=json_default)
    )
    sections = [render(report, s, dpi=dpi) for render, s in present(report, RENDERERS)]
    findings, task = split_task_features(report.findings)
    seen: dict[str, tuple[str, str]] = {}
    details = [_finding(i, f, seen) for i, f in enumerate(findings, 1)]
    plots = (
        [] if model_scan(report) is not None else data_plots(report, max_points=max_points, dpi=dpi)
    )
    sev = report.max_severity()
    flagged = sorted((r for r in report.records if r.flagged), key=lambda r: -r.score)
    probe_css = read_section(report, ProbeSummary) is not None or any(
        finding_transcripts(f) for f in report.findings
    )
    yield from (
        _env()
        .get_template("report.html.j2")
        .generate(
            report=report,
            title=f"dormant report: {report.subject.name}",
            csp=Markup(_CSP),
            version=__version__,
            probe_css=probe_css,
            cards=[
                ("findings", str(len(report.findings))),
                ("max severity", sev.value if sev else "none"),
                ("flagged records", f"{len(flagged)} / {len(report.records)}"),
                ("errors", str(len(report.errors))),
                ("skips", str(len(report.skips))),
            ],
            sections=[s for s in sections if s],
            findings=findings,
            task=[task_feature_cells(f) for f in task],
            task_head=TASK_FEATURE_HEAD,
            task_note=TASK_FEATURE_NOTE,
            plots=plots,
            details=details,
            flagged=flagged,
            listed=flagged[:MAX_FLAGGED_LISTED],
            info=report.run_info(),
            config=config,
        )
    )


def to_html(report: Report, *, max_points: int = 20_000, dpi: int = 100) -> str:
    """The self-contained HTML page of a report, as one string (see :func:`write_html`)."""
    return "".join(render_html(report, max_points=max_points, dpi=dpi))


def write_html(
    report: Report,
    path: str | os.PathLike[str],
    *,
    max_points: int = 20_000,
    dpi: int = 100,
) -> Path:
    """Write the report as one self-contained HTML page, atomically.

    Plots come from a data scan's typed sections (:mod:`dormant.data_sections`):
    :attr:`Report.trigger_stats` gives the trigger-evidence chart; ``report.records`` with
    :attr:`Report.flag_threshold` the score histogram; :attr:`Report.projection` the embedding
    scatter. A plot whose section is missing or malformed is left out with a note on the page
    that says why.

    Parameters
    ----------
    report:
        The report to write.
    path:
        Destination, conventionally ``report.html``.
    max_points:
        Most points drawn in the projection scatter (flagged records are kept first).
    dpi:
        Resolution of the plots.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    TypeError
        When the report's config holds a value that is not JSON-serialisable; the destination
        is then left untouched.
    """
    with atomic_write(path) as fh:
        for chunk in render_html(report, max_points=max_points, dpi=dpi):
            fh.write(chunk)
    return Path(path)


__all__ = ["esc", "render_html", "to_html", "write_html"]
