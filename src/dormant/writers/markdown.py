"""Markdown writer: a report a reviewer reads in a pull request, a ticket or a terminal.

Everything that comes from the data (titles, triggers, record ids, evidence strings) is
escaped, so a hostile string renders as text: Markdown punctuation is backslash-escaped (which
also stops raw HTML), pipes cannot break a table, and code spans pick a backtick fence longer
than any run inside the value.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..findings import Finding
from ..report import Report, atomic_write
from ._common import evidence_dict, fmt_value, json_default, mapping_titles

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


def _findings_table(report: Report) -> list[str]:
    lines = [
        _row(["#", "severity", "score", "title", "trigger", "target", "scanner"]),
        _row(["---:", ":---", "---:", ":---", ":---", ":---", ":---"]),
    ]
    for i, f in enumerate(report.findings, 1):
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


def _finding(i: int, f: Finding) -> list[str]:
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
    ev = evidence_dict(f)
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
    return out


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
        cfg = json.dumps(report.config, indent=2, ensure_ascii=False, default=json_default)
        out += ["", "Configuration:", "", _fenced(cfg, "json")]
    return [*out, ""]


def to_markdown(report: Report) -> str:
    """Render a report as Markdown (GitHub-flavoured tables).

    Sections: summary table, findings table, one section per finding (severity, score,
    trigger in display form, target, records, evidence, framework mappings with titles,
    explanation), errors and skips, the most suspicious records, run information.
    """
    lines = [f"# dormant report: {md_text(report.subject.name)}", ""]
    lines += _summary(report)
    lines += ["## Findings", ""]
    if report.findings:
        lines += _findings_table(report)
        for i, f in enumerate(report.findings, 1):
            lines += _finding(i, f)
    else:
        lines += ["No findings.", ""]
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
