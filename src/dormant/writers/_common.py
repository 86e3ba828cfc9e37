"""Helpers shared by the report writers: category texts, severity scales, safe JSON."""

from __future__ import annotations

import hashlib
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


# -- displaying untrusted text ---------------------------------------------------------------
#
# Probe transcripts (:func:`dormant.sections.finding_transcripts`), replayed examples and
# inverted targets are model output or task text: the helpers below mark what would not show
# and cut what is too long; the writers escape the rest.

#: Characters of one message shown at most (the middle of a longer one is left out).
MAX_MESSAGE_CHARS = 4000
#: Roles of the OpenAI chat format; anything else is shown as given but not styled by role.
ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Piece:
    """A stretch of displayed text.

    ``mark`` is a visible stand-in for an invisible or control character (``⟨U+200B⟩``);
    ``trigger`` is 0 outside the trigger and ``k`` inside its ``k``-th occurrence.
    """

    text: str
    mark: bool = False
    trigger: int = 0


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
