"""What the proxy asks of the decision core, and its wiring to the real one.

The proxy (:mod:`dormant.guard.proxy`) is thin: it authenticates, resolves, forwards, and asks
the core. :class:`GuardServices` is the one narrow interface it uses, so the ASGI code holds no
decision logic and any face (the proxy, the MCP gateway, a test) can hand it the same core.
:meth:`CoreServices.open` wires the interface to the real core modules —
:class:`dormant.guard.policy.GuardPolicy`, :func:`dormant.guard.decide.decide`,
:class:`dormant.guard.match.TriggerIndex`, :func:`dormant.guard.provenance.resolve_model`,
:class:`dormant.guard.audit.AuditLog` and :mod:`dormant.guard.approvals`.

Every method of the interface may raise; the proxy turns a failure into a fail-closed answer
(a failed decision is a denial, a failed audit write denies everything, a failed provenance
lookup is ``unknown``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from .types import Decision, DecisionContext, ModelInfo, ProposedCall, TriggerMatch

log = logging.getLogger("dormant.guard.proxy")

#: Seconds a known-trigger index built from the registry is reused before it is rebuilt.
INDEX_SECONDS = 60.0


class GuardServices(Protocol):
    """The decision core as the proxy sees it (the proxy calls the sync methods on a worker
    thread, one request at a time for the audit-writing ones)."""

    #: The policy's version (its digest), written into every audit entry.
    policy_version: str | None

    def identify(self, api_key: str) -> str | None:
        """The agent identity an API key belongs to, or None for an unknown key."""

    def resolve(self, model: str) -> ModelInfo:
        """The model's provenance from the registry (may raise when the registry is down)."""

    def match(self, texts: Sequence[tuple[str, str]]) -> tuple[TriggerMatch, ...]:
        """Known triggers in ``(where, text)`` pairs (may raise when the registry is down)."""

    def canaries(self, identity: str) -> tuple[str, ...]:
        """Honeytoken credentials placed in this identity's context."""

    def baseline(self, context: DecisionContext) -> Any:
        """The (model, identity) monitoring baseline, read once per request (or None)."""

    def decide(self, context: DecisionContext, call: ProposedCall, baseline: Any) -> Decision:
        """The decision for one proposed tool call."""

    def screen(self, context: DecisionContext, text: str) -> Any:
        """The output-side check of the assistant's text: an object with ``outcome``,
        ``reasons``, ``text`` (possibly redacted) and ``alerts``."""

    def audit_decision(self, context: DecisionContext, decision: Decision, **detail: Any) -> int:
        """Write one tool-call decision durably; returns its sequence number. Raises if not."""

    def audit_response(self, context: DecisionContext, verdict: Any, **detail: Any) -> int:
        """Write one response screen durably; returns its sequence number. Raises if not."""

    def audit_event(
        self,
        *,
        request_id: str,
        identity: str | None,
        reasons: tuple[str, ...],
        detail: dict[str, Any],
    ) -> int:
        """Write one refused request (``deny``) durably. Raises if not."""

    def hold(self, context: DecisionContext, decision: Decision, audit_seq: int) -> str | None:
        """Queue a held call for approval; returns its approval id."""

    def observe(self, context: DecisionContext, decision: Decision) -> None:
        """Add a released call's tool and destinations to the monitoring baseline."""

    def health(self) -> tuple[bool, str]:
        """Whether the core can decide and audit now, and a one-line reason."""


class CoreServices:
    """:class:`GuardServices` over the real decision core (policy, registry, audit log).

    Parameters
    ----------
    policy:
        A loaded :class:`dormant.guard.policy.GuardPolicy`.
    audit:
        An open :class:`dormant.guard.audit.AuditLog`.
    registry:
        A :class:`dormant.registry.Registry`, or None (then every model is ``unknown``).
    approvals:
        The :class:`dormant.guard.approvals.Approvals` queue for held calls, or None (then a
        held call is only reported, never released).
    baselines:
        The :class:`dormant.guard.monitor.Baseline` store for new-tool / new-destination
        alerts, or None.
    """

    def __init__(
        self,
        *,
        policy: Any,
        audit: Any,
        registry: Any = None,
        approvals: Any = None,
        baselines: Any = None,
    ) -> None:
        self.policy = policy
        self.audit_log = audit
        self.registry = registry
        self.approvals = approvals
        self.baselines = baselines
        self.policy_version: str | None = getattr(policy, "version", None)
        self._index: Any = None
        self._index_at = 0.0
        self._index_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        policy_path: str,
        *,
        registry_url: str | None = None,
        audit_url: str | None = None,
    ) -> CoreServices:
        """Load the policy (``ConfigError`` naming the file and line) and open the stores.

        A registry that does not answer at start is kept and retried on each lookup; until it
        answers every model is ``unknown`` (the strict ceiling) and every request is in the
        suspect tier. The audit log must open: the guard never runs without one.
        """
        from ..errors import ConfigError, RegistryError
        from .approvals import Approvals
        from .audit import AuditLog
        from .monitor import Baseline
        from .policy import GuardPolicy

        policy = GuardPolicy.load(policy_path)
        registry = None
        if registry_url is not None:
            from ..registry import Registry

            registry = Registry(url=registry_url)
            try:
                registry.connect()
            except (RegistryError, OSError) as exc:
                log.warning("registry unavailable at start", extra={"error": str(exc)})
        try:
            audit = AuditLog.open(audit_url)
        except (RegistryError, OSError) as exc:
            raise ConfigError(
                f"--audit: the audit log cannot be opened for writing ({exc}); the guard never "
                "runs without one."
            ) from exc
        baselines = Baseline(
            audit.store, learning_decisions=getattr(policy, "learning_decisions", 50)
        )
        return cls(
            policy=policy,
            audit=audit,
            registry=registry,
            approvals=Approvals(audit),
            baselines=baselines,
        )

    # -- the interface -------------------------------------------------------------------

    def identify(self, api_key: str) -> str | None:
        identity: str | None = self.policy.identity_for_key(api_key)
        return identity

    def resolve(self, model: str) -> ModelInfo:
        from .provenance import resolve_model

        info: ModelInfo = resolve_model(model, policy=self.policy, registry=self.registry)
        return info

    def match(self, texts: Sequence[tuple[str, str]]) -> tuple[TriggerMatch, ...]:
        index = self._trigger_index()
        if index is None:
            return ()
        return tuple(index.find(list(texts)))

    def canaries(self, identity: str) -> tuple[str, ...]:
        fn = getattr(self.policy, "canaries_for", None)
        return tuple(fn(identity)) if fn is not None else ()

    def baseline(self, context: DecisionContext) -> Any:
        if self.baselines is None:
            return None
        return self.baselines.view(context.model.name, context.identity)

    def decide(self, context: DecisionContext, call: ProposedCall, baseline: Any) -> Decision:
        from .decide import decide

        decision: Decision = decide(context, call, policy=self.policy, baseline=baseline)
        return decision

    def screen(self, context: DecisionContext, text: str) -> Any:
        from .decide import screen_response

        return screen_response(context, text, policy=self.policy)

    def audit_decision(self, context: DecisionContext, decision: Decision, **detail: Any) -> int:
        from .audit import AuditEntry

        seq: int = self.audit_log.append(AuditEntry.for_decision(context, decision, **detail))
        return seq

    def audit_response(self, context: DecisionContext, verdict: Any, **detail: Any) -> int:
        from .audit import AuditEntry

        seq: int = self.audit_log.append(AuditEntry.for_response(context, verdict, **detail))
        return seq

    def audit_event(
        self,
        *,
        request_id: str,
        identity: str | None,
        reasons: tuple[str, ...],
        detail: dict[str, Any],
    ) -> int:
        from .audit import AuditEntry

        entry = AuditEntry(
            kind="event",
            outcome="deny",
            identity=identity,
            model=detail.get("model"),
            reasons=reasons,
            policy_version=self.policy_version,
            request_id=request_id,
            detail=detail,
        )
        seq: int = self.audit_log.append(entry)
        return seq

    def hold(self, context: DecisionContext, decision: Decision, audit_seq: int) -> str | None:
        if self.approvals is None:
            return None
        return str(self.approvals.hold(context, decision, audit_seq=audit_seq))

    def observe(self, context: DecisionContext, decision: Decision) -> None:
        if self.baselines is None:
            return
        hosts = tuple(b.split(":", 1)[1] for b in decision.behaviours if b.startswith("egress:"))
        self.baselines.observe(context.model.name, context.identity, decision.call.tool, hosts)

    def health(self) -> tuple[bool, str]:
        try:
            with self.audit_log.store.tx() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception as exc:
            return False, f"the audit log cannot be written: {type(exc).__name__}: {exc}"
        return True, "ok"

    # -- helpers -------------------------------------------------------------------------

    def _trigger_index(self) -> Any:
        """The known-trigger index from the registry, rebuilt every ``INDEX_SECONDS``.

        None without a registry. Raises when the registry fails (the proxy then puts the
        request in the suspect tier).
        """
        if self.registry is None:
            return None
        with self._index_lock:
            now = time.monotonic()
            if self._index is None or now - self._index_at > INDEX_SECONDS:
                from .match import TriggerIndex

                self._index = TriggerIndex.from_registry(self.registry)
                self._index_at = now
            return self._index
