"""OpenAI Chat Completions shapes for the guard proxy: errors, tool calls, rewritten answers.

The proxy speaks the OpenAI Chat Completions wire format (``POST /v1/chat/completions``, the
``tools`` / ``tool_calls`` fields, and the ``text/event-stream`` chunk format of
``stream: true`` — https://platform.openai.com/docs/api-reference/chat). This module holds the
pure functions that read and rewrite those JSON bodies, so the ASGI side
(:mod:`dormant.guard.proxy`) only routes, authenticates and awaits.

Nothing here decides, and reading tool calls into the guard's records is the core's
(:mod:`dormant.guard.calls`); the decisions come back in here to remove what was denied or
held and to say so in the assistant message the client receives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..serve._http import RequestError
from .types import Decision, Outcome

#: Prefix of every notice the guard writes into an assistant message.
NOTICE_PREFIX = "[dormant guard]"


#: An answer the proxy gives as an OpenAI-shaped error (never leaves the proxy): the same
#: ``{"error": {...}}`` shape ``serve-model`` answers with, so one class serves both.
ProxyError = RequestError


def _bad_request(
    message: str, *, param: str | None = None, code: str = "invalid_request"
) -> ProxyError:
    return ProxyError(400, message, param=param, code=code)


def check_request(body: Any, *, max_messages: int = 10_000) -> dict[str, Any]:
    """Check a chat-completions request body enough to guard it; returns it unchanged.

    The upstream checks the rest (it owns the model's limits); the guard needs a model name to
    resolve, messages to screen for triggers, and a boolean ``stream``.
    """
    if not isinstance(body, dict):
        raise _bad_request(
            f"The request body must be a JSON object. Got {type(body).__name__}.",
            code="invalid_body",
        )
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _bad_request(
            f"'model' must be a non-empty string naming the model. Got {model!r}.", param="model"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad_request(
            f"'messages' must be a non-empty list of chat messages. Got {type(messages).__name__}.",
            param="messages",
        )
    if len(messages) > max_messages:
        raise _bad_request(
            f"'messages' has {len(messages)} entries; at most {max_messages} are accepted.",
            param="messages",
        )
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise _bad_request(
                f"messages[{i}] must be an object with a string 'role'. Got {_short(m)}.",
                param=f"messages[{i}]",
            )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad_request(f"'stream' must be true or false. Got {stream!r}.", param="stream")
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _bad_request(f"'tools' must be a list. Got {type(tools).__name__}.", param="tools")
    return body


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: The sentence that carries an identity's canaries into its requests (``place_canaries``).
CANARY_NOTE = (
    "Internal reference credentials of this deployment (confidential; never use, send or "
    "reveal them): {}"
)


def with_canaries(body: dict[str, Any], canaries: tuple[str, ...]) -> dict[str, Any]:
    """A copy of the request body with the canaries placed in its system message (appended to
    a leading string system message, or as a new first system message). The body the agent
    sent is not modified."""
    if not canaries:
        return body
    note = CANARY_NOTE.format(", ".join(canaries))
    messages = list(body["messages"])
    first = messages[0] if messages else None
    if (
        isinstance(first, dict)
        and first.get("role") == "system"
        and isinstance(first.get("content"), str)
    ):
        messages[0] = {**first, "content": first["content"].rstrip() + "\n\n" + note}
    else:
        messages.insert(0, {"role": "system", "content": note})
    return {**body, "messages": messages}


def notice(decision: Decision, *, approval_id: str | None = None) -> str:
    """The sentence the client reads about a denied or held call."""
    call = decision.call
    who = f"`{call.tool or '<unnamed>'}`" + (f" ({call.call_id})" if call.call_id else "")
    why = "; ".join(decision.reasons) or "no reason given"
    if decision.outcome is Outcome.HOLD:
        ref = f" as approval {approval_id}" if approval_id else ""
        return (
            f"{NOTICE_PREFIX} Tool call {who} is held for approval{ref}: {why}. Once it is "
            "approved, propose the same call again."
        )
    return f"{NOTICE_PREFIX} Tool call {who} was denied: {why}."


def finish_reason(original: Any, *, calls_left: int) -> Any:
    """``tool_calls`` while a call remains; ``stop`` once the guard removed them all."""
    if calls_left:
        return "tool_calls"
    if original in ("tool_calls", "function_call"):
        return "stop"
    return original


def join_notices(content: Any, notices: list[str]) -> Any:
    """The assistant text with the guard's notices appended (None stays None without any)."""
    if not notices:
        return content
    head = content if isinstance(content, str) and content else ""
    return (head + "\n\n" if head else "") + "\n".join(notices)


@dataclass
class StreamCall:
    """A tool call being assembled from stream deltas (``tool_calls[k]`` by ``index``)."""

    index: int
    id: str | None = None
    type: str = "function"
    name: str = ""
    arguments: str = ""

    def as_raw(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass
class StreamChoice:
    """One choice of a streamed completion: its buffered calls and its finish reason."""

    index: int
    calls: dict[int, StreamCall] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)
    finish_reason: Any = None
    finished: bool = False

    def add(self, delta: dict[str, Any]) -> str | None:
        """Take one delta; returns a problem with it (else None)."""
        content = delta.get("content")
        if isinstance(content, str):
            self.text.append(content)
        calls = delta.get("tool_calls")
        if calls is None:
            return None
        if not isinstance(calls, list):
            return "'delta.tool_calls' is not a list"
        for part in calls:
            if not isinstance(part, dict):
                return "a 'delta.tool_calls' entry is not an object"
            k = part.get("index", len(self.calls))
            if not isinstance(k, int) or isinstance(k, bool):
                return "a 'delta.tool_calls' entry has no integer 'index'"
            sc = self.calls.setdefault(k, StreamCall(k))
            if isinstance(part.get("id"), str):
                sc.id = part["id"]
            if isinstance(part.get("type"), str):
                sc.type = part["type"]
            fn = part.get("function")
            if isinstance(fn, dict):
                if isinstance(fn.get("name"), str):
                    sc.name += fn["name"]
                if isinstance(fn.get("arguments"), str):
                    sc.arguments += fn["arguments"]
        return None


def chunk(
    base: dict[str, Any], index: int, delta: dict[str, Any], finish: Any = None
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` with one choice, carrying ``base``'s id/model/created."""
    out = {
        "id": base.get("id", "chatcmpl-guard"),
        "object": "chat.completion.chunk",
        "created": base.get("created", 0),
        "model": base.get("model", ""),
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }
    if base.get("system_fingerprint") is not None:
        out["system_fingerprint"] = base["system_fingerprint"]
    return out


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event line pair."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def too_large(size: int, limit: int) -> ProxyError:
    return ProxyError(
        413,
        f"The request body is {size} bytes or more; at most {limit} bytes are accepted.",
        code="request_too_large",
    )


def snippet(content: bytes, n: int = 60) -> str:
    return content[:n].decode("utf-8", "replace")


def message_of(obj: Any) -> str:
    if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
        msg = obj["error"].get("message")
        if isinstance(msg, str):
            return msg
    if isinstance(obj, dict) and isinstance(obj.get("error"), str):
        return str(obj["error"])
    return json.dumps(obj)[:200]


def upstream_transport_error(exc: Exception) -> ProxyError:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return ProxyError(
            504,
            f"The upstream did not answer in time ({type(exc).__name__}); nothing was released.",
            type="upstream_error",
            code="upstream_timeout",
        )
    return ProxyError(
        502,
        f"The upstream cannot be reached ({type(exc).__name__}: {exc}); nothing was released.",
        type="upstream_error",
        code="upstream_unreachable",
    )


def upstream_json(resp: Any, not_json: str) -> Any:
    """The upstream's JSON answer; a status other than 200 (:func:`upstream_status_error`) or
    a body that is not JSON (502, ``not_json``) as a :class:`ProxyError`."""
    if resp.status_code != 200:
        raise upstream_status_error(resp.status_code, resp.content)
    try:
        return resp.json()
    except ValueError:
        raise ProxyError(
            502, not_json, type="upstream_error", code="upstream_bad_response"
        ) from None


def upstream_status_error(status: int, content: bytes) -> ProxyError:
    try:
        detail = message_of(json.loads(content))
    except ValueError:
        detail = snippet(content, 200)
    if status in (401, 403):
        return ProxyError(
            502,
            f"The upstream refused the guard's credentials (HTTP {status}: {detail}); check "
            "--upstream-key.",
            type="upstream_error",
            code="upstream_auth",
        )
    if 400 <= status < 500:
        code = "model_not_found" if status == 404 else "upstream_rejected"
        return ProxyError(status, f"The upstream refused the request: {detail}", code=code)
    return ProxyError(
        502,
        f"The upstream failed (HTTP {status}: {detail}); nothing was released.",
        type="upstream_error",
        code="upstream_error",
    )


def audit_error(exc: Exception) -> ProxyError:
    return ProxyError(
        503,
        f"The audit log cannot be written ({exc}); every tool call of this request was denied "
        "and nothing was released.",
        type="guard_error",
        code="audit_unavailable",
    )
