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
from pathlib import Path

from ..findings import Finding
from ..report import Report, atomic_write
from ..sections import finding_transcripts
from ._common import (
    TASK_FEATURE_HEAD,
    TASK_FEATURE_NOTE,
    evidence_dict,
    fmt_value,
    json_default,
    mapping_titles,
    split_task_features,
    task_feature_cells,
    visible_json,
)
from ._markdown_sections import RENDERERS, transcripts
from ._md import fenced, md_code, md_text, row
from ._sections import present

#: Record ids shown per finding.
MAX_EXAMPLE_IDS = 10
#: Flagged records listed (highest score first).
MAX_FLAGGED_LISTED = 20


def _summary(report: Report) -> list[str]:
    sev = report.max_severity()
    flagged = sum(1 for r in report.records if r.flagged)
    return [
        "## Summary",
        "",
        row(["findings", "max severity", "flagged records", "errors", "skips"]),
        row(["---:", ":---", "---:", "---:", "---:"]),
        row(
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
    lines += [row(list(TASK_FEATURE_HEAD)), row([":---", ":---", "---:", "---:", "---:"])]
    for f in task:
        pat, cls, n, p, auc = task_feature_cells(f)
        lines.append(row([md_code(pat, in_table=True), md_text(cls), n, p, auc]))
    return [*lines, ""]


def _findings_table(findings: list[Finding]) -> list[str]:
    lines = [
        row(["#", "severity", "score", "title", "trigger", "target", "scanner"]),
        row(["---:", ":---", "---:", ":---", ":---", ":---", ":---"]),
    ]
    for i, f in enumerate(findings, 1):
        lines.append(
            row(
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
    ts = finding_transcripts(f)
    in_transcripts = {t.name for t in ts}
    ev = {k: v for k, v in evidence_dict(f).items() if k not in in_transcripts}
    if ev:
        out += [
            "**Evidence**",
            "",
            row(["name", "value", "meaning"]),
            row([":---", "---:", ":---"]),
        ]
        desc = {e.name: e.description for e in f.evidence}
        out += [row([md_text(k), md_text(fmt_value(v)), md_text(desc[k])]) for k, v in ev.items()]
        out.append("")
    titles = mapping_titles(f)
    if titles:
        out += ["**Framework mappings**", ""]
        out += [f"- {md_code(ref)} {md_text(title)}" for ref, title in titles]
        out.append("")
    if f.explanation:
        out += ["**Explanation**", "", md_text(f.explanation), ""]
    if ts:
        out += transcripts(i, f, ts, {} if seen is None else seen)
    return out


def _issues(report: Report) -> list[str]:
    out = ["## Errors and skips", ""]
    if not report.issues:
        return [*out, "Every scanner ran.", ""]
    out += [row(["scanner", "kind", "message"]), row([":---", ":---", ":---"])]
    out += [row([md_text(i.scanner), i.kind, md_text(i.message)]) for i in report.issues]
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
        row(["record", "score"]),
        row([":---", "---:"]),
    ]
    out += [
        row([md_code(r.record_id, in_table=True), f"{r.score:.3f}"])
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
        out += ["", "Configuration:", "", fenced(cfg, "json")]
    return [*out, ""]


def to_markdown(report: Report) -> str:
    """Render a report as Markdown (GitHub-flavoured tables).

    Sections: summary table, findings table, one section per finding (severity, score,
    trigger in display form, target, records, evidence, framework mappings with titles,
    explanation), a data scan's task features (natural on-topic patterns) in a table of their
    own, errors and skips, the most suspicious records, run information.

    The typed sections come next, one renderer each (see
    :data:`dormant.writers._markdown_sections.RENDERERS`): a classifier scan's model verdict,
    replay and per-label table; a differential probe's report (its probe summary) gets a
    "Probe" section after the summary (verdict, capped or partial notices, confirmation tests,
    screening, baseline rates, trigger inversion), and each finding its transcripts as fenced
    blocks, without and with the trigger (marked ``⟦…⟧``; invisible characters written
    ``⟨U+XXXX⟩``), with the behaviour
    tags of each run.
    """
    lines = [f"# dormant report: {md_text(report.subject.name)}", ""]
    lines += _summary(report)
    for render, section in present(report, RENDERERS):
        lines += render(report, section)
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
