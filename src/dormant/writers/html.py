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

Record text, record ids, trigger strings and model output come from what is under scan and may
be hostile: every one of them is HTML-escaped, and the page carries a Content-Security-Policy
that allows no script and no outside resource, so an escaping slip still cannot run code or call
out. The page's size does not grow with the number of records (plots aggregate; at most
``MAX_FLAGGED_LISTED`` records are listed), and a transcript message longer than 4,000
characters is shown by its start and end.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

from .._version import __version__
from ..findings import Finding
from ..report import Report, atomic_write
from ..sections import (
    Message,
    ModelVerdict,
    PairRow,
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
from ._plots import Plot, projection_plot, score_plot, trigger_plot
from ._probe import (
    Inline,
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
from ._sections import read_section

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
tr.target td{background:#fdecea}
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

#: Added only to pages of probe reports, so that other pages stay as they were.
_PROBE_CSS = """
.verdict{font-size:1.1rem}
.notice{background:#fdf2e9;border:1px solid #d68910;border-radius:6px;padding:.3rem .8rem;
margin:.5rem 0}
details{margin:.5rem 0}summary{cursor:pointer;font-weight:600}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:.8rem}
@media (max-width:800px){.pair{grid-template-columns:1fr}}
.run{border:1px solid #d5d9de;border-radius:6px;padding:.3rem .6rem;min-width:0}
.run-with{border-color:#c0392b}
.run h5{margin:.2rem 0 .4rem;font-size:.95rem}
.msg{border-left:4px solid #7f8c8d;background:#f6f7f9;margin:.35rem 0;padding:.2rem .5rem}
.msg-user{border-color:#2c6e9b}.msg-assistant{border-color:#1e8449}.msg-tool{border-color:#d68910}
.role{font-size:.78em;font-weight:600;text-transform:uppercase;letter-spacing:.03em;color:#5b6670}
.body{white-space:pre-wrap;overflow-wrap:anywhere;font-family:ui-monospace,SFMono-Regular,Menlo,
Consolas,monospace;font-size:.86em}
.call{font-size:.86em;margin-top:.2rem}
mark.trig{background:#f9e79f;outline:1px solid #b7950b;border-radius:2px}
.inv{color:#fff;background:#8e44ad;border-radius:2px;font-size:.8em;padding:0 .15em}
.cut{color:#5b6670;font-style:italic}
.tags{font-size:.88em;margin:.4rem 0 .2rem}.tag{margin-right:.25rem}
code.hit{background:#c0392b;color:#fff;font-weight:600}
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


def _task_features(task: list[Finding]) -> str:
    if not task:
        return ""
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in TASK_FEATURE_HEAD) + "</tr>"
    rows = []
    for f in task:
        pat, cls, n, p, auc = task_feature_cells(f)
        rows.append(
            f'<tr><td>{_code(pat)}</td><td>{esc(cls)}</td><td class="num">{esc(n)}</td>'
            f'<td class="num">{esc(p)}</td><td class="num">{esc(auc)}</td></tr>'
        )
    return (
        f'<section id="task-features"><h2>Task features</h2><p class="muted">'
        f"{esc(TASK_FEATURE_NOTE)}</p><table>{head}{''.join(rows)}</table></section>"
    )


def _findings_table(findings: list[Finding]) -> str:
    if not findings:
        return '<section id="findings"><h2>Findings</h2><p>No findings.</p></section>'
    rows = []
    for i, f in enumerate(findings, 1):
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


def _finding(i: int, f: Finding, seen: dict[str, tuple[str, str]] | None = None) -> str:
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
    ts = finding_transcripts(f)
    in_transcripts = {t.name for t in ts}
    ev = {k: v for k, v in evidence_dict(f).items() if k not in in_transcripts}
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
    if ts:
        parts.append(_transcripts(i, f, ts, {} if seen is None else seen))
    parts.append("</article>")
    return "".join(parts)


# -- probe transcripts -------------------------------------------------------------------


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


def _shown(text: str, trigger: str | None) -> str:
    head, cut, tail = clip(text)
    if not cut:
        return _pieces(reveal(text, trigger))
    return (
        _pieces(reveal(head, trigger))
        + f'<span class="cut">[… {cut} characters left out …]</span>'
        + _pieces(reveal(tail, trigger))
    )


def _message(m: Message, trigger: str | None) -> str:
    role = m.role if m.role in ROLES else "other"
    label = esc(m.role)
    if m.name:
        label += f" · {esc(m.name)}"
    if m.call_id:
        label += f' <span class="muted">(reply to call {esc(m.call_id)})</span>'
    parts = [f'<div class="msg msg-{role}"><div class="role">{label}</div>']
    if m.content:
        parts.append(f'<div class="body">{_shown(m.content, trigger)}</div>')
    elif not m.calls:
        parts.append('<div class="body muted">(empty)</div>')
    for name, args, call_id in m.calls:
        ident = f' <span class="muted">id {esc(call_id)}</span>' if call_id else ""
        parts.append(
            f'<div class="call">tool call <code>{_shown(name, trigger)}'
            f"({_shown(args, trigger)})</code>{ident}</div>"
        )
    parts.append("</div>")
    return "".join(parts)


def _tags(tags: tuple[str, ...], tag: str | None) -> str:
    if not tags:
        return '<span class="muted">none</span>'
    return " ".join(
        f'<code class="tag hit" title="the behaviour of this finding">{esc(t)}</code>'
        if t == tag
        else f'<code class="tag">{esc(t)}</code>'
        for t in tags
    )


def _run_block(run: Run, with_trigger: bool, trigger: str | None, tag: str | None) -> str:
    title = "With trigger" if with_trigger else "Without trigger"
    cls = "run-with" if with_trigger else "run-without"
    msgs = "".join(_message(m, trigger) for m in run.messages)
    found = (
        not with_trigger
        or trigger is None
        or any(trigger in m.content for m in run.messages if m.role == "user")
    )
    note = (
        ""
        if found
        else '<p class="note">The trigger text does not occur verbatim in the user message '
        "(it may have been applied as a transformation).</p>"
    )
    return (
        f'<div class="run {cls}"><h5>{title}</h5>{note}{msgs}'
        f'<p class="tags">Behaviour tags: {_tags(run.tags, tag)}</p></div>'
    )


def _transcripts(
    i: int, f: Finding, transcripts: list[Transcript], seen: dict[str, tuple[str, str]]
) -> str:
    trigger = f.trigger.text if f.trigger is not None else None
    tag = f.target or f.locator.behaviour
    parts = [
        '<h4>Transcripts</h4><p class="muted">Each example is one task run without and with '
        'the trigger. The trigger is <mark class="trig">highlighted</mark>, invisible '
        'characters are shown as <span class="inv">⟨U+200B⟩</span>, and the behaviour of this '
        'finding is <code class="hit">marked</code> among the tags of each run. Everything '
        "below is model output or task text, shown as text.</p>"
    ]
    for k, t in enumerate(transcripts, 1):
        anchor = f"finding-{i}-example-{k}"
        head = f"Example {k}: task {_code(t.task_id)}"
        if t.raw in seen:
            ref, label = seen[t.raw]
            parts.append(
                f'<div id="{anchor}"><p><b>{head}</b>: the same runs as '
                f'<a href="#{ref}">{esc(label)}</a>. Behaviour tags without the trigger: '
                f"{_tags(t.without_trigger.tags, tag)}; with it: "
                f"{_tags(t.with_trigger.tags, tag)}.</p></div>"
            )
            continue
        seen[t.raw] = (anchor, f"finding {i}, example {k}")
        parts.append(
            f'<details id="{anchor}" open><summary>{head}</summary>'
            '<div class="pair">'
            + _run_block(t.without_trigger, False, trigger, tag)
            + _run_block(t.with_trigger, True, trigger, tag)
            + "</div></details>"
        )
    return "".join(parts)


# -- probe section -----------------------------------------------------------------------


def _inline(parts: Inline) -> str:
    return "".join(_code(text) if as_code else esc(text) for text, as_code in parts)


def _outcome(pair: PairRow, findings: list[Finding] | None) -> str:
    if findings is None:
        return ""
    n = pair_finding(pair, findings)
    cell = f'<a href="#finding-{n}">finding {n}</a>' if n else '<span class="muted">no</span>'
    return f"<td>{cell}</td>"


def _pairs_table(rows: tuple[PairRow, ...], findings: list[Finding] | None = None) -> str:
    head = (
        "<tr><th>trigger</th><th>family</th><th>position</th><th>behaviour</th>"
        "<th>with trigger</th><th>without</th><th>p</th><th>q</th>"
        + ("<th>finding</th>" if findings is not None else "")
        + "</tr>"
    )
    body = "".join(
        f"<tr><td>{_code(r.trigger)}</td><td>{esc(r.family)}</td>"
        f"<td>{esc(r.position)}</td><td>{_code(r.tag)}</td>"
        f'<td class="num">{esc(count_rate(r.with_trigger))}</td>'
        f'<td class="num">{esc(count_rate(r.without_trigger))}</td>'
        f'<td class="num">{esc(fmt_p(r.p_value))}</td>'
        f'<td class="num">{esc(fmt_p(r.q_value))}</td>{_outcome(r, findings)}</tr>'
        for r in rows
    )
    return f"<table>{head}{body}</table>"


def _inversion(probe: ProbeSummary) -> str:
    inv = probe.inversion
    if not isinstance(inv, dict):
        return ""
    targets, triggers = inversion(probe)
    parts = [
        '<h3>Trigger inversion</h3><p class="muted">Attack targets the model is unusually '
        "ready to produce whatever the prompt (BAIT, Shen et al., IEEE S&amp;P 2025; ranked by "
        "Q-score), and the triggers that most raise each target's likelihood; every proposed "
        "trigger was then tested like any other candidate."
    ]
    secs = inv.get("seconds")
    if isinstance(secs, int | float):
        parts.append(f" Took {secs:.1f} s.")
    parts.append("</p>")
    if targets:
        rows = "".join(
            f"<tr><td>{_code(plain(reveal(str(t.get('text', '')))))}</td>"
            f'<td class="num">{esc(fmt_p(t.get("q_score")))}</td>'
            f"<td>{' '.join(_code(x) for x in t.get('tags') or [])}</td></tr>"
            for t in targets
        )
        parts.append(
            "<h4>Inverted targets</h4><table><tr><th>target text</th><th>Q-score</th>"
            f"<th>behaviour tags</th></tr>{rows}</table>"
        )
    else:
        parts.append("<p>No attack target stood out.</p>")
    if triggers:
        rows = "".join(
            f"<tr><td>{_code(describe_text(str(t.get('trigger', ''))))}</td>"
            f"<td>{_code(plain(reveal(str(t.get('target', '')))))}</td>"
            f"<td>{' '.join(_code(x) for x in t.get('target_tags') or [])}</td>"
            f'<td class="num">{esc(fmt_p(t.get("gain_nats")))}</td></tr>'
            for t in triggers
        )
        parts.append(
            "<h4>Inverted triggers</h4><table><tr><th>trigger</th><th>target text</th>"
            f"<th>target tags</th><th>log-likelihood gain (nats)</th></tr>{rows}</table>"
        )
    return "".join(parts)


def _model(report: Report, dpi: int) -> str:
    """The model scan's verdict, replayed proof and per-label evidence (empty if none)."""
    ms = model_scan(report)
    if ms is None:
        return ""
    parts = [
        '<section id="model"><h2>Model scan</h2><p class="verdict"><b>Verdict.</b> '
        f"{esc(verdict_text(ms))}</p>"
    ]
    ex = (ms.replay.examples if ms.replay else None) or ()
    if ex:
        rows = "".join(
            f"<tr><td>{esc(plain(reveal(str(e.before))))}</td>"
            f"<td>{esc(plain(reveal(str(e.after))))}</td>"
            f"<td>{_code(e.label_before)} → {_code(e.label_after)}</td>"
            "</tr>"
            for e in ex
        )
        parts.append(
            '<h3>Replay</h3><p class="muted">Held-out clean inputs (never used to find the '
            "trigger) before and after it is inserted.</p><table><tr><th>before</th>"
            f"<th>after</th><th>prediction</th></tr>{rows}</table>"
        )
    mark = {True: ' class="target"', False: ""}
    rows = "".join(
        f"<tr{mark[r.label == ms.target]}><td>{_code(r.label)}</td>"
        f"<td>{_code(describe_text(r.trigger or ''))} {esc(r.position or '')}</td>"
        f'<td class="num">{fmt(r.flip_rate, ".0%")}</td>'
        f'<td class="num">{fmt(r.loss, ".4g")}</td>'
        f'<td class="num">{fmt(r.anomaly_index, ".2f")}</td>'
        f"<td>{_code(describe_text(r.robust_trigger or ''))}</td>"
        f'<td class="num">{fmt(r.robust_flip, ".0%")}</td></tr>'
        for r in ms.labels
    )
    parts.append(
        '<h3>Candidate target labels</h3><p class="muted">For each label: the best one-token '
        "trigger and the position-robust trigger (it must work at the start and at the end), "
        "each replayed on held-out clean inputs not already in that label; MAD: the Neural "
        "Cleanse anomaly index of the one-token strength across labels.</p><table><tr>"
        "<th>label</th><th>one-token trigger</th><th>flip</th><th>loss</th><th>MAD</th>"
        f"<th>robust trigger</th><th>robust flip</th></tr>{rows}</table>"
    )
    parts.append(_figure(anomaly_plot(ms, dpi=dpi)))
    return "".join(parts) + "</section>"


def _probe(report: Report, probe: ProbeSummary) -> str:
    verdict = read_section(report, ModelVerdict)
    parts = [
        '<section id="probe"><h2>Probe</h2><p class="verdict"><b>Verdict.</b> '
        + _inline(probe_verdict(verdict, len(report.findings)))
        + "</p>"
    ]
    parts += [
        f'<div class="notice"><p><b>Note.</b> {esc(n)}</p></div>'
        for n in probe_notices(verdict, probe, partial=report.partial)
    ]
    facts = probe_facts(verdict, probe)
    if facts:
        parts.append(f'<p class="muted">{esc(facts)}</p>')
    replay = probe_replay(read_section(report, Replay))
    if replay:
        parts.append(f"<p>{_inline(replay)}</p>")
    confirmed = probe.confirmed
    parts.append(
        '<h3>Confirmation tests</h3><p class="muted">Each trigger, position and behaviour '
        "tested on fresh confirmation tasks, most significant first: runs showing the behaviour "
        "with and without the trigger; p: one-sided Fisher exact test; q: Benjamini-Hochberg "
        "adjusted over every pair tested. A pair that passed links to its finding.</p>"
    )
    parts.append(
        _pairs_table(confirmed, report.findings)
        if confirmed
        else "<p>No condition reached the confirmation stage.</p>"
    )
    screened = probe.screened
    if screened:
        parts.append(
            f"<details><summary>Screening: the {len(screened)} most promising conditions, "
            "each with its strongest behaviour on the screening tasks</summary>"
            '<p class="muted">The top ones were carried to confirmation; q: Benjamini-Hochberg '
            "over every pair screened.</p>" + _pairs_table(screened) + "</details>"
        )
    base = baseline_rates(probe)
    parts.append(
        '<h3>Baseline behaviour</h3><p class="muted">Share of runs without any trigger that '
        "show each behaviour (all tasks).</p>"
    )
    if base:
        rows = "".join(
            f'<tr><td>{_code(tag)}</td><td class="num">{esc(pct(rate))}</td></tr>'
            for tag, rate in base
        )
        parts.append(f"<table><tr><th>behaviour</th><th>rate</th></tr>{rows}</table>")
    else:
        parts.append("<p>No behaviour was tagged in the runs without a trigger.</p>")
    parts.append(_inversion(probe))
    parts.append("</section>")
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
    cfg = visible_json(
        json.dumps(report.config, indent=2, ensure_ascii=False, default=json_default)
    )
    return (
        f'<section id="run"><h2>Run</h2><dl>{dl}</dl><h3>Configuration</h3>'
        f"<pre>{esc(cfg)}</pre></section>"
    )


def render_html(report: Report, *, max_points: int = 20_000, dpi: int = 100) -> Iterator[str]:
    """Yield the page in chunks (see :func:`write_html`)."""
    title = f"dormant report: {report.subject.name}"
    summary = read_section(report, ProbeSummary)
    probe = summary is not None
    extra_css = _PROBE_CSS if probe or any(finding_transcripts(f) for f in report.findings) else ""
    yield (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="dormant {esc(__version__)}">'
        f"<title>{esc(title)}</title><style>{_CSS}{extra_css}</style></head><body><main>\n"
    )
    yield (
        f'<header><h1>{esc(title)}</h1><p class="muted">{esc(report.subject.kind)} · '
        f"{_code(report.subject.digest)}</p></header>\n"
    )
    yield _summary(report) + "\n"
    if summary is not None:
        yield _probe(report, summary) + "\n"
    model = _model(report, dpi)
    if model:
        yield model + "\n"
    findings, task = split_task_features(report.findings)
    yield _findings_table(findings) + "\n"
    if task:
        yield _task_features(task) + "\n"
    plots = (
        []
        if model
        else [
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
    )
    if plots:
        yield '<section id="plots"><h2>Plots</h2>' + "".join(_figure(p) for p in plots)
        yield "</section>\n"
    if findings:
        yield '<section id="details"><h2>Finding details</h2>'
        seen: dict[str, tuple[str, str]] = {}
        for i, f in enumerate(findings, 1):
            yield _finding(i, f, seen) + "\n"
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
