"""HTML writer: one self-contained page (no external CSS, scripts, fonts or images).

The page holds a summary, a findings table, the plots (trigger evidence, score distribution,
embedding projection; PNGs inlined as ``data:`` URIs, each left out with a note when its data
is missing), one section per finding (evidence, framework mappings, example record ids), the
most suspicious records, errors and skips, and the run information.

Record text, record ids and trigger strings come from the data under scan and may be hostile:
every one of them is HTML-escaped, and the page carries a Content-Security-Policy that allows
no script and no outside resource, so an escaping slip still cannot run code or call out.
The page's size does not grow with the number of records (plots aggregate; at most
``MAX_FLAGGED_LISTED`` records are listed).
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Iterator
from pathlib import Path

from .. import __version__
from ..findings import Finding
from ..report import Report, atomic_write
from ._common import evidence_dict, fmt_value, json_default, mapping_titles
from ._plots import Plot, projection_plot, score_plot, trigger_plot

#: Record ids shown per finding.
MAX_EXAMPLE_IDS = 20
#: Flagged records listed (highest score first).
MAX_FLAGGED_LISTED = 50

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'none'"
_CONTROL = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})

_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2329;
background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:1.5rem}
h1{font-size:1.6rem;margin:.2rem 0}h2{border-bottom:1px solid #d5d9de;padding-bottom:.2rem;
margin-top:2rem}
.muted{color:#5b6670}.note{color:#5b6670;font-style:italic}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{background:#fff;border:1px solid #d5d9de;border-radius:6px;padding:.6rem 1rem;min-width:8rem}
.card b{display:block;font-size:1.5rem}
table{border-collapse:collapse;width:100%;background:#fff;margin:.5rem 0}
th,td{border:1px solid #d5d9de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#eef1f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{background:#eef1f4;padding:0 .25rem;border-radius:3px;word-break:break-all}
pre{background:#fff;border:1px solid #d5d9de;padding:.6rem;overflow:auto}
article{background:#fff;border:1px solid #d5d9de;border-radius:6px;padding:.4rem 1rem;
margin:1rem 0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}
dd{margin:0}
figure{background:#fff;border:1px solid #d5d9de;border-radius:6px;margin:1rem 0;padding:.5rem}
figure img{max-width:100%;height:auto}
.sev{display:inline-block;border-radius:3px;padding:0 .4rem;color:#fff;font-size:.85em}
.sev-critical{background:#7b1113}.sev-high{background:#c0392b}.sev-medium{background:#d68910}
.sev-low{background:#2c6e9b}.sev-info{background:#7f8c8d}
"""


def esc(value: object) -> str:
    """HTML-escape any value (quotes included)."""
    return html.escape(str(value), quote=True)


def _code(value: object) -> str:
    return f"<code>{esc(str(value).translate(_CONTROL))}</code>"


def _sev(value: str) -> str:
    return f'<span class="sev sev-{esc(value)}">{esc(value)}</span>'


def _summary(report: Report) -> str:
    sev = report.max_severity()
    flagged = sum(1 for r in report.records if r.flagged)
    cards = [
        ("findings", str(len(report.findings))),
        ("max severity", sev.value if sev else "none"),
        ("flagged records", f"{flagged} / {len(report.records)}"),
        ("errors", str(len(report.errors))),
        ("skips", str(len(report.skips))),
    ]
    body = "".join(f'<div class="card"><b>{esc(v)}</b>{esc(k)}</div>' for k, v in cards)
    return f'<section id="summary"><h2>Summary</h2><div class="cards">{body}</div></section>'


def _findings_table(report: Report) -> str:
    if not report.findings:
        return '<section id="findings"><h2>Findings</h2><p>No findings.</p></section>'
    rows = []
    for i, f in enumerate(report.findings, 1):
        rows.append(
            f'<tr><td class="num">{i}</td><td>{_sev(f.severity.value)}</td>'
            f'<td class="num">{f.score:.3f}</td>'
            f'<td><a href="#finding-{i}">{esc(f.title)}</a></td>'
            f"<td>{_code(f.trigger.display) if f.trigger else ''}</td>"
            f"<td>{_code(f.target) if f.target else ''}</td><td>{esc(f.scanner)}</td></tr>"
        )
    head = (
        "<tr><th>#</th><th>severity</th><th>score</th><th>title</th><th>trigger</th>"
        "<th>target</th><th>scanner</th></tr>"
    )
    return f'<section id="findings"><h2>Findings</h2><table>{head}{"".join(rows)}</table></section>'


def _finding(i: int, f: Finding) -> str:
    items = [
        ("Severity", _sev(f.severity.value) + f" score {f.score:.3f}"),
        ("Scanner", esc(f.scanner)),
        ("Category", esc(f.category)),
    ]
    if f.trigger is not None:
        items.append(
            (
                "Trigger",
                f"{_code(f.trigger.display)} ({esc(f.trigger.kind.value)}, inserted at "
                f"{esc(f.trigger.position.value)})",
            )
        )
    if f.target:
        items.append(("Target", _code(f.target)))
    loc = f.locator
    for name, val in (("Label", loc.label), ("Behaviour", loc.behaviour), ("Tool", loc.tool)):
        if val is not None and val != f.target:
            items.append((name, _code(val)))
    if loc.record_ids:
        shown = " ".join(_code(r) for r in loc.record_ids[:MAX_EXAMPLE_IDS])
        more = len(loc.record_ids) - MAX_EXAMPLE_IDS
        extra = f' <span class="muted">and {more} more</span>' if more > 0 else ""
        items.append((f"Records ({len(loc.record_ids)})", shown + extra))
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items)
    parts = [f'<article id="finding-{i}"><h3>{i}. {esc(f.title)}</h3><dl>{dl}</dl>']
    ev = evidence_dict(f)
    if ev:
        desc = {e.name: e.description for e in f.evidence}
        rows = "".join(
            f'<tr><td>{esc(k)}</td><td class="num">{esc(fmt_value(v))}</td>'
            f"<td>{esc(desc[k])}</td></tr>"
            for k, v in ev.items()
        )
        parts.append(
            "<h4>Evidence</h4><table><tr><th>name</th><th>value</th><th>meaning</th></tr>"
            f"{rows}</table>"
        )
    titles = mapping_titles(f)
    if titles:
        lis = "".join(f"<li>{_code(ref)} {esc(title)}</li>" for ref, title in titles)
        parts.append(f"<h4>Framework mappings</h4><ul>{lis}</ul>")
    if f.explanation:
        parts.append(f"<h4>Explanation</h4><p>{esc(f.explanation)}</p>")
    parts.append("</article>")
    return "".join(parts)


def _figure(plot: Plot) -> str:
    if plot.png is None:
        return f'<h3>{esc(plot.title)}</h3><p class="note">{esc(plot.note)}</p>'
    data = base64.b64encode(plot.png).decode("ascii")
    return (
        f'<figure><img alt="{esc(plot.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{esc(plot.title)}.</b> {esc(plot.note)}</figcaption></figure>"
    )


def _flagged(report: Report) -> str:
    flagged = sorted((r for r in report.records if r.flagged), key=lambda r: -r.score)
    if not flagged:
        return ""
    listed = flagged[:MAX_FLAGGED_LISTED]
    rows = "".join(
        f'<tr><td>{_code(r.record_id)}</td><td class="num">{r.score:.3f}</td><td>'
        + ", ".join(f"{esc(k)} {v:.3f}" for k, v in r.parts)
        + "</td></tr>"
        for r in listed
    )
    return (
        '<section id="records"><h2>Most suspicious records</h2>'
        f"<p>{len(flagged)} flagged; the top {len(listed)} by score are listed (every record's "
        "score is in <code>scores.jsonl</code>).</p>"
        f"<table><tr><th>record</th><th>score</th><th>per scanner</th></tr>{rows}</table>"
        "</section>"
    )


def _issues(report: Report) -> str:
    if not report.issues:
        return '<section id="issues"><h2>Errors and skips</h2><p>Every scanner ran.</p></section>'
    rows = "".join(
        f"<tr><td>{esc(i.scanner)}</td><td>{esc(i.kind)}</td><td>{esc(i.message)}</td></tr>"
        for i in report.issues
    )
    return (
        '<section id="issues"><h2>Errors and skips</h2><table><tr><th>scanner</th><th>kind</th>'
        f"<th>message</th></tr>{rows}</table></section>"
    )


def _run(report: Report) -> str:
    info = report.run_info()
    s = report.subject
    items = [
        ("Subject", f"{esc(s.kind)} {_code(s.name)}"),
        ("Digest", _code(s.digest)),
        ("dormant", esc(info["version"])),
        ("Python", esc(info["python"])),
        ("Started", esc(info["started"])),
        ("Finished", esc(info["finished"] or "not finished")),
        ("Partial run", "yes" if info["partial"] else "no"),
        ("Seed", esc(info["seed"])),
    ]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items)
    cfg = json.dumps(report.config, indent=2, ensure_ascii=False, default=json_default)
    return (
        f'<section id="run"><h2>Run</h2><dl>{dl}</dl><h3>Configuration</h3>'
        f"<pre>{esc(cfg)}</pre></section>"
    )


def render_html(report: Report, *, max_points: int = 20_000, dpi: int = 100) -> Iterator[str]:
    """Yield the page in chunks (see :func:`write_html`)."""
    title = f"dormant report: {report.subject.name}"
    yield (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="dormant {esc(__version__)}">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>\n"
    )
    yield (
        f'<header><h1>{esc(title)}</h1><p class="muted">{esc(report.subject.kind)} · '
        f"{_code(report.subject.digest)}</p></header>\n"
    )
    yield _summary(report) + "\n"
    yield _findings_table(report) + "\n"
    plots = [
        trigger_plot(report.extras.get("triggers"), dpi=dpi),
        score_plot(report.records, report.extras.get("threshold"), dpi=dpi),
        projection_plot(
            report.extras.get("projection"),
            report.records,
            max_points=max_points,
            seed=report.seed,
            dpi=dpi,
        ),
    ]
    yield '<section id="plots"><h2>Plots</h2>' + "".join(_figure(p) for p in plots)
    yield "</section>\n"
    if report.findings:
        yield '<section id="details"><h2>Finding details</h2>'
        for i, f in enumerate(report.findings, 1):
            yield _finding(i, f) + "\n"
        yield "</section>\n"
    yield _flagged(report) + "\n"
    yield _issues(report) + "\n"
    yield _run(report) + "\n"
    yield f'<footer><p class="muted">Written by dormant {esc(__version__)}.</p></footer>'
    yield "</main></body></html>\n"


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

    Plots come from ``report.extras``: ``"triggers"`` (list of dicts with ``trigger``,
    ``target``, ``support``, ``purity``, ``score``, ``p_value``) gives the trigger-evidence
    chart; ``report.records`` with ``"threshold"`` the score histogram; ``"projection"``
    (``{"x", "y", "index", "method"}``) the embedding scatter. A plot whose data is missing or
    malformed is left out with a note on the page that says why.

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
