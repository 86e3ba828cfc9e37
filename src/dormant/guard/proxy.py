"""The guard's OpenAI-compatible proxy: every proposed tool call decided and audited first.

``dormant guard serve`` runs this app (Starlette on uvicorn, ``httpx.AsyncClient`` upstream) in
front of any OpenAI-compatible model server. Per request it

1. authenticates the caller's API key to an **agent identity** (unknown key: 401, audited);
2. resolves the model's provenance in the registry (cached briefly) and finds known triggers in
   the messages and tool results (a match puts the request in the policy's suspect tier);
3. forwards the request upstream, then asks the decision core about **every** proposed tool call
   and screens the assistant text;
4. writes every decision to the audit log **before** releasing anything — if the write fails,
   nothing is released (503, ``audit_unavailable``): there is never an unguarded pass-through;
5. removes denied and held calls; the client receives a valid OpenAI response whose assistant
   message says which call was denied or held and why, with a ``finish_reason`` that matches
   what remains.

With ``stream: true`` text deltas pass through as they come; a tool call is buffered until it is
complete and decided, then released whole (or replaced by a notice), and the stream always ends
with ``data: [DONE]``. Text already streamed cannot be recalled: its screen result is audited
and alerted on.

The wire format is the OpenAI Chat Completions API
(https://platform.openai.com/docs/api-reference/chat); the error body is OpenAI's
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ConfigError
from ._openai import (
    NOTICE_PREFIX,
    ProxyError,
    StreamChoice,
    chunk,
    finish_reason,
    input_texts,
    join_notices,
    notice,
    proposed_call,
    sse,
)
from ._ops import ProxyMetrics, reason_kind
from ._services import GuardServices
from .types import Decision, DecisionContext, ModelInfo, Outcome, ProvenanceState

log = logging.getLogger("dormant.guard.proxy")
log.addHandler(logging.NullHandler())


@dataclass(frozen=True)
class ProxySettings:
    """How the proxy reaches its upstream and what it accepts.

    Parameters
    ----------
    upstream:
        The upstream's OpenAI base URL (``http://127.0.0.1:8000/v1``; ``/v1`` is added to a
        bare ``http://host:port``).
    upstream_key:
        The key the guard sends upstream (the callers' keys never leave the guard).
    timeout:
        Seconds the upstream may take to answer (between two stream chunks when streaming).
    connect_timeout:
        Seconds to connect to the upstream.
    max_body_bytes:
        Largest request body accepted (413 beyond).
    model_cache_seconds:
        How long a resolved model's provenance is reused.
    """

    upstream: str
    upstream_key: str | None = None
    timeout: float = 60.0
    connect_timeout: float = 5.0
    max_body_bytes: int = 1 << 20
    model_cache_seconds: float = 30.0

    def __post_init__(self) -> None:
        url = self.upstream.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"--upstream must be an http:// or https:// URL. Got {self.upstream!r}."
            )
        if url.count("/") == 2:
            url += "/v1"
        object.__setattr__(self, "upstream", url)
        for name in ("timeout", "connect_timeout", "model_cache_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"'{name}' must be > 0. Got {getattr(self, name)!r}.")
        if self.max_body_bytes < 1024:
            raise ConfigError(f"'max_body_bytes' must be >= 1024. Got {self.max_body_bytes!r}.")


class AuditUnavailable(Exception):
    """An audit write failed: nothing may be released."""


def _key_ref(key: str) -> str:
    """A short, non-reversible reference to an API key for the audit log and logs."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:12]


class GuardProxy:
    """The proxy's state and request handlers (:func:`create_app` builds the ASGI app)."""

    def __init__(self, services: GuardServices, *, settings: ProxySettings) -> None:
        self.services = services
        self.settings = settings
        self.metrics = ProxyMetrics()
        self.client: Any = None
        self._models: dict[str, tuple[float, ModelInfo]] = {}
        self._audit_lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------------------

    async def startup(self) -> None:
        import httpx

        s = self.settings
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(s.timeout, connect=s.connect_timeout),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

    async def shutdown(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    # -- the pieces ----------------------------------------------------------------------

    def authenticate(self, headers: Any) -> tuple[str, str]:
        """``(identity, key_ref)`` for the request's Bearer key; 401 when missing or unknown."""
        auth = headers.get("authorization", "")
        scheme, _, key = auth.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ProxyError(
                401,
                "Missing API key: send 'Authorization: Bearer <key>' with the key of your agent "
                "identity.",
                type="authentication_error",
                code="missing_api_key",
            )
        try:
            identity = self.services.identify(key)
        except Exception as exc:  # fail closed: no identity, no access
            log.error("identity lookup failed", extra={"error": repr(exc)})
            identity = None
        if not identity:
            raise ProxyError(
                401,
                f"Unknown API key ({_key_ref(key)}): it belongs to no agent identity of the "
                "guard's policy.",
                type="authentication_error",
                code="invalid_api_key",
            )
        return identity, _key_ref(key)

    async def read_json(self, request: Any) -> Any:
        """The request body as JSON; 413 beyond the size limit, 400 when not JSON."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(int(declared), limit)
        size = 0
        parts: list[bytes] = []
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise _too_large(size, limit)
            parts.append(part)
        raw = b"".join(parts)
        if not raw.strip():
            raise ProxyError(
                400, "The request body is empty; expected a JSON object.", code="invalid_json"
            )
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProxyError(
                400, f"The request body is not valid JSON ({exc}).", code="invalid_json"
            ) from None

    def resolve(self, name: str) -> ModelInfo:
        """The model's provenance, cached; ``unknown`` (with why) when the registry fails."""
        now = time.monotonic()
        hit = self._models.get(name)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            info = self.services.resolve(name)
        except Exception as exc:
            log.warning("provenance lookup failed", extra={"model": name, "error": repr(exc)})
            info = ModelInfo(
                name=name,
                provenance=ProvenanceState.UNKNOWN,
                detail=f"registry unavailable: {type(exc).__name__}: {exc}",
            )
            # a failure is cached briefly too, so a down registry is not hammered
            self._models[name] = (now + min(5.0, self.settings.model_cache_seconds), info)
            return info
        self._models[name] = (now + self.settings.model_cache_seconds, info)
        return info

    def context(self, identity: str, body: dict[str, Any], request_id: str) -> DecisionContext:
        model = self.resolve(body["model"])
        texts = input_texts(body["messages"])
        try:
            triggers = self.services.match(texts)
        except Exception as exc:  # fail closed below
            log.warning("trigger matching failed", extra={"error": repr(exc)})
            # without the trigger index the request cannot be shown clean: the suspect tier
            from .types import TriggerMatch

            triggers = (
                TriggerMatch(
                    text="",
                    kind="matcher-unavailable",
                    target=None,
                    where="request",
                    severity="high",
                ),
            )
        try:
            canaries = self.services.canaries(identity)
        except Exception:  # canaries are a tripwire; missing ones never allow
            canaries = ()
        return DecisionContext(
            identity=identity,
            model=model,
            triggers=tuple(triggers),
            input_texts=tuple(t for _, t in texts),
            canaries=tuple(canaries),
            request_id=request_id,
        )

    def decide(self, ctx: DecisionContext, raw: Any, index: int) -> Decision:
        """The core's decision for one upstream tool call; any failure is a denial."""
        rc = proposed_call(raw, index)
        try:
            decision = self.services.decide(ctx, rc.call)
            if not isinstance(decision, Decision) or decision.outcome not in tuple(Outcome):
                raise TypeError(f"decide() returned {type(decision).__name__}, not a Decision")
        except Exception as exc:  # fail closed
            log.error("decision failed", extra={"request_id": ctx.request_id, "error": repr(exc)})
            return Decision(
                Outcome.DENY, (f"decision core failed: {type(exc).__name__}: {exc}",), rc.call
            )
        if rc.malformed and decision.outcome is not Outcome.DENY:
            decision = replace(
                decision,
                outcome=Outcome.DENY,
                reasons=(
                    f"malformed tool call from the upstream: {rc.malformed}",
                    *decision.reasons,
                ),
            )
        return decision

    def screen(self, ctx: DecisionContext, text: str) -> Decision | None:
        if not text:
            return None
        try:
            return self.services.screen(ctx, text)
        except Exception as exc:  # fail closed: withhold the text
            from .types import ProposedCall

            return Decision(
                Outcome.DENY,
                (f"response screen failed: {type(exc).__name__}: {exc}",),
                ProposedCall("<response>"),
            )

    def hold(self, decision: Decision, ctx: DecisionContext) -> str | None:
        try:
            return self.services.hold(decision, ctx)
        except Exception as exc:  # the call stays held (not released) anyway
            log.error("approval store failed", extra={"error": repr(exc)})
            return None

    async def audit(self, entries: list[dict[str, Any]]) -> None:
        """Write entries durably, in order; :class:`AuditUnavailable` when any write fails."""
        if not entries:
            return
        async with self._audit_lock:
            for entry in entries:
                t0 = time.perf_counter()
                try:
                    await asyncio.to_thread(self.services.audit, entry)
                except Exception as exc:
                    self.metrics.audit_failures.inc()
                    log.error(
                        "audit write failed; every call of the request is denied",
                        extra={"request_id": entry.get("request_id"), "error": repr(exc)},
                    )
                    raise AuditUnavailable(f"{type(exc).__name__}: {exc}") from exc
                self.metrics.audit_latency.observe(time.perf_counter() - t0)

    def count(self, decision: Decision) -> None:
        self.metrics.decisions.labels(decision.outcome.value, reason_kind(decision.reasons)).inc()
        for alert in decision.alerts:
            self.metrics.alerts.labels(alert.split(":", 1)[0][:40]).inc()

    # -- audit entries -------------------------------------------------------------------

    def decision_entry(
        self,
        ctx: DecisionContext,
        decision: Decision,
        *,
        event: str = "tool_call",
        choice: int = 0,
        approval_id: str | None = None,
    ) -> dict[str, Any]:
        return {
            "event": event,
            "request_id": ctx.request_id,
            "identity": ctx.identity,
            "model": ctx.model.name,
            "model_digest": ctx.model.digest,
            "provenance": ctx.model.provenance.value,
            "provenance_detail": ctx.model.detail,
            "triggers": [
                {"text": t.text, "kind": t.kind, "where": t.where, "target": t.target}
                for t in ctx.triggers
            ],
            "choice": choice,
            "decision": decision.to_dict(),
            "outcome": decision.outcome.value,
            "reasons": list(decision.reasons),
            "approval_id": approval_id,
            "policy_version": decision.policy_version or self.services.policy_version,
        }

    def refusal_entry(
        self, request_id: str, error: ProxyError, *, identity: str | None, extra: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "event": "request_refused",
            "request_id": request_id,
            "identity": identity,
            "outcome": Outcome.DENY.value,
            "reasons": [error.message],
            "status": error.status,
            "code": error.code,
            "policy_version": self.services.policy_version,
            **extra,
        }

    # -- non-streaming -------------------------------------------------------------------

    def upstream_headers(self) -> dict[str, str]:
        h = {"content-type": "application/json", "accept": "application/json"}
        if self.settings.upstream_key:
            h["authorization"] = f"Bearer {self.settings.upstream_key}"
        return h

    async def complete(self, ctx: DecisionContext, body: dict[str, Any]) -> dict[str, Any]:
        """Forward, decide every call, audit, and return the rewritten completion."""
        import httpx

        t0 = time.perf_counter()
        try:
            resp = await self.client.post(
                self.settings.upstream + "/chat/completions",
                json=body,
                headers=self.upstream_headers(),
            )
        except httpx.HTTPError as exc:
            raise _upstream_transport_error(exc) from None
        finally:
            self.metrics.upstream_latency.observe(time.perf_counter() - t0)
        if resp.status_code != 200:
            raise _upstream_status_error(resp.status_code, resp.content)
        try:
            data = resp.json()
        except ValueError:
            raise ProxyError(
                502,
                f"The upstream answered with something that is not JSON "
                f"({_snippet(resp.content)!r}); nothing was released.",
                type="upstream_error",
                code="upstream_bad_response",
            ) from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not all(
            isinstance(c, dict) and isinstance(c.get("message"), dict) for c in choices
        ):
            raise ProxyError(
                502,
                "The upstream's answer is not a chat completion (no 'choices' list of messages); "
                "nothing was released.",
                type="upstream_error",
                code="upstream_bad_response",
            )
        entries: list[dict[str, Any]] = []
        plans: list[tuple[dict[str, Any], list[Any], list[str], Decision | None]] = []
        for ci, choice in enumerate(choices):
            msg = choice["message"]
            calls = msg.get("tool_calls") or []
            if not isinstance(calls, list):
                calls = [calls]
            kept: list[Any] = []
            notes: list[str] = []
            for j, raw in enumerate(calls):
                d = self.decide(ctx, raw, j)
                approval = self.hold(d, ctx) if d.outcome is Outcome.HOLD else None
                entries.append(self.decision_entry(ctx, d, choice=ci, approval_id=approval))
                if d.outcome is Outcome.ALLOW:
                    kept.append(raw)
                else:
                    notes.append(notice(d, approval_id=approval))
            text = msg.get("content")
            verdict = self.screen(ctx, text if isinstance(text, str) else "")
            if verdict is not None:
                entries.append(self.decision_entry(ctx, verdict, event="response", choice=ci))
            plans.append((choice, kept, notes, verdict))
        try:
            await self.audit(entries)
        except AuditUnavailable as exc:
            raise _audit_error(exc) from None
        for e in entries:
            self.count(_decision_of(e))
        for choice, kept, notes, verdict in plans:
            msg = dict(choice["message"])
            content = msg.get("content")
            if verdict is not None and verdict.outcome is not Outcome.ALLOW:
                content = (
                    f"{NOTICE_PREFIX} The assistant's answer was withheld: "
                    f"{'; '.join(verdict.reasons)}."
                )
            msg["content"] = join_notices(content, notes)
            if kept:
                msg["tool_calls"] = kept
            else:
                msg.pop("tool_calls", None)
            choice["message"] = msg
            choice["finish_reason"] = finish_reason(
                choice.get("finish_reason"), calls_left=len(kept)
            )
        return dict(data)

    # -- streaming -----------------------------------------------------------------------

    async def open_stream(self, body: dict[str, Any]) -> Any:
        """Send the streaming request; errors before the first byte are OpenAI errors."""
        import httpx

        req = self.client.build_request(
            "POST",
            self.settings.upstream + "/chat/completions",
            json=body,
            headers={**self.upstream_headers(), "accept": "text/event-stream"},
        )
        try:
            resp = await self.client.send(req, stream=True)
        except httpx.HTTPError as exc:
            raise _upstream_transport_error(exc) from None
        if resp.status_code != 200:
            content = await resp.aread()
            await resp.aclose()
            raise _upstream_status_error(resp.status_code, content)
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

    async def relay(self, ctx: DecisionContext, resp: Any, t0: float) -> AsyncIterator[bytes]:
        """Pass text through; buffer, decide, audit, then release each tool call whole."""
        import httpx

        choices: dict[int, StreamChoice] = {}
        base: dict[str, Any] = {}
        usage: Any = None
        problem: str | None = None
        done = False
        try:
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
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
                    problem = f"the upstream reported an error mid-stream: {_message_of(obj)}"
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
            problem = f"the upstream stopped sending for {self.settings.timeout:g} s (timeout)"
        except httpx.HTTPError as exc:
            problem = f"the upstream stream broke off ({type(exc).__name__}: {exc})"
        finally:
            await resp.aclose()
            self.metrics.upstream_latency.observe(time.perf_counter() - t0)
        if problem is None and not done:
            problem = "the upstream stream ended without 'data: [DONE]'"

        entries: list[dict[str, Any]] = []
        out: list[tuple[StreamChoice, list[dict[str, Any]], list[str]]] = []
        for idx in sorted(choices):
            st = choices[idx]
            kept: list[dict[str, Any]] = []
            notes: list[str] = []
            for k in sorted(st.calls):
                raw = st.calls[k].as_raw()
                if problem is not None or not st.finished:
                    rc = proposed_call(raw, k)
                    d = Decision(
                        Outcome.DENY,
                        (
                            "incomplete tool call: the stream ended before it was complete ("
                            + (problem or "no finish_reason")
                            + ")",
                        ),
                        rc.call,
                    )
                else:
                    d = self.decide(ctx, raw, k)
                approval = self.hold(d, ctx) if d.outcome is Outcome.HOLD else None
                entries.append(self.decision_entry(ctx, d, choice=idx, approval_id=approval))
                if d.outcome is Outcome.ALLOW:
                    kept.append(raw)
                else:
                    notes.append(notice(d, approval_id=approval))
            verdict = self.screen(ctx, "".join(st.text))
            if verdict is not None:
                entries.append(self.decision_entry(ctx, verdict, event="response", choice=idx))
                if verdict.outcome is not Outcome.ALLOW:
                    notes.append(
                        f"{NOTICE_PREFIX} The text above was flagged after it was streamed: "
                        f"{'; '.join(verdict.reasons)}."
                    )
            out.append((st, kept, notes))
        try:
            await self.audit(entries)
        except AuditUnavailable as exc:
            yield sse(_audit_error(exc).body())
            yield sse("[DONE]")
            return
        for e in entries:
            self.count(_decision_of(e))
        for st, kept, notes in out:
            if kept:
                delta = {
                    "tool_calls": [{"index": n, **raw} for n, raw in enumerate(kept)],
                }
                yield sse(chunk(base, st.index, delta))
            if notes:
                text = "\n".join(notes)
                lead = "\n\n" if st.text and "".join(st.text) else ""
                yield sse(chunk(base, st.index, {"content": lead + text}))
            reason = finish_reason(st.finish_reason or "stop", calls_left=len(kept))
            yield sse(chunk(base, st.index, {}, reason))
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


def _decision_of(entry: dict[str, Any]) -> Decision:
    d = entry["decision"]
    from .types import ProposedCall

    return Decision(
        Outcome(d["outcome"]),
        tuple(d["reasons"]),
        ProposedCall(d["call"]["tool"]),
        alerts=tuple(d.get("alerts") or ()),
    )


def _too_large(size: int, limit: int) -> ProxyError:
    return ProxyError(
        413,
        f"The request body is {size} bytes or more; at most {limit} bytes are accepted.",
        code="request_too_large",
    )


def _snippet(content: bytes, n: int = 60) -> str:
    return content[:n].decode("utf-8", "replace")


def _message_of(obj: Any) -> str:
    if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
        msg = obj["error"].get("message")
        if isinstance(msg, str):
            return msg
    if isinstance(obj, dict) and isinstance(obj.get("error"), str):
        return str(obj["error"])
    return json.dumps(obj)[:200]


def _upstream_transport_error(exc: Exception) -> ProxyError:
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


def _upstream_status_error(status: int, content: bytes) -> ProxyError:
    try:
        detail = _message_of(json.loads(content))
    except ValueError:
        detail = _snippet(content, 200)
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


def _audit_error(exc: Exception) -> ProxyError:
    return ProxyError(
        503,
        f"The audit log cannot be written ({exc}); every tool call of this request was denied "
        "and nothing was released.",
        type="guard_error",
        code="audit_unavailable",
    )


def create_app(services: GuardServices, *, settings: ProxySettings) -> Any:
    """The proxy as an ASGI app (Starlette); ``app.state.proxy`` is its :class:`GuardProxy`."""
    from ._app import build

    return build(GuardProxy(services, settings=settings))
