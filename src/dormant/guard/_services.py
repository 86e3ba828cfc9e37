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
from contextlib import AbstractContextManager
from typing import Any, Protocol

from .types import Decision, DecisionContext, ModelInfo, ProposedCall, TriggerMatch

log = logging.getLogger("dormant.guard.proxy")

#: (model, identity, tool, destination hosts) of one released call, for the baseline.
Observation = tuple[str, str, str, tuple[str, ...]]

#: Seconds a baseline view is reused (alerts only; they never change an outcome).
BASELINE_SECONDS = 1.0

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
        """The (model, identity) monitoring baseline (or None); may be a second old."""

    def decide(self, context: DecisionContext, call: ProposedCall, baseline: Any) -> Decision:
        """The decision for one proposed tool call."""

    def screen(self, context: DecisionContext, text: str) -> Any:
        """The output-side check of the assistant's text: an object with ``outcome``,
        ``reasons``, ``text`` (possibly redacted) and ``alerts``."""

    def transaction(self) -> AbstractContextManager[Any]:
        """One write transaction on the audit database; durable when the block ends."""

    def audit_decision(
        self, context: DecisionContext, decision: Decision, *, conn: Any, **detail: Any
    ) -> int:
        """Append one tool-call decision in ``conn``'s transaction; its sequence number."""

    def audit_response(
        self, context: DecisionContext, verdict: Any, *, conn: Any, **detail: Any
    ) -> int:
        """Append one response screen in ``conn``'s transaction; its sequence number."""

    def audit_event(
        self,
        *,
        request_id: str,
        identity: str | None,
        reasons: tuple[str, ...],
        detail: dict[str, Any],
        conn: Any,
    ) -> int:
        """Append one refused request (``deny``) in ``conn``'s transaction."""

    def hold(self, context: DecisionContext, decision: Decision, audit_seq: int) -> str | None:
        """Queue a held call for approval; returns its approval id."""

    def observe(self, observations: Sequence[Observation], *, conn: Any) -> None:
        """Add released calls' tools and destinations to the monitoring baseline."""

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
        self._views: dict[tuple[str, str], tuple[float, Any]] = {}

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
        services = cls(
            policy=policy,
            audit=audit,
            registry=registry,
            approvals=Approvals(audit),
            baselines=baselines,
        )
        services.warm()
        return services

    def warm(self) -> None:
        """Load what the first request would load (detectors, Cedar, tables) before serving,
        so the first agent is not the one that waits. Writes nothing."""
        from .types import ModelInfo as _Info

        ctx = DecisionContext("warm-up", _Info("warm-up"), input_texts=("warm-up",))
        self.decide(ctx, ProposedCall("warm-up", {"url": "https://example.com/x"}), None)
        self.screen(ctx, "warm-up text with a url https://example.com/x")
        try:
            self.match([("message[0]", "warm-up")])
        except Exception as exc:  # the registry may be down at start; requests retry
            log.warning("trigger index not built at start", extra={"error": repr(exc)})

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
        key = (context.model.name, context.identity)
        now = time.monotonic()
        hit = self._views.get(key)
        if hit is not None and now - hit[0] < BASELINE_SECONDS:
            return hit[1]
        view = self.baselines.view(*key)
        self._views[key] = (now, view)
        return view

    def decide(self, context: DecisionContext, call: ProposedCall, baseline: Any) -> Decision:
        from .decide import decide

        decision: Decision = decide(context, call, policy=self.policy, baseline=baseline)
        return decision

    def screen(self, context: DecisionContext, text: str) -> Any:
        from .decide import screen_response

        return screen_response(context, text, policy=self.policy)

    def transaction(self) -> AbstractContextManager[Any]:
        tx: AbstractContextManager[Any] = self.audit_log.store.tx()
        return tx

    def audit_decision(
        self, context: DecisionContext, decision: Decision, *, conn: Any, **detail: Any
    ) -> int:
        from .audit import AuditEntry

        entry = AuditEntry.for_decision(context, decision, **detail)
        seq: int = self.audit_log.append(entry, conn=conn)
        return seq

    def audit_response(
        self, context: DecisionContext, verdict: Any, *, conn: Any, **detail: Any
    ) -> int:
        from .audit import AuditEntry

        entry = AuditEntry.for_response(context, verdict, **detail)
        seq: int = self.audit_log.append(entry, conn=conn)
        return seq

    def audit_event(
        self,
        *,
        request_id: str,
        identity: str | None,
        reasons: tuple[str, ...],
        detail: dict[str, Any],
        conn: Any,
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
        seq: int = self.audit_log.append(entry, conn=conn)
        return seq

    def hold(self, context: DecisionContext, decision: Decision, audit_seq: int) -> str | None:
        if self.approvals is None:
            return None
        return str(self.approvals.hold(context, decision, audit_seq=audit_seq))

    def observe(self, observations: Sequence[Observation], *, conn: Any) -> None:
        if self.baselines is not None and observations:
            _observe_in(conn, observations)

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


def observation(context: DecisionContext, decision: Decision) -> Observation:
    """What the baseline learns from one released call."""
    hosts = tuple(b.split(":", 1)[1] for b in decision.behaviours if b.startswith("egress:"))
    return (context.model.name, context.identity, decision.call.tool, hosts)


def _observe_in(conn: Any, observations: Sequence[Observation]) -> None:
    """:meth:`dormant.guard.monitor.Baseline.observe` for many calls inside one transaction.

    A minimal version written here because the core's ``observe`` opens (and syncs) its own
    transaction per call and takes no ``conn``: the proxy applies a batch of observations after
    each group commit (:mod:`dormant.guard._audit_writer`), counting repeats once per batch.
    Same tables and rows as the core's.
    """
    from collections import Counter
    from datetime import UTC, datetime

    from sqlalchemy import select

    from ..registry._engine import upsert
    from ._store import baseline, baseline_counts
    from .monitor import _count

    now = datetime.now(UTC).isoformat(timespec="microseconds")
    values: Counter[tuple[str, str, str, str]] = Counter()
    decisions: Counter[tuple[str, str]] = Counter()
    for model, identity, tool, hosts in observations:
        decisions[(model, identity)] += 1
        values[(model, identity, "tool", tool[:512])] += 1
        for h in hosts:
            values[(model, identity, "destination", h[:512])] += 1
    for (model, identity, kind, value), n in values.items():
        key = (
            (baseline.c.model == model)
            & (baseline.c.identity == identity)
            & (baseline.c.kind == kind)
            & (baseline.c.value == value)
        )
        cur = conn.execute(select(baseline.c.count).where(key)).scalar()
        if cur is None:
            conn.execute(
                baseline.insert().values(
                    model=model, identity=identity, kind=kind, value=value, first_seen=now, count=n
                )
            )
        else:
            conn.execute(baseline.update().where(key).values(count=cur + n))
    for (model, identity), n in decisions.items():
        upsert(
            conn,
            baseline_counts,
            {"model": model, "identity": identity, "decisions": _count(conn, model, identity) + n},
            keys=("model", "identity"),
            update=("decisions",),
        )
