"""Helpers shared by the report writers: category texts, severity scales, safe JSON."""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
from dataclasses import dataclass
from typing import Any

from ..findings import Finding, Severity, describe_mapping
from ..triggers import is_invisible

#: SARIF ``level`` for each severity (SARIF 2.1.0 §3.27.10).
SARIF_LEVEL: dict[Severity, str] = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}

#: ``security-severity`` on GitHub code scanning's CVSS-like scale: over 9.0 is critical,
#: 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low.
SECURITY_SEVERITY: dict[Severity, str] = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "1.0",
}

#: What a finding of each category means and what to do about it (SARIF rule help text).
CATEGORY_TEXT: dict[str, tuple[str, str]] = {
    "data-poisoning": (
        "Training records carry a pattern that switches their label or behaviour.",
        "Inspect the flagged records and the candidate trigger; quarantine them and trace where "
        "they came from before training on this data. Re-scan the model trained on it.",
    ),
    "spurious-correlation": (
        "A pattern predicts the outcome far more than chance, without signs of planting.",
        "Check whether the pattern is a legitimate signal or a shortcut the model will learn; "
        "rebalance or drop it if it is a shortcut. Accidental triggers are a risk too.",
    ),
    "model-backdoor": (
        "The model switches its output when a trigger pattern is present.",
        "Do not deploy this model until the trigger is explained. Replay the trigger on clean "
        "inputs, check the model's provenance, and retrain from audited data.",
    ),
    "agent-trigger": (
        "An agent or LLM changes its behaviour or tool calls when a trigger is present.",
        "Restrict the agent's tools and credentials, block the trigger at run time, and "
        "red-team the model again after remediation.",
    ),
    "supply-chain": (
        "An artifact's origin or integrity cannot be established.",
        "Verify the artifact's signature and digest against its publisher before use; run it "
        "with reduced privileges until provenance is verified.",
    ),
    "unsafe-serialization": (
        "An artifact uses a serialization format that can execute code when loaded.",
        "Do not load the artifact; convert it to a safe format (e.g. safetensors) in an "
        "isolated environment, or obtain a safe copy from the publisher.",
    ),
    "secret-exposure": (
        "Outputs or data expose secrets or credentials.",
        "Rotate the exposed credentials, remove them from the data, and limit what the model "
        "can reach.",
    ),
    "prompt-leakage": (
        "A trigger makes the model reveal its system prompt or internal policy text.",
        "Treat the leaked text as public; move secrets out of prompts and block the trigger.",
    ),
}


def category_text(category: str) -> tuple[str, str]:
    """(short description, help text) of a category, with a generic fallback."""
    return CATEGORY_TEXT.get(
        category,
        (
            f"Findings of category {category!r}.",
            "Review the evidence of each finding and the records or inputs it points at.",
        ),
    )


def mapping_titles(finding: Finding) -> list[tuple[str, str]]:
    """(framework id, title) for each mapping of a finding."""
    return [(ref, describe_mapping(ref)) for ref in finding.mappings]


def fingerprint(finding: Finding) -> str:
    """Stable identity of a finding across runs: scanner, category, trigger text and target.

    The title and score are left out on purpose (they may carry run-dependent numbers), except
    as a last resort when there is neither trigger nor target, label, behaviour or tool.
    """
    loc = finding.locator
    what = finding.trigger.text if finding.trigger else ""
    target = finding.target or loc.behaviour or loc.label or ""
    parts = [finding.scanner, finding.category, what, target, loc.tool or ""]
    if not any(parts[2:]):
        parts.append(finding.title)
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()


def json_default(obj: object) -> object:
    """``json`` fallback for numpy scalars and arrays; anything else is an error."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")


def visible_json(text: str) -> str:
    """JSON text with its invisible and reordering characters written as ``\\uXXXX`` escapes.

    ``json.dumps(..., ensure_ascii=False)`` keeps zero-width and bidirectional-control
    characters raw, so a trigger such as ``"\\u200bzq"`` would print as ``"zq"``. Such
    characters only occur inside JSON strings, where the escape keeps the text valid JSON
    (RFC 8259 §7; characters beyond U+FFFF as a surrogate pair). Other text is unchanged.
    """
    if not any(_hidden(ch) for ch in text):
        return text
    out = []
    for ch in text:
        if not _hidden(ch):
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            v = ord(ch) - 0x10000
            out.append(f"\\u{0xD800 + (v >> 10):04x}\\u{0xDC00 + (v & 0x3FF):04x}")
    return "".join(out)


def is_task_feature(finding: Finding) -> bool:
    """A data scan's task feature (a natural, on-topic pattern), listed apart from findings."""
    return any(ev.name == "verdict" and ev.value == "task-feature" for ev in finding.evidence)


def split_task_features(findings: list[Finding]) -> tuple[list[Finding], list[Finding]]:
    """(findings to list as findings, task features to list in their own table)."""
    main = [f for f in findings if not is_task_feature(f)]
    return main, [f for f in findings if is_task_feature(f)]


def task_feature_cells(finding: Finding) -> tuple[str, str, str, str, str]:
    """Pattern, class, records, P(planted), context AUC of a task feature, as text."""
    ev = evidence_dict(finding)
    return (
        finding.trigger.display if finding.trigger else "",
        (finding.target or "").removeprefix("label:"),
        fmt_value(ev.get("support", "")),
        fmt_value(ev.get("p_planted", "")),
        fmt_value(ev.get("context_auc_class", "")),
    )


#: Heading row of the task-feature table (both writers).
TASK_FEATURE_HEAD = ("pattern", "class", "records", "P(planted)", "context AUC")
TASK_FEATURE_NOTE = (
    "Natural, on-topic patterns of a class that the rest of its records predict: the task's own "
    "signal, not triggers (info)."
)


def evidence_dict(finding: Finding) -> dict[str, Any]:
    """Evidence as ``{name: value}`` in the order the scanner gave it."""
    return {ev.name: ev.value for ev in finding.evidence}


def fmt_value(value: object) -> str:
    """Short human form of an evidence value (floats to 4 significant digits)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# -- probe transcripts and probe extras ------------------------------------------------------
#
# A differential probe (``dormant probe``, :mod:`dormant.scanners.agent.probes`) stores, per
# finding, evidence items ``transcript_<i>`` whose value is a JSON string
# ``{"task_id", "with_trigger": {"messages", "tags"}, "without_trigger": {...}}`` with messages
# in the OpenAI chat-completions shape (role, content, tool_calls, tool_call_id, name), and
# report extras ``model_verdict``, ``probe`` and ``replay``. The helpers below turn them into
# plain structures both writers render; everything in them is model output or task text and
# stays untrusted (the writers escape it).

#: Evidence items whose name starts with this hold a probe transcript.
TRANSCRIPT_PREFIX = "transcript_"
#: Characters of one message shown at most (the middle of a longer one is left out).
MAX_MESSAGE_CHARS = 4000
#: Roles of the OpenAI chat format; anything else is shown as given but not styled by role.
ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Message:
    """One message of a transcript: role, text, tool calls as ``(name, arguments JSON)``."""

    role: str
    content: str
    calls: tuple[tuple[str, str, str], ...] = ()  # (name, arguments JSON, call id)
    call_id: str = ""
    name: str = ""


@dataclass(frozen=True)
class Run:
    """One run of a task: its messages and the behaviour tags seen in it."""

    messages: tuple[Message, ...]
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Transcript:
    """One example of a probe finding: a task run without and with the trigger."""

    name: str
    raw: str
    task_id: str
    without_trigger: Run
    with_trigger: Run


@dataclass(frozen=True)
class Piece:
    """A stretch of displayed text.

    ``mark`` is a visible stand-in for an invisible or control character (``⟨U+200B⟩``);
    ``trigger`` is 0 outside the trigger and ``k`` inside its ``k``-th occurrence.
    """

    text: str
    mark: bool = False
    trigger: int = 0


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):  # OpenAI content parts: keep the text ones
        return "".join(str(p.get("text", "")) for p in value if isinstance(p, dict))
    return str(value)


def _message(obj: object) -> Message | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("role"), str):
        return None
    raw_calls = obj.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        return None
    calls = []
    for c in raw_calls:
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict):
            return None
        args = fn.get("arguments", "")
        if not isinstance(args, str):
            args = json.dumps(args, sort_keys=True, ensure_ascii=False, default=str)
        calls.append((str(fn.get("name", "")), args, str(c.get("id") or "")))
    return Message(
        obj["role"],
        _text(obj.get("content")),
        tuple(calls),
        str(obj.get("tool_call_id") or ""),
        str(obj.get("name") or ""),
    )


def _run(obj: object) -> Run | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        return None
    msgs = [_message(m) for m in obj["messages"]]
    tags = obj.get("tags") or []
    if any(m is None for m in msgs) or not isinstance(tags, list):
        return None
    return Run(tuple(m for m in msgs if m is not None), tuple(str(t) for t in tags))


def parse_transcript(name: str, value: object) -> Transcript | None:
    """A probe transcript from its evidence value, or ``None`` when it is not one.

    A value that is not the JSON shape the probe writes (see the module comment) gives
    ``None``; the writers then show it as a plain evidence value.
    """
    if not name.startswith(TRANSCRIPT_PREFIX) or not isinstance(value, str):
        return None
    try:
        obj = json.loads(value)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    without, with_ = _run(obj.get("without_trigger")), _run(obj.get("with_trigger"))
    if without is None or with_ is None:
        return None
    return Transcript(name, value, str(obj.get("task_id", "")), without, with_)


def finding_transcripts(finding: Finding) -> list[Transcript]:
    """The transcripts among a finding's evidence, in the order the scanner gave them."""
    out = []
    for ev in finding.evidence:
        t = parse_transcript(ev.name, ev.value)
        if t is not None:
            out.append(t)
    return out


def _mark(ch: str) -> str:
    return f"⟨U+{ord(ch):04X}⟩"


def _hidden(ch: str) -> bool:
    """Whether a character would not show (or would reorder the text) when printed."""
    if ch in "\n\t":
        return False
    return (
        is_invisible(ch)
        or unicodedata.category(ch) in ("Cc", "Zl", "Zp")
        or (ord(ch) > 127 and not ch.isprintable())
    )


def reveal(text: str, trigger: str | None = None) -> list[Piece]:
    """Split ``text`` into pieces to display, with hidden characters and the trigger marked.

    Invisible and format characters (:func:`dormant.triggers.is_invisible`: zero-width
    characters, bidirectional controls as in "Trojan Source", Boucher & Anderson, USENIX
    Security 2023, tag characters), control characters other than newline and tab, and other
    non-printable characters become marks ``⟨U+XXXX⟩``. Inside each occurrence of ``trigger``
    non-ASCII letters also get a mark after them, as :func:`dormant.triggers.describe_text`
    shows homoglyphs (Unicode TR39 confusables).
    """
    spans: list[tuple[int, int]] = []
    if trigger:
        at = text.find(trigger)
        while at >= 0:
            spans.append((at, at + len(trigger)))
            at = text.find(trigger, at + len(trigger))
    out: list[Piece] = []
    buf: list[str] = []
    occurrence = 0

    def flush() -> None:
        if buf:
            out.append(Piece("".join(buf), trigger=occurrence))
            buf.clear()

    bounds = iter(spans)
    cur = next(bounds, None)
    for i, ch in enumerate(text):
        if cur is not None and i == cur[0]:
            flush()
            occurrence = len([s for s in spans if s[0] <= i])
        if _hidden(ch):
            flush()
            out.append(Piece(_mark(ch), mark=True, trigger=occurrence))
        elif occurrence and ord(ch) > 127 and ch.isalpha():
            buf.append(ch)
            flush()
            out.append(Piece(_mark(ch), mark=True, trigger=occurrence))
        else:
            buf.append(ch)
        if cur is not None and i == cur[1] - 1:
            flush()
            occurrence = 0
            cur = next(bounds, None)
    flush()
    return out


def plain(pieces: list[Piece], open_trigger: str = "", close_trigger: str = "") -> str:
    """Pieces as one plain string, each trigger occurrence wrapped in the given brackets."""
    out = []
    prev = 0
    for p in pieces:
        if p.trigger != prev:
            if prev:
                out.append(close_trigger)
            if p.trigger:
                out.append(open_trigger)
            prev = p.trigger
        out.append(p.text)
    if prev:
        out.append(close_trigger)
    return "".join(out)


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> tuple[str, int, str]:
    """``(head, left out, tail)``: the start and end of a long text with its middle left out.

    Both ends are kept because a trigger is most often inserted before or after a prompt.
    """
    if len(text) <= limit:
        return text, 0, ""
    half = limit // 2
    return text[:half], len(text) - 2 * half, text[-half:]


# -- probe extras -------------------------------------------------------------------------

#: A sentence for the writers: ``(text, as_code)`` parts, code parts being untrusted values.
Inline = list[tuple[str, bool]]


def probe_extras(extras: dict[str, Any]) -> dict[str, Any] | None:
    """``extras["probe"]`` when the report comes from a differential probe, else ``None``."""
    probe = extras.get("probe")
    return probe if isinstance(probe, dict) else None


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


def probe_rows(probe: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The dict rows of ``probe[key]`` (``screened``, ``confirmed``), others dropped."""
    rows = probe.get(key)
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def baseline_rates(probe: dict[str, Any]) -> list[tuple[str, float]]:
    """``(tag, rate)`` of the baseline runs, most frequent first."""
    rates = _dict(probe.get("baseline_rates"))
    out = [(str(k), f) for k, v in rates.items() if (f := _num(v)) is not None]
    return sorted(out, key=lambda kv: (-kv[1], kv[0]))


def probe_verdict(extras: dict[str, Any], n_findings: int) -> Inline:
    """The verdict sentence of a probe report, from ``extras["model_verdict"]``."""
    v = _dict(extras.get("model_verdict"))
    prob = _num(v.get("probability"))
    score = f" (evidence score {prob:.3f})" if prob is not None else ""
    if v.get("backdoored"):
        parts: Inline = [("Trigger found: ", False)]
        if v.get("trigger"):
            parts.append((str(v["trigger"]), True))
            if v.get("position"):
                parts.append((f" ({v['position']})", False))
        else:
            parts.append(("an input condition", False))
        parts.append((" switches the model to ", False))
        parts.append((str(v.get("target") or "a behaviour"), True))
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


def probe_facts(extras: dict[str, Any], probe: dict[str, Any]) -> str:
    """What the probe did: episodes, model calls, time, candidates, conditions, task sets."""
    v = _dict(extras.get("model_verdict"))
    tasks = _dict(probe.get("tasks"))
    bits = []
    if v.get("method"):
        bits.append(f"{v['method']}:")
    cost = []
    for key, word in (("episodes", "episodes"), ("model_calls", "model calls")):
        n = _num(v.get(key))
        if n is not None:
            cost.append(f"{int(n)} {word}")
    secs = _num(v.get("seconds"))
    if cost:
        bits.append(", ".join(cost) + (f" in {secs:.1f} s" if secs is not None else "") + ";")
    cands, conds = _num(probe.get("candidates")), _num(probe.get("conditions"))
    screened = _num(probe.get("conditions_screened"))
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


def probe_replay(extras: dict[str, Any]) -> Inline:
    """The held-out replay of the top finding, from ``extras["replay"]`` (empty when none)."""
    r = _dict(extras.get("replay"))
    if not r or "flip_rate" in r:  # a model scan's replay has its own shape
        return []
    rate, n = _num(r.get("rate")), _num(r.get("n"))
    parts: Inline = [("Held-out replay of the top finding: ", False)]
    if r.get("trigger"):
        parts += [(str(r["trigger"]), True)]
        if r.get("position"):
            parts.append((f" ({r['position']})", False))
        parts.append((" → ", False))
    parts.append((str(r.get("target") or "?"), True))
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


def probe_notices(extras: dict[str, Any], probe: dict[str, Any], *, partial: bool) -> list[str]:
    """Warnings a reader must see before trusting the numbers: capped, partial, failures."""
    v = _dict(extras.get("model_verdict"))
    out = []
    if v.get("capped") or probe.get("capped"):
        stage = probe.get("capped_stage")
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
    failed = _num(probe.get("episode_errors"))
    if failed:
        examples = [str(e) for e in probe.get("episode_error_examples") or [] if e]
        out.append(
            f"{int(failed)} episode{'s' if failed != 1 else ''} failed and "
            f"{'were' if failed != 1 else 'was'} left out of the counts"
            + (": " + "; ".join(examples[:3]) if examples else ".")
        )
    inv = _dict(probe.get("inversion"))
    if inv.get("capped"):
        out.append(
            "The trigger inversion ran out of time: fewer targets or triggers were inverted "
            "than asked for."
        )
    return out


def inversion(probe: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(targets, triggers)`` of ``probe["inversion"]`` (both empty when it did not run)."""
    inv = _dict(probe.get("inversion"))
    return probe_rows(inv, "targets"), probe_rows(inv, "triggers")


def pair_finding(row: dict[str, Any], findings: list[Finding]) -> int | None:
    """1-based number of the finding a probe pair row became, or ``None`` when it did not.

    A pair (trigger, position, behaviour) became a finding when a finding has its trigger and
    behaviour and lists its position among the positions that switch.
    """
    for i, f in enumerate(findings, 1):
        if f.trigger is None or f.trigger.display != row.get("trigger"):
            continue
        if (f.target or f.locator.behaviour) != row.get("tag"):
            continue
        positions = str(f.evidence_value("positions") or f.evidence_value("position") or "")
        if str(row.get("position")) in positions.split(", "):
            return i
    return None
