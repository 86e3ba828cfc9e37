"""Streaming (``stream: true``) through the guard: text passes, tool calls wait to be decided.

The upstream's server-sent events (the OpenAI ``chat.completion.chunk`` stream) are read one by
one. Text deltas are passed on as they come. Tool-call deltas are only collected; when the
upstream finishes, every call — whole by then — is decided and audited with the rest of the
completion (:meth:`dormant.guard.proxy.GuardProxy.settle`), and only then is each allowed call
sent, in one delta, followed by the notices of denied or held calls, the finish chunk and
``data: [DONE]``. If the upstream breaks off, times out or sends garbage, the calls it had begun
are denied undecided (never released) and the stream still ends valid.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ._openai import (
    NOTICE_PREFIX,
    ProxyError,
    StreamChoice,
    audit_error,
    chunk,
    finish_reason,
    message_of,
    sse,
    upstream_status_error,
    upstream_transport_error,
)
from ._settled import AuditUnavailable, Pending
from .types import DecisionContext

if TYPE_CHECKING:
    from .proxy import GuardProxy


async def open_stream(proxy: GuardProxy, body: dict[str, Any]) -> Any:
    """Send the streaming request; errors before the first byte are OpenAI errors."""
    import httpx

    req = proxy.client.build_request(
        "POST",
        proxy.settings.upstream + "/chat/completions",
        json=body,
        headers={**proxy.upstream_headers(), "accept": "text/event-stream"},
    )
    try:
        resp = await proxy.client.send(req, stream=True)
    except httpx.HTTPError as exc:
        raise upstream_transport_error(exc) from None
    if resp.status_code != 200:
        content = await resp.aread()
        await resp.aclose()
        raise upstream_status_error(resp.status_code, content)
    if "text/event-stream" not in resp.headers.get("content-type", ""):
        content = await resp.aread()
        await resp.aclose()
        raise ProxyError(
            502,
            "The upstream did not stream (content type "
            f"{resp.headers.get('content-type')!r}, not text/event-stream); nothing was "
            "released.",
            type="upstream_error",
            code="upstream_bad_response",
        )
    return resp


async def relay(
    proxy: GuardProxy, ctx: DecisionContext, resp: Any, t0: float
) -> AsyncIterator[bytes]:
    """Pass text through; buffer, decide, audit, then release each tool call whole."""
    import httpx

    choices: dict[int, StreamChoice] = {}
    base: dict[str, Any] = {}
    usage: Any = None
    problem: str | None = None
    ended = False
    try:
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                ended = True
                break
            try:
                obj = json.loads(data)
            except ValueError:
                problem = f"the upstream sent a stream event that is not JSON ({data[:80]!r})"
                break
            if not isinstance(obj, dict):
                problem = "the upstream sent a stream event that is not a JSON object"
                break
            if "error" in obj:
                problem = f"the upstream reported an error mid-stream: {message_of(obj)}"
                break
            if not base:
                base = obj
            if obj.get("usage") is not None:
                usage = obj["usage"]
            for ch in obj.get("choices") or []:
                idx = ch.get("index", 0) if isinstance(ch, dict) else None
                if not isinstance(idx, int):
                    problem = "a stream chunk has a choice without an integer 'index'"
                    break
                st = choices.setdefault(idx, StreamChoice(idx))
                delta = ch.get("delta") or {}
                if not isinstance(delta, dict):
                    problem = "a stream chunk's 'delta' is not an object"
                    break
                problem = st.add(delta)
                if problem:
                    break
                passed = {
                    k: v for k, v in delta.items() if k not in ("tool_calls", "function_call")
                }
                if passed.get("content") or "role" in passed:
                    yield sse(chunk(base, idx, passed))
                if ch.get("finish_reason") is not None:
                    st.finish_reason = ch["finish_reason"]
                    st.finished = True
            if problem:
                break
    except httpx.TimeoutException:
        problem = f"the upstream stopped sending for {proxy.settings.timeout:g} s (timeout)"
    except httpx.HTTPError as exc:
        problem = f"the upstream stream broke off ({type(exc).__name__}: {exc})"
    finally:
        await resp.aclose()
        proxy.metrics.upstream_latency.observe(time.perf_counter() - t0)
    if problem is None and not ended:
        problem = "the upstream stream ended without 'data: [DONE]'"

    pending = [
        Pending(
            idx,
            [choices[idx].calls[k].as_raw() for k in sorted(choices[idx].calls)],
            "".join(choices[idx].text),
            problem if problem is not None or choices[idx].finished else "no finish_reason",
        )
        for idx in sorted(choices)
    ]
    try:
        settled = await proxy.settle(ctx, pending)
    except AuditUnavailable as exc:
        yield sse(audit_error(exc).body())
        yield sse("[DONE]")
        return
    for done in settled:
        idx = done.pending.index
        kept = done.kept()
        if kept:
            delta = {"tool_calls": [{"index": n, **raw} for n, raw in enumerate(kept)]}
            yield sse(chunk(base, idx, delta))
        notes = done.notices()
        if done.verdict is not None and done.withheld():
            # the text already went out: say so (it is audited and alerted on)
            notes.append(
                f"{NOTICE_PREFIX} The text above was flagged after it was streamed: "
                f"{'; '.join(done.verdict.reasons)}."
            )
        elif done.verdict is not None and done.verdict.redactions:
            # a non-streaming answer would have had these redacted; streamed text cannot be
            notes.append(
                f"{NOTICE_PREFIX} The text above contained {done.verdict.redactions} "
                "credential(s) that a non-streaming answer would have redacted "
                f"({', '.join(done.verdict.behaviours) or 'secret'}); treat them as exposed."
            )
            proxy.metrics.alerts.labels("streamed-secret").inc()
        if notes:
            lead = "\n\n" if done.pending.text else ""
            yield sse(chunk(base, idx, {"content": lead + "\n".join(notes)}))
        reason = finish_reason(choices[idx].finish_reason or "stop", calls_left=len(kept))
        yield sse(chunk(base, idx, {}, reason))
    if problem is not None:
        yield sse(
            ProxyError(
                502,
                f"{problem}; buffered tool calls were not released.",
                type="upstream_error",
                code="upstream_stream_broken",
            ).body()
        )
    if usage is not None:
        extra = chunk(base, 0, {})
        extra["choices"] = []
        extra["usage"] = usage
        yield sse(extra)
    yield sse("[DONE]")
