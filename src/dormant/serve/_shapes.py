"""The OpenAI shapes the model server answers with: the ``chat.completion`` object and its
token usage (the model's tokenizer when it has one, else about four characters a token)."""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any

from ..subjects.agent import ChatResponse
from ._request import Job, _is_int

_FINISH = ("stop", "length", "tool_calls", "content_filter")


def _approx_tokens(text: str) -> int:
    """About four characters of English per token (OpenAI's rule of thumb) when no tokenizer."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _answer_text(resp: ChatResponse) -> str:
    calls = "".join(
        json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False)
        for c in resp.tool_calls
    )
    return resp.content + calls


def _approx_usage(job: Job, resp: ChatResponse) -> dict[str, int]:
    prompt = json.dumps(
        [m.to_openai() for m in job.messages] + [t.to_openai() for t in job.tools],
        ensure_ascii=False,
    )
    p, c = _approx_tokens(prompt), _approx_tokens(_answer_text(resp))
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def usage_of(model: Any, job: Job, resp: ChatResponse) -> dict[str, int]:
    """Token counts with the model's tokenizer when it has one (runs on the worker)."""
    upstream = (resp.raw or {}).get("usage")
    if (
        isinstance(upstream, dict)
        and _is_int(upstream.get("prompt_tokens"))
        and _is_int(upstream.get("completion_tokens"))
    ):
        p, c = int(upstream["prompt_tokens"]), int(upstream["completion_tokens"])
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
    tok = getattr(model, "tokenizer", None)
    prompt_ids = getattr(model, "prompt_ids", None)
    if not callable(tok) or not callable(prompt_ids):
        return _approx_usage(job, resp)
    p = len(prompt_ids(job.messages, job.tools))
    raw_text = (resp.raw or {}).get("text")
    text = raw_text if isinstance(raw_text, str) else _answer_text(resp)
    c = len(tok(text, add_special_tokens=False)["input_ids"])
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def completion_object(
    resp: ChatResponse, usage: dict[str, int], *, model_name: str
) -> dict[str, Any]:
    """The ``chat.completion`` object of a response (OpenAI shape)."""
    calls = [c.to_openai() for c in resp.tool_calls]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if calls and not resp.content else resp.content,
    }
    if calls:
        message["tool_calls"] = calls
    finish = resp.finish_reason if resp.finish_reason in _FINISH else "stop"
    if calls and finish == "stop":
        finish = "tool_calls"
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }
