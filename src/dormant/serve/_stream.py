"""A finished ``chat.completion`` as OpenAI's streamed ``chat.completion.chunk`` events.

The shape follows the OpenAI API reference ("The chat completion chunk object" and "Streaming
responses"): server-sent events (WHATWG HTML, section 9.2), one ``data: {json}`` event per
chunk; the first delta carries the role, text arrives in ``delta.content`` pieces, each tool
call in ``delta.tool_calls`` (``index``, ``id``, ``type`` and the function name first, then its
``arguments`` string), the last choice chunk an empty delta and the ``finish_reason``; with
``stream_options.include_usage`` every chunk has ``"usage": null`` and one more chunk with no
choices carries the usage; the stream ends with ``data: [DONE]``.

The model answers a whole batch at once, so the chunks are cut from the complete answer (text
by words) rather than sent token by token as they are generated; a client written for OpenAI's
streams reads them unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

_WORDS = re.compile(r"\s*\S+\s*|\s+")


def _event(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n\n"


def chunk_objects(completion: dict[str, Any], *, include_usage: bool = False) -> list[Any]:
    """The ``chat.completion.chunk`` objects of one ``chat.completion`` (one choice)."""
    (choice,) = completion["choices"]
    message = choice["message"]
    head = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            **head,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if include_usage:
            out["usage"] = None
        return out

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": piece}) for piece in _WORDS.findall(message.get("content") or "")]
    for i, call in enumerate(message.get("tool_calls") or []):
        fn = call["function"]
        chunks.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": fn["name"], "arguments": ""},
                        }
                    ]
                }
            )
        )
        chunks.append(
            chunk({"tool_calls": [{"index": i, "function": {"arguments": fn["arguments"]}}]})
        )
    chunks.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        chunks.append({**head, "choices": [], "usage": completion["usage"]})
    return chunks


async def sse_chunks(
    completion: dict[str, Any], *, include_usage: bool = False
) -> AsyncIterator[bytes]:
    """The server-sent events of :func:`chunk_objects`, then ``data: [DONE]``."""
    for obj in chunk_objects(completion, include_usage=include_usage):
        yield _event(obj)
    yield b"data: [DONE]\n\n"
