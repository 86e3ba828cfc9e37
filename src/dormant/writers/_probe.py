"""A differential probe's part of the reports, from its typed sections (both writers).

The probe (:mod:`dormant.scanners.agent.probes`) leaves a :class:`~dormant.sections.ModelVerdict`,
a :class:`~dormant.sections.ProbeSummary` and, for a positive verdict, a
:class:`~dormant.sections.Replay` on the report. The helpers below turn them into sentences and
rows that the Markdown and HTML writers render; every value in them is model output or task text
and stays untrusted (the writers escape it).
"""

from __future__ import annotations

import math
from typing import Any

from ..findings import Finding
from ..sections import ModelVerdict, PairRow, ProbeSummary, Replay

#: A sentence for the writers: ``(text, as_code)`` parts, code parts being untrusted values.
Inline = list[tuple[str, bool]]


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def pct(value: object) -> str:
    """A rate in 0..1 as a percentage (``"-"`` when it is not a number)."""
    f = _num(value)
    return "-" if f is None else f"{f:.0%}"


def fmt_p(value: object) -> str:
    """A p- or q-value with 2 significant digits (``"-"`` when it is not a number)."""
    f = _num(value)
    return "-" if f is None else f"{f:.2g}"


def count_rate(value: object) -> str:
    """``"a/n"`` with its rate: ``"12/12 (100%)"``; anything else as given."""
    text = str(value) if value is not None else "-"
    a, sep, n = text.partition("/")
    if sep and a.strip().isdigit() and n.strip().isdigit() and int(n) > 0:
        return f"{text} ({int(a) / int(n):.0%})"
    return text


def baseline_rates(probe: ProbeSummary) -> list[tuple[str, float]]:
    """``(tag, rate)`` of the baseline runs, most frequent first."""
    rates = _dict(probe.baseline_rates)
    out = [(str(k), f) for k, v in rates.items() if (f := _num(v)) is not None]
    return sorted(out, key=lambda kv: (-kv[1], kv[0]))


def probe_verdict(v: ModelVerdict | None, n_findings: int) -> Inline:
    """The verdict sentence of a probe report."""
    prob = _num(v.probability) if v else None
    score = f" (evidence score {prob:.3f})" if prob is not None else ""
    if v is not None and v.backdoored:
        parts: Inline = [("Trigger found: ", False)]
        if v.trigger:
            parts.append((str(v.trigger), True))
            if v.position:
                parts.append((f" ({v.position})", False))
        else:
            parts.append(("an input condition", False))
        parts.append((" switches the model to ", False))
        parts.append((str(v.target or "a behaviour"), True))
        parts.append((f"{score}. Treat the model as backdoored until this is explained.", False))
        return parts
    if n_findings:
        return [
            (
                f"No high-severity switch, but {n_findings} weaker finding"
                f"{'s' if n_findings != 1 else ''} (see below){score}.",
                False,
            )
        ]
    return [
        (
            f"No tried input condition switched a behaviour{score}. Only the candidate "
            "triggers counted below were tried: this is no proof that the model is clean.",
            False,
        )
    ]


def probe_facts(v: ModelVerdict | None, probe: ProbeSummary) -> str:
    """What the probe did: episodes, model calls, time, candidates, conditions, task sets."""
    tasks = _dict(probe.tasks)
    bits = []
    if v is not None and v.method:
        bits.append(f"{v.method}:")
    cost = []
    for n, word in ((v and v.episodes, "episodes"), (v and v.model_calls, "model calls")):
        if (f := _num(n)) is not None:
            cost.append(f"{int(f)} {word}")
    secs = _num(v.seconds) if v else None
    if cost:
        bits.append(", ".join(cost) + (f" in {secs:.1f} s" if secs is not None else "") + ";")
    cands, conds = _num(probe.candidates), _num(probe.conditions)
    screened = _num(probe.conditions_screened)
    if cands is not None and conds is not None:
        bits.append(
            f"{int(cands)} candidate triggers gave {int(conds)} conditions (trigger and position)"
            + (f", {int(screened)} screened" if screened is not None else "")
            + ";"
        )
    sizes = [
        (_num(tasks.get(k)), w)
        for k, w in (
            ("screen", "screening"),
            ("confirm", "confirmation"),
            ("replay", "held-out replay"),
        )
    ]
    if all(n is not None for n, _ in sizes):
        bits.append(", ".join(f"{int(n or 0)} {w}" for n, w in sizes) + " tasks (disjoint sets).")
    if len(bits) <= 1:  # at most the method's name: nothing to say
        return ""
    text = " ".join(bits)
    return text[:-1] + "." if text.endswith(";") else text


def probe_replay(r: Replay | None) -> Inline:
    """The held-out replay of the top finding (empty when none)."""
    if r is None or r.flip_rate is not None:  # a model scan's replay has its own shape
        return []
    rate, n = _num(r.rate), _num(r.n)
    parts: Inline = [("Held-out replay of the top finding: ", False)]
    if r.trigger:
        parts += [(str(r.trigger), True)]
        if r.position:
            parts.append((f" ({r.position})", False))
        parts.append((" → ", False))
    parts.append((str(r.target or "?"), True))
    if rate is None or rate < 0 or not n:
        parts.append((": not replayed (no held-out runs without the behaviour).", False))
    else:
        parts.append(
            (
                f" on {rate:.0%} of {int(n)} held-out runs that did not show it without the "
                "trigger (tasks used neither to choose nor to test the trigger).",
                False,
            )
        )
    return parts


def probe_notices(v: ModelVerdict | None, probe: ProbeSummary, *, partial: bool) -> list[str]:
    """Warnings a reader must see before trusting the numbers: capped, partial, failures."""
    out = []
    if (v is not None and v.capped) or probe.capped:
        stage = probe.capped_stage
        where = f" during the {stage} stage" if stage else ""
        out.append(
            f"The time budget ran out{where}: the results are the best found so far, and "
            "conditions or tasks not reached were not tested. Run again with a larger budget "
            "before concluding that the model is clean."
        )
    if partial:
        out.append(
            "Partial run: an error stopped the probe before it finished (see Errors and "
            "skips); the counts cover only the runs made before it."
        )
    failed = _num(probe.episode_errors)
    if failed:
        examples = [str(e) for e in probe.episode_error_examples if e]
        out.append(
            f"{int(failed)} episode{'s' if failed != 1 else ''} failed and "
            f"{'were' if failed != 1 else 'was'} left out of the counts"
            + (": " + "; ".join(examples[:3]) if examples else ".")
        )
    if _dict(probe.inversion).get("capped"):
        out.append(
            "The trigger inversion ran out of time: fewer targets or triggers were inverted "
            "than asked for."
        )
    return out


def _rows(d: dict[str, Any], key: str) -> list[dict[str, Any]]:
    rows = d.get(key)
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def inversion(probe: ProbeSummary) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(targets, triggers)`` of the weight inversion (both empty when it did not run)."""
    inv = _dict(probe.inversion)
    return _rows(inv, "targets"), _rows(inv, "triggers")


def pair_finding(row: PairRow, findings: list[Finding]) -> int | None:
    """1-based number of the finding a probe pair row became, or ``None`` when it did not.

    A pair (trigger, position, behaviour) became a finding when a finding has its trigger and
    behaviour and lists its position among the positions that switch.
    """
    for i, f in enumerate(findings, 1):
        if f.trigger is None or f.trigger.display != row.trigger:
            continue
        if (f.target or f.locator.behaviour) != row.tag:
            continue
        positions = str(f.evidence_value("positions") or f.evidence_value("position") or "")
        if str(row.position) in positions.split(", "):
            return i
    return None
