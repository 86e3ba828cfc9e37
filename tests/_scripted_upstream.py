"""A scripted OpenAI-compatible upstream for the guard proxy's tests and benchmarks.

A real HTTP server (Starlette on uvicorn, on loopback) that answers ``/v1/chat/completions``
with what the script says for the last user message: text, tool calls (with any argument
text, valid JSON or not), an HTTP error, a body that is not JSON, a delay, or — with
``stream: true`` — server-sent events that split every tool call's arguments into small
fragments, optionally breaking off mid-call.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from dormant.guard._ops import GuardServer


@dataclass(frozen=True)
class Reply:
    """What the upstream answers."""

    content: str | None = None
    #: (name, arguments text) per tool call.
    calls: tuple[tuple[str, str], ...] = ()
    status: int = 200
    #: A raw body sent instead of a completion (with ``status``).
    raw: bytes | None = None
    delay: float = 0.0
    #: Characters of argument text per stream delta.
    fragment: int = 4
    #: Stop the stream after this many tool-call deltas (no finish, no [DONE]).
    cut_after: int | None = None
    #: Delay between two stream chunks.
    chunk_delay: float = 0.0


def tool(name: str, **args: Any) -> tuple[str, str]:
    return (name, json.dumps(args))


@dataclass
class ScriptedUpstream:
    """The upstream; ``script`` maps a last user message to its :class:`Reply`."""

    script: dict[str, Reply] = field(default_factory=dict)
    default: Reply = field(default_factory=lambda: Reply(content="Hello from upstream."))
    models: tuple[str, ...] = ("stub",)
    seen: list[dict[str, Any]] = field(default_factory=list)
    counter: int = 0

    def reply_for(self, body: dict[str, Any]) -> Reply:
        last = ""
        for m in body.get("messages") or []:
            if (
                isinstance(m, dict)
                and m.get("role") == "user"
                and isinstance(m.get("content"), str)
            ):
                last = m["content"]
        return self.script.get(last, self.default)

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response, StreamingResponse
        from starlette.routing import Route

        async def chat(request: Request) -> Response:
            body = await request.json()
            self.seen.append({"body": body, "auth": request.headers.get("authorization")})
            if body.get("model") not in self.models:
                return JSONResponse(
                    {
                        "error": {
                            "message": f"model {body.get('model')!r} not found",
                            "type": "invalid_request_error",
                            "param": "model",
                            "code": "model_not_found",
                        }
                    },
                    status_code=404,
                )
            r = self.reply_for(body)
            if r.delay:
                await asyncio.sleep(r.delay)
            if r.raw is not None or r.status != 200:
                return Response(
                    r.raw or b'{"error": {"message": "scripted failure"}}',
                    status_code=r.status,
                    media_type="application/json",
                )
            self.counter += 1
            cid = f"chatcmpl-{self.counter}"
            calls = [
                {
                    "id": f"call_{self.counter}_{j}",
                    "type": "function",
                    "function": {"name": n, "arguments": a},
                }
                for j, (n, a) in enumerate(r.calls)
            ]
            if body.get("stream"):
                return StreamingResponse(
                    self._stream(cid, body["model"], r, calls), media_type="text/event-stream"
                )
            msg: dict[str, Any] = {"role": "assistant", "content": r.content}
            if calls:
                msg["tool_calls"] = calls
            return JSONResponse(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": msg,
                            "finish_reason": "tool_calls" if calls else "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
                }
            )

        async def models(request: Request) -> Response:
            return JSONResponse(
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "stub"}
                        for m in self.models
                    ],
                }
            )

        return Starlette(
            routes=[
                Route("/v1/chat/completions", chat, methods=["POST"]),
                Route("/v1/models", models, methods=["GET"]),
            ]
        )

    async def _stream(
        self, cid: str, model: str, r: Reply, calls: list[dict[str, Any]]
    ) -> AsyncIterator[bytes]:
        def ev(delta: dict[str, Any], finish: str | None = None) -> bytes:
            obj = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(obj)}\n\n".encode()

        yield ev({"role": "assistant", "content": ""})
        for word in (r.content or "").split(" ") if r.content else []:
            yield ev({"content": word + " "})
            if r.chunk_delay:
                await asyncio.sleep(r.chunk_delay)
        sent = 0
        for j, c in enumerate(calls):
            yield ev(
                {
                    "tool_calls": [
                        {
                            "index": j,
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["function"]["name"], "arguments": ""},
                        }
                    ]
                }
            )
            args = c["function"]["arguments"]
            for k in range(0, len(args), r.fragment):
                if r.cut_after is not None and sent >= r.cut_after:
                    return
                yield ev(
                    {
                        "tool_calls": [
                            {"index": j, "function": {"arguments": args[k : k + r.fragment]}}
                        ]
                    }
                )
                sent += 1
                if r.chunk_delay:
                    await asyncio.sleep(r.chunk_delay)
        yield ev({}, "tool_calls" if calls else "stop")
        yield b"data: [DONE]\n\n"

    def serve(self) -> GuardServer:
        """Start on a free loopback port (``with upstream.serve() as s: s.url``)."""
        return GuardServer(self.app()).start()
