"""Credential material taken out of a proposed tool call before the audit log records it
(spans found by the secret detector of :mod:`dormant.behaviours`)."""

from __future__ import annotations

from typing import Any

from ..behaviours import get_detector

_SECRETS = get_detector("secret")


def redact_call(call: dict[str, Any]) -> dict[str, Any]:
    """The call with credential material in its arguments replaced by ``[REDACTED:secret:…]``.

    The audit log records what was proposed, not live credentials: a key an agent tried to send
    out must not become readable to everyone who can read the log. Canaries are kept (a
    honeytoken is not a credential, and the alert must show which one fired).
    """
    out = dict(call)
    out["arguments"] = _redact(call.get("arguments"), 0)
    if isinstance(out.get("raw_arguments"), str):
        out["raw_arguments"] = _redact(out["raw_arguments"], 0)
    return out


def _redact(value: Any, depth: int) -> Any:
    if depth > 40:
        return "[REDACTED:too deep]"
    if isinstance(value, str):
        hits = _SECRETS.detect(value)
        for h in sorted(hits, key=lambda h: h.span, reverse=True):
            value = value[: h.span[0]] + f"[REDACTED:{h.tag}]" + value[h.span[1] :]
        return value
    if isinstance(value, dict):
        return {k: _redact(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, depth + 1) for v in value]
    return value
