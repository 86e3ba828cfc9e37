"""A probe's transcripts: per finding, each example task run without and with the trigger.

A differential probe stores, per finding, evidence items ``transcript_<i>`` whose value is a
JSON string ``{"task_id", "with_trigger": {"messages", "tags"}, "without_trigger": {...}}``
with messages in the OpenAI chat-completions shape (role, content, tool_calls, tool_call_id,
name). :func:`finding_transcripts` gives them as typed :class:`Transcript` records (also
importable from :mod:`dormant.sections`). Everything in them is model output or task text and
stays untrusted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .findings import Finding

__all__ = ["Message", "Run", "Transcript", "finding_transcripts", "parse_transcript"]

#: Evidence items whose name starts with this hold a probe transcript.
TRANSCRIPT_PREFIX = "transcript_"


@dataclass(frozen=True)
class Message:
    """One message of a transcript: role, text, tool calls as ``(name, arguments JSON, id)``."""

    role: str
    content: str
    calls: tuple[tuple[str, str, str], ...] = ()
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
    """A probe transcript from its evidence item, or ``None`` when it is not one.

    A value that is not the JSON shape the probe writes gives ``None``; the writers then
    show it as a plain evidence value.
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
