"""Chat types: the messages, tool definitions, tool calls and responses every LLM part speaks.

A :class:`ChatModel` turns a list of :class:`ChatMessage` (plus optional :class:`ToolSpec`
definitions) into a :class:`ChatResponse` (text and :class:`ToolCall` records). Adapters
implement it for a local transformers causal LM (:mod:`dormant.adapters.causal_lm`) and any
OpenAI-compatible endpoint (:mod:`dormant.adapters.openai_http`); tools come from the sandbox
(:mod:`dormant.subjects.sandbox`) or from MCP servers (:mod:`dormant.adapters.mcp`).

Tool calls use the OpenAI ``/v1/chat/completions`` shape: ``{"id", "type": "function",
"function": {"name", "arguments": "<JSON string>"}}``; :meth:`ToolCall.to_openai` and
:meth:`ToolCall.from_openai` convert, and :func:`render_output` turns a response into the one
text that the shared behaviour detectors (:func:`dormant.behaviours.behaviour_tags`) read.
The types live here, with the adapters that produce them; :mod:`dormant.subjects.agent`
re-exports them beside the probe tasks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import DataFormatError
from ..findings import SubjectRef

__all__ = [
    "ROLES",
    "ChatMessage",
    "ChatModel",
    "ChatResponse",
    "ToolCall",
    "ToolSpec",
    "render_output",
]

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
