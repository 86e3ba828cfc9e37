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
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ConfigError
from ._openai import (
    ProxyError,
    audit_error,
    finish_reason,
    input_texts,
    join_notices,
    proposed_call,
    snippet,
    too_large,
    upstream_status_error,
    upstream_transport_error,
)
from ._openai import _content_text as _text_of
from ._ops import ProxyMetrics, reason_kind
from ._services import GuardServices
from ._settled import AuditUnavailable, Pending, Settled
from .types import (
    Decision,
    DecisionContext,
    ModelInfo,
    Outcome,
    ProvenanceState,
    ResponseDecision,
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
        self._settle_lock = asyncio.Lock()

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
        extra: dict[str, Any] = {}
        if "system_prompt" in DecisionContext.__dataclass_fields__:
            system = [
                _text_of(m.get("content")) for m in body["messages"] if m.get("role") == "system"
            ]
            extra["system_prompt"] = "\n".join(system) or None
        return DecisionContext(
            identity=identity,
            model=model,
            triggers=tuple(triggers),
            input_texts=tuple(t for _, t in texts),
            canaries=tuple(canaries),
            request_id=request_id,
            **extra,
        )

    # -- deciding, auditing, releasing ---------------------------------------------------

    async def settle(self, ctx: DecisionContext, choices: list[Pending]) -> list[Settled]:
        """Decide every call and screen every text of a completion, audit it all, then hold
        and observe. Runs on a worker thread, one request at a time (the audit chain is one
        sequence). Raises :class:`AuditUnavailable` when any audit write fails: then nothing
        of this completion may be released."""
        async with self._settle_lock:
            return await asyncio.to_thread(self._settle, ctx, choices)

    def _settle(self, ctx: DecisionContext, choices: list[Pending]) -> list[Settled]:
        baseline = None
        if any(p.calls for p in choices):
            try:
                baseline = self.services.baseline(ctx)
            except Exception as exc:  # monitoring only adds alerts; decisions go on
                log.warning("baseline read failed", extra={"error": repr(exc)})
        out: list[Settled] = []
        for p in choices:
            decisions = [
                self._decide(ctx, raw, j, baseline, p.incomplete) for j, raw in enumerate(p.calls)
            ]
            verdict = self._screen(ctx, p.text) if p.text else None
            out.append(Settled(p, decisions, verdict))
        for st in out:  # durable before anything is released
            for d in st.decisions:
                seq = self._write(self.services.audit_decision, ctx, d, choice=st.pending.index)
                if d.outcome is Outcome.HOLD:
                    st.approvals[id(d)] = self._hold(ctx, d, seq)
            if st.verdict is not None:
                self._write(self.services.audit_response, ctx, st.verdict, choice=st.pending.index)
        for st in out:
            for d in st.decisions:
                self.count(d.outcome.value, d.reasons, d.alerts)
                if d.outcome is Outcome.ALLOW:
                    try:
                        self.services.observe(ctx, d)
                    except Exception as exc:
                        log.warning("baseline update failed", extra={"error": repr(exc)})
            if st.verdict is not None:
                v = st.verdict
                self.count(str(getattr(v.outcome, "value", v.outcome)), v.reasons, v.alerts)
        return out

    def _write(self, fn: Any, *args: Any, **kwargs: Any) -> int:
        t0 = time.perf_counter()
        try:
            seq = int(fn(*args, **kwargs))
        except Exception as exc:
            self.metrics.audit_failures.inc()
            log.error(
                "audit write failed; nothing of the request is released",
                extra={"error": f"{type(exc).__name__}: {exc}"},
            )
            raise AuditUnavailable(f"{type(exc).__name__}: {exc}") from exc
        self.metrics.audit_latency.observe(time.perf_counter() - t0)
        return seq

    def _decide(
        self, ctx: DecisionContext, raw: Any, index: int, baseline: Any, incomplete: str | None
    ) -> Decision:
        """The core's decision for one upstream tool call; any failure is a denial."""
        rc = proposed_call(raw, index)
        if incomplete is not None:  # never decided, never released: it is not a whole call
            return Decision(
                Outcome.DENY,
                (f"incomplete tool call: the stream ended before it was complete ({incomplete})",),
                rc.call,
                policy_version=self.services.policy_version,
            )
        try:
            decision = self.services.decide(ctx, rc.call, baseline)
            if not isinstance(decision, Decision) or decision.outcome not in tuple(Outcome):
                raise TypeError(f"decide() returned {type(decision).__name__}, not a Decision")
        except Exception as exc:  # fail closed
            log.error("decision failed", extra={"request_id": ctx.request_id, "error": repr(exc)})
            return Decision(
                Outcome.DENY,
                (f"guard error, denied (fail closed): {type(exc).__name__}: {exc}",),
                rc.call,
                policy_version=self.services.policy_version,
            )
        if rc.malformed and decision.outcome is not Outcome.DENY:
            decision = replace(
                decision,
                outcome=Outcome.DENY,
                reasons=(f"malformed tool call from the upstream: {rc.malformed}",),
            )
        return decision

    def _screen(self, ctx: DecisionContext, text: str) -> Any:
        try:
            verdict = self.services.screen(ctx, text)
            if verdict is None:
                return None
            Outcome(getattr(verdict.outcome, "value", verdict.outcome))
            return verdict
        except Exception as exc:  # fail closed: withhold the text
            return ResponseDecision(
                Outcome.DENY,
                (f"guard error, response withheld (fail closed): {type(exc).__name__}: {exc}",),
                "",
                policy_version=self.services.policy_version,
            )

    def _hold(self, ctx: DecisionContext, decision: Decision, seq: int) -> str | None:
        try:
            return self.services.hold(ctx, decision, seq)
        except Exception as exc:  # the call stays held (never released) either way
            log.error("approval queue failed", extra={"error": repr(exc)})
            return None

    async def audit_refusal(
        self, request_id: str, identity: str | None, error: ProxyError, detail: dict[str, Any]
    ) -> bool:
        """Write a refused request to the audit log; False when that failed too."""
        full = {"status": error.status, "code": error.code, **detail}
        try:
            async with self._settle_lock:
                await asyncio.to_thread(
                    self._write,
                    self.services.audit_event,
                    request_id=request_id,
                    identity=identity,
                    reasons=(error.message,),
                    detail=full,
                )
        except AuditUnavailable:
            return False
        return True

    def count(self, outcome: str, reasons: tuple[str, ...], alerts: tuple[str, ...]) -> None:
        self.metrics.decisions.labels(outcome, reason_kind(reasons)).inc()
        for alert in alerts:
            self.metrics.alerts.labels(alert.split(":", 1)[0][:40]).inc()

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
            raise upstream_transport_error(exc) from None
        finally:
            self.metrics.upstream_latency.observe(time.perf_counter() - t0)
        if resp.status_code != 200:
            raise upstream_status_error(resp.status_code, resp.content)
        try:
            data = resp.json()
        except ValueError:
            raise ProxyError(
                502,
                f"The upstream answered with something that is not JSON "
                f"({snippet(resp.content)!r}); nothing was released.",
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
        return dict(data)

    # -- streaming -----------------------------------------------------------------------


def create_app(services: GuardServices, *, settings: ProxySettings) -> Any:
    """The proxy as an ASGI app (Starlette); ``app.state.proxy`` is its :class:`GuardProxy`."""
    from ._app import build

    return build(GuardProxy(services, settings=settings))
