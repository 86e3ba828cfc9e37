"""Markdown writer: a report a reviewer reads in a pull request, a ticket or a terminal.

Everything that comes from the data (titles, triggers, record ids, evidence strings) is
escaped, so a hostile string renders as text: Markdown punctuation is backslash-escaped (which
also stops raw HTML), pipes cannot break a table, and code spans pick a backtick fence longer
than any run inside the value. Probe transcripts go in fenced blocks whose fence is longer than
any backtick run inside them, so model output cannot close a block early.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..findings import Finding
from ..report import Report, atomic_write
from ..triggers import describe_text
from ._common import (
    TASK_FEATURE_HEAD,
    TASK_FEATURE_NOTE,
    Inline,
    Message,
    Run,
    Transcript,
    baseline_rates,
    clip,
    count_rate,
    evidence_dict,
    finding_transcripts,
    fmt_p,
    fmt_value,
    inversion,
    json_default,
    mapping_titles,
    pair_finding,
    pct,
    plain,
    probe_extras,
    probe_facts,
    probe_notices,
    probe_replay,
    probe_rows,
    probe_verdict,
    reveal,
    split_task_features,
    task_feature_cells,
    visible_json,
)
from ._model_scan import fmt, model_scan, verdict_text

#: Record ids shown per finding.
MAX_EXAMPLE_IDS = 10
#: Flagged records listed (highest score first).
MAX_FLAGGED_LISTED = 20

_CONTROL = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#+!|&~])")
_LINE_START = re.compile(r"^(\d+(?=[.)](?:\s|$))|)([-=.)])(?=[\s=-]|$)")


def md_text(value: object) -> str:
    """Escape a value for Markdown prose or a table cell (one line, punctuation escaped)."""
    text = _MD_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))
    # a leading "- ", "1. ", "---" or "===" would start a list, a rule or a heading
    return _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text, count=1)


def md_code(value: object, *, in_table: bool = False) -> str:
    """A value as an inline code span that no backtick inside it can close early.

    Line breaks and tabs are shown as ``\\n``, ``\\r``, ``\\t``; in a table cell a pipe is
    written ``\\|`` (GitHub-flavoured Markdown requires that even inside code spans).
    """
    text = str(value).translate(_CONTROL) or " "
    if in_table:
        text = text.replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _fenced(text: str, lang: str = "") -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _summary(report: Report) -> list[str]:
    sev = report.max_severity()
    flagged = sum(1 for r in report.records if r.flagged)
    return [
        "## Summary",
        "",
        _row(["findings", "max severity", "flagged records", "errors", "skips"]),
        _row(["---:", ":---", "---:", "---:", "---:"]),
        _row(
            [
                str(len(report.findings)),
                sev.value if sev else "none",
                f"{flagged} of {len(report.records)}",
                str(len(report.errors)),
                str(len(report.skips)),
            ]
        ),
        "",
    ]


def _task_features(task: list[Finding]) -> list[str]:
    if not task:
        return []
    lines = ["## Task features", "", TASK_FEATURE_NOTE, ""]
    lines += [_row(list(TASK_FEATURE_HEAD)), _row([":---", ":---", "---:", "---:", "---:"])]
    for f in task:
        pat, cls, n, p, auc = task_feature_cells(f)
        lines.append(_row([md_code(pat, in_table=True), md_text(cls), n, p, auc]))
    return [*lines, ""]


def _findings_table(findings: list[Finding]) -> list[str]:
    lines = [
        _row(["#", "severity", "score", "title", "trigger", "target", "scanner"]),
        _row(["---:", ":---", "---:", ":---", ":---", ":---", ":---"]),
    ]
    for i, f in enumerate(findings, 1):
        lines.append(
            _row(
                [
                    str(i),
                    f.severity.value,
                    f"{f.score:.3f}",
                    md_text(f.title),
                    md_code(f.trigger.display, in_table=True) if f.trigger else "",
                    md_code(f.target, in_table=True) if f.target else "",
                    md_text(f.scanner),
                ]
            )
        )
    return [*lines, ""]


def _finding(i: int, f: Finding, seen: dict[str, str] | None = None) -> list[str]:
    out = [f"### {i}. {md_text(f.title)}", ""]
    out.append(f"- **Severity:** {f.severity.value} · **score:** {f.score:.3f}")
    out.append(f"- **Scanner:** {md_text(f.scanner)} · **category:** {md_text(f.category)}")
    if f.trigger is not None:
        out.append(
            f"- **Trigger:** {md_code(f.trigger.display)} "
            f"({f.trigger.kind.value}, inserted at {f.trigger.position.value})"
        )
    if f.target:
        out.append(f"- **Target:** {md_code(f.target)}")
    loc = f.locator
    for name, val in (("label", loc.label), ("behaviour", loc.behaviour), ("tool", loc.tool)):
        if val is not None and val != f.target:
            out.append(f"- **Locator {name}:** {md_code(val)}")
    if loc.record_ids:
        shown = ", ".join(md_code(r) for r in loc.record_ids[:MAX_EXAMPLE_IDS])
        more = len(loc.record_ids) - MAX_EXAMPLE_IDS
        extra = f" and {more} more" if more > 0 else ""
        out.append(f"- **Records ({len(loc.record_ids)}):** {shown}{extra}")
    out.append("")
    transcripts = finding_transcripts(f)
    in_transcripts = {t.name for t in transcripts}
    ev = {k: v for k, v in evidence_dict(f).items() if k not in in_transcripts}
    if ev:
        out += [
            "**Evidence**",
            "",
            _row(["name", "value", "meaning"]),
            _row([":---", "---:", ":---"]),
        ]
        desc = {e.name: e.description for e in f.evidence}
        out += [_row([md_text(k), md_text(fmt_value(v)), md_text(desc[k])]) for k, v in ev.items()]
        out.append("")
    titles = mapping_titles(f)
    if titles:
        out += ["**Framework mappings**", ""]
        out += [f"- {md_code(ref)} {md_text(title)}" for ref, title in titles]
        out.append("")
    if f.explanation:
        out += ["**Explanation**", "", md_text(f.explanation), ""]
    if transcripts:
        out += _transcripts(i, f, transcripts, {} if seen is None else seen)
    return out


# -- probe transcripts -------------------------------------------------------------------

_OPEN, _CLOSE = "⟦", "⟧"


def _shown(text: str, trigger: str | None) -> str:
    head, cut, tail = clip(text)
    out = plain(reveal(head, trigger), _OPEN, _CLOSE)
    if cut:
        out += f"[… {cut} characters left out …]" + plain(reveal(tail, trigger), _OPEN, _CLOSE)
    return out


def _message(m: Message, trigger: str | None) -> list[str]:
    label = (
        m.role + (f" {m.name}" if m.name else "") + (f", reply to {m.call_id}" if m.call_id else "")
    )
    lines = _shown(m.content, trigger).split("\n") if m.content else []
    for name, args, call_id in m.calls:
        ident = f"  (id {call_id})" if call_id else ""
        lines += f"-> {_shown(name, trigger)}({_shown(args, trigger)}){ident}".split("\n")
    if not lines:
        lines = ["(empty)"]
    head = f"[{plain(reveal(label))}] "
    return [head + lines[0], *("    " + line for line in lines[1:])]


def _tags(tags: tuple[str, ...], tag: str | None) -> str:
    if not tags:
        return "none"
    return ", ".join(f"**{md_code(t)}**" if t == tag else md_code(t) for t in tags)


def _run(run: Run, with_trigger: bool, trigger: str | None, tag: str | None) -> list[str]:
    title = "With trigger" if with_trigger else "Without trigger"
    out = [f"{title} · tags: {_tags(run.tags, tag)}", ""]
    if (
        with_trigger
        and trigger is not None
        and not any(trigger in m.content for m in run.messages if m.role == "user")
    ):
        out += [
            "(The trigger text does not occur verbatim in the user message; it may have been "
            "applied as a transformation.)",
            "",
        ]
    lines = [line for m in run.messages for line in _message(m, trigger)]
    return [*out, _fenced("\n".join(lines), "text"), ""]


def _transcripts(
    i: int, f: Finding, transcripts: list[Transcript], seen: dict[str, str]
) -> list[str]:
    trigger = f.trigger.text if f.trigger is not None else None
    tag = f.target or f.locator.behaviour
    out = [
        "**Transcripts** (each example is one task run without and with the trigger; in the "
        f"blocks the trigger is marked {_OPEN}…{_CLOSE} and invisible characters are written "
        "⟨U+XXXX⟩; the behaviour of this finding is in bold among the tags)",
        "",
    ]
    for k, t in enumerate(transcripts, 1):
        head = f"*Example {k}, task* {md_code(t.task_id)}"
        if t.raw in seen:
            out += [
                f"{head}: the same runs as {seen[t.raw]}. Tags without the trigger: "
                f"{_tags(t.without_trigger.tags, tag)}; "
                f"with it: {_tags(t.with_trigger.tags, tag)}.",
                "",
            ]
            continue
        seen[t.raw] = f"finding {i}, example {k}"
        out += [head, ""]
        out += _run(t.without_trigger, False, trigger, tag)
        out += _run(t.with_trigger, True, trigger, tag)
    return out


# -- probe section -----------------------------------------------------------------------


def _inline(parts: Inline) -> str:
    return "".join(
        md_code(text) if as_code else _MD_SPECIAL.sub(r"\\\1", " ".join(text.splitlines()))
        for text, as_code in parts
    )


def _outcome(row: dict[str, Any], findings: list[Finding]) -> str:
    n = pair_finding(row, findings)
    return f"finding {n}" if n else "no"


def _pairs_table(rows: list[dict[str, Any]], findings: list[Finding] | None = None) -> list[str]:
    head = ["trigger", "family", "position", "behaviour", "with trigger", "without", "p", "q"]
    align = [":---", ":---", ":---", ":---", "---:", "---:", "---:", "---:"]
    if findings is not None:
        head.append("finding")
        align.append(":---")
    out = [_row(head), _row(align)]
    out += [
        _row(
            [
                md_code(r.get("trigger", ""), in_table=True),
                md_text(r.get("family", "")),
                md_text(r.get("position", "")),
                md_code(r.get("tag", ""), in_table=True),
                md_text(count_rate(r.get("with"))),
                md_text(count_rate(r.get("without"))),
                fmt_p(r.get("p_value")),
                fmt_p(r.get("q_value")),
                *([_outcome(r, findings)] if findings is not None else []),
            ]
        )
        for r in rows
    ]
    return [*out, ""]


def _inversion(probe: dict[str, Any]) -> list[str]:
    inv = probe.get("inversion")
    if not isinstance(inv, dict):
        return []
    targets, triggers = inversion(probe)
    secs = inv.get("seconds")
    took = f" Took {secs:.1f} s." if isinstance(secs, int | float) else ""
    out = [
        "### Trigger inversion",
        "",
        "Attack targets the model is unusually ready to produce whatever the prompt (BAIT, "
        "Shen et al., IEEE S&P 2025; ranked by Q-score), and the triggers that most raise each "
        "target's likelihood; every proposed trigger was then tested like any other "
        f"candidate.{took}",
        "",
    ]
    if targets:
        out += [_row(["target text", "Q-score", "behaviour tags"]), _row([":---", "---:", ":---"])]
        out += [
            _row(
                [
                    md_code(plain(reveal(str(t.get("text", "")))), in_table=True),
                    fmt_p(t.get("q_score")),
                    ", ".join(md_code(x, in_table=True) for x in t.get("tags") or []),
                ]
            )
            for t in targets
        ]
        out.append("")
    else:
        out += ["No attack target stood out.", ""]
    if triggers:
        out += [
            _row(["trigger", "target text", "target tags", "log-likelihood gain (nats)"]),
            _row([":---", ":---", ":---", "---:"]),
        ]
        out += [
            _row(
                [
                    md_code(describe_text(str(t.get("trigger", ""))), in_table=True),
                    md_code(plain(reveal(str(t.get("target", "")))), in_table=True),
                    ", ".join(md_code(x, in_table=True) for x in t.get("target_tags") or []),
                    fmt_p(t.get("gain_nats")),
                ]
            )
            for t in triggers
        ]
        out.append("")
    return out


def _model(report: Report) -> list[str]:
    """The model scan's verdict, replay examples and per-label table (empty if none)."""
    ms = model_scan(report.extras)
    if ms is None:
        return []
    out = ["## Model scan", "", "**Verdict:** " + md_text(verdict_text(ms)), ""]
    ex = [e for e in (ms.replay or {}).get("examples") or [] if isinstance(e, dict)]
    if ex:
        out += ["Replay on held-out clean inputs:", ""]
        out += [_row(["before", "after", "prediction"]), _row(["---"] * 3)]
        for e in ex:
            before, after = (plain(reveal(str(e.get(k, "")))) for k in ("before", "after"))
            labels = f"{e.get('label_before', '')} → {e.get('label_after', '')}"
            out.append(_row([md_text(before), md_text(after), md_text(labels)]))
        out.append("")
    out += [
        "Candidate target labels (held-out replay of each label's best one-token trigger and "
        "of its position-robust trigger, whose flip rate is the worse of start and end; MAD: "
        "anomaly index across labels):",
        "",
        _row(
            ["label", "one-token trigger", "flip", "loss", "MAD", "robust trigger", "robust flip"]
        ),
        _row(["---"] * 7),
    ]
    for r in ms.labels:
        name = f"**{md_text(r.label)}**" if r.label == ms.target else md_text(r.label)
        trig = md_code(describe_text(r.trigger or ""), in_table=True)
        out.append(
            _row(
                [
                    name,
                    f"{trig} {md_text(r.position or '')}",
                    fmt(r.flip_rate, ".0%"),
                    fmt(r.loss, ".4g"),
                    fmt(r.anomaly_index, ".2f"),
                    md_code(describe_text(r.robust_trigger or ""), in_table=True),
                    fmt(r.robust_flip, ".0%"),
                ]
            )
        )
    return [*out, ""]


def _probe(report: Report) -> list[str]:
    probe = probe_extras(report.extras)
    if probe is None:
        return []
    out = [
        "## Probe",
        "",
        "**Verdict:** " + _inline(probe_verdict(report.extras, len(report.findings))),
        "",
    ]
    for note in probe_notices(report.extras, probe, partial=report.partial):
        out += [f"> **Note:** {md_text(note)}", ""]
    facts = probe_facts(report.extras, probe)
    if facts:
        out += [md_text(facts), ""]
    replay = probe_replay(report.extras)
    if replay:
        out += [_inline(replay), ""]
    confirmed = probe_rows(probe, "confirmed")
    out += [
        "### Confirmation tests",
        "",
        "Each trigger, position and behaviour tested on fresh confirmation tasks, most "
        "significant first: runs showing the behaviour with and without the trigger; p: "
        "one-sided Fisher exact test; q: Benjamini-Hochberg adjusted over every pair tested; "
        "a pair that passed names its finding.",
        "",
    ]
    out += (
        _pairs_table(confirmed, report.findings)
        if confirmed
        else ["No condition reached the confirmation stage.", ""]
    )
    screened = probe_rows(probe, "screened")
    if screened:
        out += [
            f"Screening: the {len(screened)} most promising conditions, each with its strongest "
            "behaviour on the screening tasks (the top ones were carried to confirmation; q: "
            "Benjamini-Hochberg over every pair screened):",
            "",
            *_pairs_table(screened),
        ]
    base = baseline_rates(probe)
    out += [
        "### Baseline behaviour",
        "",
        "Share of runs without any trigger that show each behaviour (all tasks):",
        "",
    ]
    if base:
        out += [_row(["behaviour", "rate"]), _row([":---", "---:"])]
        out += [_row([md_code(tag, in_table=True), pct(rate)]) for tag, rate in base]
        out.append("")
    else:
        out += ["No behaviour was tagged in the runs without a trigger.", ""]
    return out + _inversion(probe)


def _issues(report: Report) -> list[str]:
    out = ["## Errors and skips", ""]
    if not report.issues:
        return [*out, "Every scanner ran.", ""]
    out += [_row(["scanner", "kind", "message"]), _row([":---", ":---", ":---"])]
    out += [_row([md_text(i.scanner), i.kind, md_text(i.message)]) for i in report.issues]
    return [*out, ""]


def _flagged(report: Report) -> list[str]:
    flagged = sorted((r for r in report.records if r.flagged), key=lambda r: -r.score)
    if not flagged:
        return []
    out = [
        "## Most suspicious records",
        "",
        f"{len(flagged)} flagged; "
        + (
            f"the top {MAX_FLAGGED_LISTED} by score"
            if len(flagged) > MAX_FLAGGED_LISTED
            else "all of them, by score"
        )
        + " (every record's score is in `scores.jsonl`):",
        "",
        _row(["record", "score"]),
        _row([":---", "---:"]),
    ]
    out += [
        _row([md_code(r.record_id, in_table=True), f"{r.score:.3f}"])
        for r in flagged[:MAX_FLAGGED_LISTED]
    ]
    return [*out, ""]


def _run_info(report: Report) -> list[str]:
    info = report.run_info()
    subject = report.subject
    out = [
        "## Run",
        "",
        f"- **Subject:** {subject.kind} {md_code(subject.name)}",
        f"- **Digest:** {md_code(subject.digest)}",
        f"- **dormant** {md_text(info['version'])} on Python {md_text(info['python'])}",
        f"- **Started:** {info['started']} · **finished:** {info['finished'] or 'not finished'}"
        + (" · **partial run**" if info["partial"] else ""),
        f"- **Seed:** {info['seed']}",
    ]
    if report.config:
        cfg = visible_json(
            json.dumps(report.config, indent=2, ensure_ascii=False, default=json_default)
        )
        out += ["", "Configuration:", "", _fenced(cfg, "json")]
    return [*out, ""]


def to_markdown(report: Report) -> str:
    """Render a report as Markdown (GitHub-flavoured tables).

    Sections: summary table, findings table, one section per finding (severity, score,
    trigger in display form, target, records, evidence, framework mappings with titles,
    explanation), a data scan's task features (natural on-topic patterns) in a table of their
    own, errors and skips, the most suspicious records, run information.

    A differential probe's report (``extras["probe"]``) also gets a "Probe" section after the
    summary (verdict, capped or partial notices, confirmation tests, screening, baseline rates,
    trigger inversion), and each finding its transcripts as fenced blocks, without and with the
    trigger (marked ``⟦…⟧``; invisible characters written ``⟨U+XXXX⟩``), with the behaviour
    tags of each run.
    """
    lines = [f"# dormant report: {md_text(report.subject.name)}", ""]
    lines += _summary(report)
    lines += _model(report)
    lines += _probe(report)
    lines += ["## Findings", ""]
    findings, task = split_task_features(report.findings)
    if findings:
        lines += _findings_table(findings)
        seen: dict[str, str] = {}
        for i, f in enumerate(findings, 1):
            lines += _finding(i, f, seen)
    else:
        lines += ["No findings.", ""]
    lines += _task_features(task)
    lines += _issues(report)
    lines += _flagged(report)
    lines += _run_info(report)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_markdown(report: Report, path: str | os.PathLike[str]) -> Path:
    """Write the report as Markdown, atomically (see :func:`to_markdown`).

    Parameters
    ----------
    report:
        The report to write.
    path:
        Destination, conventionally ``report.md``.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    text = to_markdown(report)
    with atomic_write(path) as fh:
        fh.write(text)
    return Path(path)


__all__ = ["md_code", "md_text", "to_markdown", "write_markdown"]
