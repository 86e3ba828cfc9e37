"""The guard's OpenAI-compatible proxy: every proposed tool call decided and audited first.

``dormant guard serve`` runs this app (Starlette on uvicorn, ``httpx.AsyncClient`` upstream) in
front of any OpenAI-compatible model server. Per request it

1. authenticates the caller's API key to an **agent identity** (unknown key: 401, audited);
2. has the core (:class:`dormant.guard.service.Guard`) resolve the model's provenance in the
   registry and find known triggers in the messages and tool results (a match puts the request
   in the policy's suspect tier);
3. forwards the request upstream, then has the core decide **every** proposed tool call and
   screen the assistant text;
4. writes every decision to the audit log **before** releasing anything — if the write fails,
   nothing is released (503, ``audit_unavailable``): there is never an unguarded pass-through;
5. removes denied and held calls; the client receives a valid OpenAI response whose assistant
   message says which call was denied or held and why, with a ``finish_reason`` that matches
   what remains.

With ``stream: true`` text deltas pass through as they come; a tool call is buffered until it is
complete and decided, then released whole (or replaced by a notice), and the stream always ends
with ``data: [DONE]``. Text already streamed cannot be recalled: its screen result is audited,
alerted on and told to the client in a closing notice.

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
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ConfigError
from ._openai import (
    ProxyError,
    audit_error,
    finish_reason,
    join_notices,
    snippet,
    too_large,
    upstream_json,
    upstream_transport_error,
)
from ._ops import ProxyMetrics, reason_kind
from ._settled import AuditUnavailable, Pending, Settled
from .audit import AuditEntry
from .calls import call_from_openai, request_texts, system_prompt
from .service import Guard
from .types import (
    Decision,
    DecisionContext,
    ModelInfo,
    Outcome,
    ResponseDecision,
    TriggerMatch,
)

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
    """

    upstream: str
    upstream_key: str | None = None
    timeout: float = 60.0
    connect_timeout: float = 5.0
    max_body_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        url = self.upstream.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"--upstream must be an http:// or https:// URL. Got {self.upstream!r}."
            )
        if url.count("/") == 2:
            url += "/v1"
        object.__setattr__(self, "upstream", url)
        for name in ("timeout", "connect_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"'{name}' must be > 0. Got {getattr(self, name)!r}.")
        if self.max_body_bytes < 1024:
            raise ConfigError(f"'max_body_bytes' must be >= 1024. Got {self.max_body_bytes!r}.")


#: How the core's ``Guard`` says an audit write failed (it denies, never raises).
_AUDIT_FAILED = "the audit log could not be written"

#: Put in a request's triggers when known triggers could not be matched (suspect tier).
_UNMATCHED = TriggerMatch(
    text="", kind="matcher-unavailable", target=None, where="request", severity="high"
)


def _key_ref(key: str) -> str:
    """A short, non-reversible reference to an API key for the audit log and logs."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:12]


class _TimedCommit:
    """The core's group commit with its write latency and failures counted for ``/metrics``."""

    def __init__(self, inner: Any, metrics: ProxyMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def append(self, entry: Any) -> int:
        t0 = time.perf_counter()
        try:
            seq: int = self._inner.append(entry)
        except Exception:
            self._metrics.audit_failures.inc()
            raise
        self._metrics.audit_latency.observe(time.perf_counter() - t0)
        return seq

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class GuardProxy:
    """The proxy's state and request handlers (``dormant.guard._app.create_app`` builds the app).

    Every decision goes through the core's :class:`dormant.guard.service.Guard` (decide, audit
    durably through its group commit, hold, observe); the proxy adds the wire format.
    """

    def __init__(self, guard: Guard, *, settings: ProxySettings) -> None:
        self.guard = guard
        self.settings = settings
        self.metrics = ProxyMetrics()
        self.client: Any = None

    # -- lifecycle -----------------------------------------------------------------------

    async def startup(self) -> None:
        import httpx

        s = self.settings
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(s.timeout, connect=s.connect_timeout),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )
        if not isinstance(self.guard.commit, _TimedCommit):
            self.guard.commit = _TimedCommit(self.guard.commit, self.metrics)  # type: ignore[assignment]

    async def shutdown(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        await asyncio.to_thread(self.guard.close)

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
            identity = self.guard.policy.identity_for_key(key)
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
            raise too_large(int(declared), limit)
        size = 0
        parts: list[bytes] = []
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise too_large(size, limit)
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

    async def context(
        self, identity: str, body: dict[str, Any], request_id: str
    ) -> DecisionContext:
        """The request's context from the core (model resolved, known triggers matched); may
        read the registry, so it runs on a worker thread."""
        return await asyncio.to_thread(self._context, identity, body, request_id)

    def _context(self, identity: str, body: dict[str, Any], request_id: str) -> DecisionContext:
        messages = body["messages"]
        texts = request_texts(messages)
        try:
            ctx = self.guard.context(
                identity,
                body["model"],
                texts,
                request_id=request_id,
                system_prompt=system_prompt(messages),
            )
        except Exception as exc:  # fail closed: unknown provenance, suspect tier
            log.error("context failed", extra={"request_id": request_id, "error": repr(exc)})
            ctx = DecisionContext(
                identity=identity,
                model=ModelInfo(body["model"], detail=f"guard error: {type(exc).__name__}"),
                input_texts=tuple(t for _, t in texts),
                canaries=self.guard.policy.canaries_for(identity),
                request_id=request_id,
                system_prompt=system_prompt(messages),
            )
            return replace(ctx, triggers=(_UNMATCHED,))
        if self.guard.trigger_error is not None:
            # the registry's known triggers could not be (re)read: the request cannot be shown
            # free of them, so it goes to the suspect tier (fail closed)
            log.warning(
                "trigger matching failed",
                extra={"request_id": request_id, "error": self.guard.trigger_error},
            )
            ctx = replace(ctx, triggers=(*ctx.triggers, _UNMATCHED))
        return ctx

    # -- deciding, auditing, releasing ---------------------------------------------------

    async def settle(self, ctx: DecisionContext, choices: list[Pending]) -> list[Settled]:
        """Decide, audit (durably, before return), hold and observe every proposed call and
        screen every text of a completion, through the core's :class:`Guard`. The calls of
        one completion are checked concurrently so they share a group commit. Raises
        :class:`AuditUnavailable` when an audit write failed: then nothing may be released."""
        jobs: list[Any] = []
        for p in choices:
            for raw in p.calls:
                if p.incomplete is not None:
                    jobs.append(asyncio.to_thread(self._deny_unfinished, ctx, raw, p.incomplete))
                else:
                    jobs.append(asyncio.to_thread(self._check, ctx, raw))
            if p.text:
                jobs.append(asyncio.to_thread(self._screen, ctx, p.text))
        results = iter(await asyncio.gather(*jobs))
        out: list[Settled] = []
        failed: list[str] = []
        for p in choices:
            decisions = [next(results) for _ in p.calls]
            verdict = next(results) if p.text else None
            for d in decisions:
                if d.audit_seq is None:
                    failed.append(d.reasons[-1] if d.reasons else "no audit entry")
                self.count(d.outcome.value, d.reasons, d.alerts)
            if verdict is not None:
                if any(r.startswith(_AUDIT_FAILED) for r in verdict.reasons):
                    failed.append(verdict.reasons[-1])
                self.count(verdict.outcome.value, verdict.reasons, verdict.alerts)
            out.append(Settled(p, decisions, verdict))
        if failed:
            log.error(
                "audit write failed; nothing of the request is released",
                extra={"request_id": ctx.request_id, "error": failed[0]},
            )
            raise AuditUnavailable(failed[0])
        return out

    def _check(self, ctx: DecisionContext, raw: Any) -> Decision:
        call = call_from_openai(raw)
        try:
            return self.guard.check_call(ctx, call)
        except Exception as exc:  # fail closed (no audit_seq: the request gets a 503)
            log.error("decision failed", extra={"request_id": ctx.request_id, "error": repr(exc)})
            return Decision(
                Outcome.DENY, (f"guard error, denied (fail closed): {type(exc).__name__}",), call
            )

    def _deny_unfinished(self, ctx: DecisionContext, raw: Any, problem: str) -> Decision:
        """A call the stream never finished: denied undecided, and audited as such."""
        d = Decision(
            Outcome.DENY,
            (f"incomplete tool call: the stream ended before it was complete ({problem})",),
            call_from_openai(raw),
            policy_version=self.guard.policy.version,
        )
        try:
            return replace(d, audit_seq=self.guard.commit.append(AuditEntry.for_decision(ctx, d)))
        except Exception as exc:
            return replace(d, reasons=(*d.reasons, f"{_AUDIT_FAILED} ({type(exc).__name__})"))

    def _screen(self, ctx: DecisionContext, text: str) -> ResponseDecision:
        try:
            return self.guard.check_response(ctx, text)
        except Exception as exc:  # fail closed: withheld
            return ResponseDecision(
                Outcome.DENY, (f"{_AUDIT_FAILED}: guard error ({type(exc).__name__})",), ""
            )

    async def audit_refusal(
        self, request_id: str, identity: str | None, error: ProxyError, detail: dict[str, Any]
    ) -> bool:
        """Write a refused request to the audit log; False when that failed too."""
        entry = AuditEntry(
            kind="event",
            outcome=Outcome.DENY.value,
            identity=identity,
            model=detail.get("model"),
            reasons=(error.message,),
            policy_version=self.guard.policy.version,
            request_id=request_id,
            detail={"status": error.status, "code": error.code, **detail},
        )
        try:
            await asyncio.to_thread(self.guard.commit.append, entry)
        except Exception as exc:
            log.error("audit write failed", extra={"request_id": request_id, "error": repr(exc)})
            return False
        return True

    def health(self) -> tuple[bool, str]:
        """Whether the audit log can be written now."""
        try:
            with self.guard.audit.store.tx() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception as exc:
            return False, f"the audit log cannot be written: {type(exc).__name__}: {exc}"
        return True, "ok"

    def count(self, outcome: str, reasons: tuple[str, ...], alerts: tuple[str, ...]) -> None:
        self.metrics.decisions.labels(outcome, reason_kind(reasons)).inc()
        for alert in alerts:
            self.metrics.alerts.labels(alert.split(":", 1)[0][:40]).inc()

    def upstream_headers(self) -> dict[str, str]:
        h = {"content-type": "application/json", "accept": "application/json"}
        if self.settings.upstream_key:
            h["authorization"] = f"Bearer {self.settings.upstream_key}"
        return h

    async def complete(
        self, ctx: DecisionContext, body: dict[str, Any]
    ) -> tuple[dict[str, Any], float]:
        """Forward, decide every call, audit; the rewritten completion and the upstream's
        time in seconds."""
        import httpx

        t0 = time.perf_counter()
        try:
            resp = await self.client.post(
                self.settings.upstream + "/chat/completions",
                json=body,
                headers=self.upstream_headers(),
            )
        except httpx.HTTPError as exc:
            raise upstream_transport_error(exc) from None
        finally:
            upstream_s = time.perf_counter() - t0
            self.metrics.upstream_latency.observe(upstream_s)
        data = upstream_json(
            resp,
            f"The upstream answered with something that is not JSON "
            f"({snippet(resp.content)!r}); nothing was released.",
        )
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
        pending = []
        for ci, choice in enumerate(choices):
            msg = choice["message"]
            calls = msg.get("tool_calls") or []
            text = msg.get("content")
            pending.append(
                Pending(
                    ci,
                    calls if isinstance(calls, list) else [calls],
                    text if isinstance(text, str) else "",
                )
            )
        try:
            settled = await self.settle(ctx, pending)
        except AuditUnavailable as exc:
            raise audit_error(exc) from None
        for choice, st in zip(choices, settled, strict=True):
            msg = dict(choice["message"])
            kept = st.kept()
            content = st.withheld() or st.text(msg.get("content"))
            msg["content"] = join_notices(content, st.notices())
            if kept:
                msg["tool_calls"] = kept
            else:
                msg.pop("tool_calls", None)
            choice["message"] = msg
            choice["finish_reason"] = finish_reason(
                choice.get("finish_reason"), calls_left=len(kept)
            )
        return dict(data), upstream_s

    # -- streaming -----------------------------------------------------------------------
