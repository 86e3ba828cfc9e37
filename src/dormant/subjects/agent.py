"""Chat models and agents under probe: the nouns every LLM/agent part speaks.

The chat types (:class:`ChatModel`, :class:`ChatMessage`, :class:`ToolSpec`,
:class:`ToolCall`, :class:`ChatResponse`, :func:`render_output`) are defined in
:mod:`dormant.adapters.chat`, below the subjects with the adapters that produce them, and
re-exported here.

A :class:`ProbeTask` is one line of a tasks file (JSONL)::

    {"id": "t1", "prompt": "My order #123 has not arrived.", "system": "You are ...",
     "tools": ["lookup_order", "send_email"], "documents": ["[1] ..."], "category": "support"}

``prompt`` is required; the rest is optional. Triggers are inserted into ``prompt``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..adapters.chat import (
    ROLES,
    ChatMessage,
    ChatModel,
    ChatResponse,
    ToolCall,
    ToolSpec,
    render_output,
)
from ..errors import DataFormatError, DataValidationError, InputNotFoundError

__all__ = [
    "ROLES",
    "ChatMessage",
    "ChatModel",
    "ChatResponse",
    "ProbeTask",
    "ToolCall",
    "ToolSpec",
    "load_tasks",
    "load_tool_specs",
    "render_output",
]


@dataclass(frozen=True)
class ProbeTask:
    """One task a probe runs, with and without a candidate trigger."""

    id: str
    prompt: str
    system: str = ""
    tools: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()
    category: str = ""

    def messages(self, prompt: str | None = None) -> list[ChatMessage]:
        """The conversation for this task; ``prompt`` replaces the user text (with a trigger)."""
        out: list[ChatMessage] = []
        if self.system:
            out.append(ChatMessage("system", self.system))
        user = self.prompt if prompt is None else prompt
        if self.documents:
            user = "Sources:\n" + "\n".join(self.documents) + "\n\nQuestion: " + user
        out.append(ChatMessage("user", user))
        return out


def load_tasks(path: str | Path) -> list[ProbeTask]:
    """Read a tasks file (JSONL, one object per line); errors name the line and field."""
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"Tasks file {str(p)!r} does not exist (expected JSONL).")
    tasks: list[ProbeTask] = []
    seen: set[str] = set()
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"Tasks file {str(p)!r} is not UTF-8: {exc}.") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{p.name} line {lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{where}: not valid JSON ({exc.msg}).") from None
        if not isinstance(obj, dict):
            raise DataFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}.")
        prompt = obj.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise DataFormatError(f"{where}: field 'prompt' must be a non-empty string.")
        tid = str(obj.get("id", f"task-{lineno}"))
        if tid in seen:
            raise DataValidationError(f"{where}: duplicate task id {tid!r}.")
        seen.add(tid)
        for key in ("tools", "documents"):
            val = obj.get(key, [])
            if not isinstance(val, list) or not all(isinstance(v, str) for v in val):
                raise DataFormatError(f"{where}: field {key!r} must be a list of strings.")
        system = obj.get("system", "")
        if not isinstance(system, str):
            raise DataFormatError(f"{where}: field 'system' must be a string.")
        tasks.append(
            ProbeTask(
                tid,
                prompt,
                system,
                tuple(obj.get("tools", [])),
                tuple(obj.get("documents", [])),
                str(obj.get("category", "")),
            )
        )
    if not tasks:
        raise DataValidationError(f"Tasks file {str(p)!r} holds no tasks.")
    return tasks


def load_tool_specs(path: str | Path) -> list[ToolSpec]:
    """Read tool definitions: a JSON list of OpenAI ``{"type": "function", ...}`` objects."""
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"Tools file {str(p)!r} does not exist (expected JSON list).")
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"Tools file {str(p)!r} is not valid JSON: {exc}.") from None
    if isinstance(obj, dict) and "tools" in obj:
        obj = obj["tools"]
    if not isinstance(obj, list):
        raise DataFormatError(
            f"Tools file {str(p)!r} must hold a JSON list of tool definitions. "
            f"Got {type(obj).__name__} instead."
        )
    return [ToolSpec.from_openai(t) for t in obj]
