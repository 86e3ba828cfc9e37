"""``dormant guard report``: the audit log's decisions and alerts as JSON, Markdown and HTML.

Rendered in the house writers' manner (:mod:`dormant.writers`): a summary table first, then the
alerts (critical first), then the denials and holds with their reasons; HTML self-contained,
every value escaped. Files are written to a temporary name and renamed, so a half-written report
never looks complete.
"""

from __future__ import annotations

import html
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .audit import AuditEntry, AuditLog
from .decide import ALERT_SEVERITY

FORMATS = ("json", "sarif", "md", "html")
_SEV_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


@dataclass(frozen=True)
class GuardSummary:
    """Counts over the audit entries a report covers."""

    entries: int
    first_seq: int | None
    last_seq: int | None
    outcomes: dict[str, int]
    alerts: dict[str, int]
    identities: dict[str, int]
    chain_ok: bool
    chain_reason: str


def summarise(log: AuditLog, *, since: int = 0) -> tuple[GuardSummary, list[AuditEntry]]:
    """The entries after ``since`` and their summary (with the chain's verification)."""
    entries = log.entries(since=since)
    ver = log.verify()
    s = GuardSummary(
        len(entries),
        entries[0].seq if entries else None,
        entries[-1].seq if entries else None,
        dict(Counter(f"{e.kind}:{e.outcome}" for e in entries)),
        dict(Counter(a for e in entries for a in e.alerts)),
        dict(Counter(e.identity or "-" for e in entries)),
        ver.ok,
        ver.reason or f"{ver.entries} entries, head {ver.head_hash[:16]}",
    )
    return s, entries


def write_report(
    log: AuditLog, out: str | os.PathLike[str], *, formats: list[str], since: int = 0
) -> list[Path]:
    """Write the report files into ``out``; returns their paths."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(
            f"The 'formats' option takes a comma list of {', '.join(FORMATS)}. Got {formats!r}."
        )
    summary, entries = summarise(log, since=since)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    alerts = sorted(
        [(a, e) for e in entries for a in e.alerts],
        key=lambda x: (_SEV_RANK.get(ALERT_SEVERITY.get(x[0], "medium"), 9), x[1].seq),
    )
    notable = [e for e in entries if e.outcome in ("deny", "hold")]
    written = []
    for fmt in formats:
        if fmt == "json":
            body = json.dumps(
                {
                    "summary": summary.__dict__,
                    "alerts": [
                        {"alert": a, "severity": ALERT_SEVERITY.get(a, "medium"), "seq": e.seq}
                        for a, e in alerts
                    ],
                    "entries": [e.to_dict() for e in entries],
                },
                indent=2,
                ensure_ascii=False,
            )
            name = "guard-report.json"
        elif fmt == "sarif":
            from ._report_sarif import to_sarif

            sarif = to_sarif(summary.chain_ok, summary.chain_reason, alerts, ALERT_SEVERITY)
            body = json.dumps(sarif, indent=2, ensure_ascii=False)
            name = "guard-report.sarif"
        elif fmt == "md":
            body, name = _markdown(summary, alerts, notable), "guard-report.md"
        else:
            body, name = _html(summary, alerts, notable), "guard-report.html"
        path = out_dir / name
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_text(body, encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written


def _call_text(e: AuditEntry) -> str:
    if not e.call:
        return "-"
    args = json.dumps(e.call.get("arguments", {}), ensure_ascii=False)
    return f"{e.call.get('tool')}({args[:100]})"


def _md_cell(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _markdown(
    s: GuardSummary, alerts: list[tuple[str, AuditEntry]], notable: list[AuditEntry]
) -> str:
    lines = [
        "# dormant guard report",
        "",
        f"Entries {s.first_seq}–{s.last_seq} ({s.entries}); audit chain: "
        f"{'intact' if s.chain_ok else 'BROKEN'} — {s.chain_reason}",
        "",
        "| outcome | count |",
        "|---|---|",
        *[f"| {_md_cell(k)} | {v} |" for k, v in sorted(s.outcomes.items())],
        "",
        "## Alerts",
        "",
    ]
    if alerts:
        lines += [
            "| severity | alert | entry | identity | model | call |",
            "|---|---|---|---|---|---|",
        ]
        for a, e in alerts:
            lines.append(
                f"| {ALERT_SEVERITY.get(a, 'medium')} | {a} | {e.seq} | {_md_cell(e.identity)} | "
                f"{_md_cell(e.model)} | `{_md_cell(_call_text(e))}` |"
            )
    else:
        lines.append("No alert.")
    lines += ["", "## Denied and held calls", ""]
    if notable:
        lines += [
            "| entry | outcome | identity | model | call | reasons |",
            "|---|---|---|---|---|---|",
        ]
        for e in notable:
            lines.append(
                f"| {e.seq} | {e.outcome} | {_md_cell(e.identity)} | {_md_cell(e.model)} | "
                f"`{_md_cell(_call_text(e))}` | {_md_cell('; '.join(e.reasons))} |"
            )
    else:
        lines.append("No call was denied or held.")
    return "\n".join(lines) + "\n"


def _html(s: GuardSummary, alerts: list[tuple[str, AuditEntry]], notable: list[AuditEntry]) -> str:
    esc = html.escape

    def table(head: list[str], rows: list[list[Any]]) -> str:
        th = "".join(f"<th>{esc(h)}</th>" for h in head)
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows
        )
        return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"

    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>dormant guard report</title><style>body{font-family:system-ui,sans-serif;"
        "margin:2em;max-width:70em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
        "th{background:#f3f3f3}.broken{color:#b00020;font-weight:bold}</style></head><body>",
        "<h1>dormant guard report</h1>",
        f"<p>Entries {esc(str(s.first_seq))}–{esc(str(s.last_seq))} ({s.entries}); audit chain: "
        f"<span class='{'ok' if s.chain_ok else 'broken'}'>"
        f"{'intact' if s.chain_ok else 'BROKEN'}</span> — {esc(s.chain_reason)}</p>",
        table(["outcome", "count"], [[k, v] for k, v in sorted(s.outcomes.items())]),
        "<h2>Alerts</h2>",
        table(
            ["severity", "alert", "entry", "identity", "model", "call"],
            [
                [ALERT_SEVERITY.get(a, "medium"), a, e.seq, e.identity, e.model, _call_text(e)]
                for a, e in alerts
            ],
        )
        if alerts
        else "<p>No alert.</p>",
        "<h2>Denied and held calls</h2>",
        table(
            ["entry", "outcome", "identity", "model", "call", "reasons"],
            [
                [e.seq, e.outcome, e.identity, e.model, _call_text(e), "; ".join(e.reasons)]
                for e in notable
            ],
        )
        if notable
        else "<p>No call was denied or held.</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


__all__ = ["FORMATS", "GuardSummary", "summarise", "write_report"]
