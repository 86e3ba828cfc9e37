"""The Markdown of a report's typed sections: model scan, probe, and a probe's transcripts.

One renderer per section type, in :data:`RENDERERS` (section class to renderer), which
:func:`dormant.writers.markdown.to_markdown` walks in order; a new section type is one renderer
and one entry. Transcripts go in fenced blocks whose fence is longer than any backtick run
inside them, so model output cannot close a block early.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..findings import Finding
from ..report import Report
from ..sections import (
    LabelAnomaly,
    Message,
    ModelVerdict,
    PairRow,
    ProbeSummary,
    Replay,
    Run,
    Transcript,
)
from ..triggers import describe_text
from ._common import clip, plain, reveal
from ._md import MD_SPECIAL, fenced, md_code, md_text, row
from ._model_scan import fmt, model_scan, verdict_text
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
    return [*out, fenced("\n".join(lines), "text"), ""]


def transcripts(
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
        md_code(text) if as_code else MD_SPECIAL.sub(r"\\\1", " ".join(text.splitlines()))
        for text, as_code in parts
    )


def _outcome(pair: PairRow, findings: list[Finding]) -> str:
    n = pair_finding(pair, findings)
    return f"finding {n}" if n else "no"


def _pairs_table(rows: tuple[PairRow, ...], findings: list[Finding] | None = None) -> list[str]:
    head = ["trigger", "family", "position", "behaviour", "with trigger", "without", "p", "q"]
    align = [":---", ":---", ":---", ":---", "---:", "---:", "---:", "---:"]
    if findings is not None:
        head.append("finding")
        align.append(":---")
    out = [row(head), row(align)]
    out += [
        row(
            [
                md_code(r.trigger, in_table=True),
                md_text(r.family),
                md_text(r.position),
                md_code(r.tag, in_table=True),
                md_text(count_rate(r.with_trigger)),
                md_text(count_rate(r.without_trigger)),
                fmt_p(r.p_value),
                fmt_p(r.q_value),
                *([_outcome(r, findings)] if findings is not None else []),
            ]
        )
        for r in rows
    ]
    return [*out, ""]


def _inversion(probe: ProbeSummary) -> list[str]:
    inv = probe.inversion
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
        out += [row(["target text", "Q-score", "behaviour tags"]), row([":---", "---:", ":---"])]
        out += [
            row(
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
            row(["trigger", "target text", "target tags", "log-likelihood gain (nats)"]),
            row([":---", ":---", ":---", "---:"]),
        ]
        out += [
            row(
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


def _model(report: Report, _: LabelAnomaly) -> list[str]:
    """The model scan's verdict, replay examples and per-label table (empty if none)."""
    ms = model_scan(report)
    if ms is None:
        return []
    out = ["## Model scan", "", "**Verdict:** " + md_text(verdict_text(ms)), ""]
    ex = (ms.replay.examples if ms.replay else None) or ()
    if ex:
        out += ["Replay on held-out clean inputs:", ""]
        out += [row(["before", "after", "prediction"]), row(["---"] * 3)]
        for e in ex:
            before, after = plain(reveal(str(e.before))), plain(reveal(str(e.after)))
            labels = f"{e.label_before} → {e.label_after}"
            out.append(row([md_text(before), md_text(after), md_text(labels)]))
        out.append("")
    out += [
        "Candidate target labels (held-out replay of each label's best one-token trigger and "
        "of its position-robust trigger, whose flip rate is the worse of start and end; MAD: "
        "anomaly index across labels):",
        "",
        row(["label", "one-token trigger", "flip", "loss", "MAD", "robust trigger", "robust flip"]),
        row(["---"] * 7),
    ]
    for r in ms.labels:
        name = f"**{md_text(r.label)}**" if r.label == ms.target else md_text(r.label)
        trig = md_code(describe_text(r.trigger or ""), in_table=True)
        out.append(
            row(
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


def _probe(report: Report, probe: ProbeSummary) -> list[str]:
    verdict = read_section(report, ModelVerdict)
    out = [
        "## Probe",
        "",
        "**Verdict:** " + _inline(probe_verdict(verdict, len(report.findings))),
        "",
    ]
    for note in probe_notices(verdict, probe, partial=report.partial):
        out += [f"> **Note:** {md_text(note)}", ""]
    facts = probe_facts(verdict, probe)
    if facts:
        out += [md_text(facts), ""]
    replay = probe_replay(read_section(report, Replay))
    if replay:
        out += [_inline(replay), ""]
    confirmed = probe.confirmed
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
    screened = probe.screened
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
        out += [row(["behaviour", "rate"]), row([":---", "---:"])]
        out += [row([md_code(tag, in_table=True), pct(rate)]) for tag, rate in base]
        out.append("")
    else:
        out += ["No behaviour was tagged in the runs without a trigger.", ""]
    return out + _inversion(probe)


#: The renderer of each section type, in the order the sections appear in the report.
RENDERERS: dict[type, Callable[[Report, Any], list[str]]] = {
    LabelAnomaly: _model,
    ProbeSummary: _probe,
}
