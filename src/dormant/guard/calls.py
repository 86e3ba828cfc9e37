"""From wire formats to the guard's nouns: OpenAI tool calls and messages, MCP ``tools/call``.

Every face of the guard needs the same translation, and getting it wrong is a way around the
guard (arguments that are not a JSON object, a tool call with no name), so it lives here once:
anything that does not parse becomes a :class:`ProposedCall` that :func:`decide` denies as
malformed — never an exception that a face might turn into a pass-through.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .types import ProposedCall

_SYSTEM_ROLES = ("system", "developer")


def call_from_openai(tool_call: Any) -> ProposedCall:
    """One OpenAI ``tool_calls[i]`` (``{"id", "type": "function", "function": {"name",
    "arguments"}}``) or legacy ``function_call`` object as a :class:`ProposedCall`."""
    if not isinstance(tool_call, dict):
        return ProposedCall("", raw_arguments=_raw(tool_call))
    fn = tool_call.get("function", tool_call)
    call_id = tool_call.get("id") if isinstance(tool_call.get("id"), str) else None
    if not isinstance(fn, dict):
        return ProposedCall("", call_id=call_id, raw_arguments=_raw(fn))
    name = fn.get("name")
    name = name if isinstance(name, str) else ""
    return _with_arguments(name, fn.get("arguments"), call_id)


def call_from_mcp(params: Any) -> ProposedCall:
    """MCP ``tools/call`` params (``{"name", "arguments"}``) as a :class:`ProposedCall`."""
    if not isinstance(params, dict):
        return ProposedCall("", raw_arguments=_raw(params))
    name = params.get("name")
    return _with_arguments(name if isinstance(name, str) else "", params.get("arguments"), None)


def _with_arguments(name: str, args: Any, call_id: str | None) -> ProposedCall:
    if args is None or args == "":
        return ProposedCall(name, {}, call_id)
    if isinstance(args, dict):
        return ProposedCall(name, args, call_id)
    if isinstance(args, str):
        try:
            parsed = json.loads(args)
        except (json.JSONDecodeError, RecursionError):
            return ProposedCall(name, {}, call_id, raw_arguments=args[:2000])
        if isinstance(parsed, dict):
            return ProposedCall(name, parsed, call_id)
    return ProposedCall(name, {}, call_id, raw_arguments=_raw(args))


def _raw(value: Any) -> str:
    try:
        return json.dumps(value, default=str)[:2000]
    except (TypeError, ValueError, RecursionError):
        return repr(value)[:2000]


def message_text(content: Any) -> str:
    """The text of an OpenAI message ``content``: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, dict) and isinstance(p.get("text"), str):
                parts.append(p["text"])
            elif isinstance(p, str):
                parts.append(p)
        return "\n".join(parts)
    return ""


def request_texts(messages: Sequence[Any]) -> list[tuple[str, str]]:
    """``(where, text)`` for every message of an OpenAI request, for trigger matching.

    ``where`` is ``message[i]`` (``tool_result[i]`` for ``role: tool`` messages, which carry
    retrieved or fetched content); the arguments of earlier assistant tool calls are included
    as ``tool_call[i]``.
    """
    out: list[tuple[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            continue
        where = f"tool_result[{i}]" if m.get("role") == "tool" else f"message[{i}]"
        text = message_text(m.get("content"))
        if text:
            out.append((where, text))
        for tc in m.get("tool_calls") or ():
            if isinstance(tc, dict) and isinstance(tc.get("function"), dict):
                args = tc["function"].get("arguments")
                if isinstance(args, str) and args:
                    out.append((f"tool_call[{i}]", args))
    return out


def system_prompt(messages: Sequence[Any]) -> str | None:
    """The request's system (or developer) messages joined, or ``None``."""
    texts = [
        message_text(m.get("content"))
        for m in messages
        if isinstance(m, dict) and m.get("role") in _SYSTEM_ROLES
    ]
    joined = "\n".join(t for t in texts if t)
    return joined or None


__all__ = ["call_from_mcp", "call_from_openai", "message_text", "request_texts", "system_prompt"]
