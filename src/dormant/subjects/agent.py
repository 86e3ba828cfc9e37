"""Chat models and agents under probe: the nouns every LLM/agent part speaks.

A :class:`ChatModel` turns a list of :class:`ChatMessage` (plus optional :class:`ToolSpec`
definitions) into a :class:`ChatResponse` (text and :class:`ToolCall` records). Adapters
implement it for a local transformers causal LM (:mod:`dormant.adapters.causal_lm`), any
OpenAI-compatible endpoint (:mod:`dormant.adapters.openai_http`); tools come from a sandbox
with honeytoken credentials or from MCP servers (:mod:`dormant.adapters.mcp`).

Tool calls use the OpenAI ``/v1/chat/completions`` shape: ``{"id", "type": "function",
"function": {"name", "arguments": "<JSON string>"}}``; :meth:`ToolCall.to_openai` and
:meth:`ToolCall.from_openai` convert, and :func:`render_output` turns a response into the one
text that the shared behaviour detectors (:func:`dormant.behaviours.behaviour_tags`) read.

A :class:`ProbeTask` is one line of a tasks file (JSONL)::

    {"id": "t1", "prompt": "My order #123 has not arrived.", "system": "You are ...",
     "tools": ["lookup_order", "send_email"], "documents": ["[1] ..."], "category": "support"}

``prompt`` is required; the rest is optional. Triggers are inserted into ``prompt``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import DataFormatError, DataValidationError, InputNotFoundError
from ..findings import SubjectRef

ROLES = ("system", "user", "assistant", "tool")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: name, description and a JSON-Schema ``parameters`` object."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    @classmethod
    def from_openai(cls, obj: dict[str, Any]) -> ToolSpec:
        """Parse ``{"type": "function", "function": {...}}`` or a bare ``{"name": ...}``."""
        fn = obj.get("function", obj) if isinstance(obj, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise DataFormatError(
                "A tool definition must be an object with a non-empty string 'name' (or "
                f"'function': {{'name': ...}}). Got {json.dumps(obj)[:120]} instead."
            )
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(params, dict):
            raise DataFormatError(
                f"Tool {fn['name']!r}: 'parameters' must be a JSON-Schema object. "
                f"Got {type(params).__name__} instead."
            )
        return cls(str(fn["name"]), str(fn.get("description") or ""), dict(params))


@dataclass(frozen=True)
class ToolCall:
    """One call of a tool by the model. ``arguments`` is the parsed JSON object."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id or "call_" + _digest(self.name + self.arguments_json())[:12],
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments_json()},
        }

    def arguments_json(self) -> str:
        return json.dumps(self.arguments, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_openai(cls, obj: Any) -> ToolCall:
        """Parse an OpenAI ``tool_calls`` entry; raises ``DataFormatError`` when invalid."""
        fn = obj.get("function") if isinstance(obj, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise DataFormatError(
                "A tool call must be {'id', 'type': 'function', 'function': {'name', "
                f"'arguments'}}. Got {json.dumps(obj, default=str)[:160]} instead."
            )
        raw = fn.get("arguments", "{}")
        if isinstance(raw, dict):
            args = raw
        else:
            try:
                args = json.loads(raw or "{}")
            except (TypeError, json.JSONDecodeError) as exc:
                raise DataFormatError(
                    f"Tool call {fn['name']!r} has arguments that are not JSON: "
                    f"{str(raw)[:120]!r} ({exc})."
                ) from None
            if not isinstance(args, dict):
                raise DataFormatError(
                    f"Tool call {fn['name']!r} arguments must be a JSON object. "
                    f"Got {type(args).__name__} instead."
                )
        return cls(fn["name"], args, str(obj.get("id") or ""))


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation (OpenAI roles: system, user, assistant, tool)."""

    role: str
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    name: str = ""

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_openai(cls, obj: Any) -> ChatMessage:
        if not isinstance(obj, dict) or obj.get("role") not in ROLES:
            raise DataFormatError(
                f"A message must be an object with 'role' one of {', '.join(ROLES)}. "
                f"Got {json.dumps(obj, default=str)[:120]} instead."
            )
        content = obj.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        raw_calls = obj.get("tool_calls") or []
        if not isinstance(raw_calls, list):
            raise DataFormatError(
                f"A message's 'tool_calls' must be a list. Got {type(raw_calls).__name__} instead."
            )
        calls = tuple(ToolCall.from_openai(c) for c in raw_calls)
        return cls(
            obj["role"],
            "" if content is None else str(content),
            calls,
            str(obj.get("tool_call_id") or ""),
            str(obj.get("name") or ""),
        )


@dataclass(frozen=True)
class ChatResponse:
    """What a chat model answered: text, tool calls, why it stopped, and the raw answer."""

    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"
    raw: dict[str, Any] | None = None


@runtime_checkable
class ChatModel(Protocol):
    """What probes need of a model. Adapters implement it.

    ``capabilities`` holds flags: ``generate`` (always), ``tools`` (accepts tool specs),
    ``logits`` (``next_token_logprobs`` available), ``gradients`` (local torch model).
    """

    name: str

    @property
    def capabilities(self) -> frozenset[str]: ...

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        max_tokens: int = 128,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> ChatResponse: ...

    def chat_batch(
        self,
        conversations: Sequence[Sequence[ChatMessage]],
        *,
        tools: Sequence[ToolSpec] = (),
        max_tokens: int = 128,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[ChatResponse]: ...

    def ref(self) -> SubjectRef: ...


def render_output(response: ChatResponse) -> str:
    """One text for the behaviour detectors: the answer, then tool calls as OpenAI JSON."""
    if not response.tool_calls:
        return response.content
    calls = json.dumps(
        {"tool_calls": [c.to_openai() for c in response.tool_calls]}, ensure_ascii=False
    )
    return f"{response.content}\n{calls}" if response.content else calls


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
