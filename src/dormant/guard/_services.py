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

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from .types import Decision, DecisionContext, ModelInfo, ProposedCall, TriggerMatch


class GuardServices(Protocol):
    """The decision core as the proxy sees it."""

    #: The policy's version (its digest), written into every audit entry.
    policy_version: str | None

    def identify(self, api_key: str) -> str | None:
        """The agent identity an API key belongs to, or None for an unknown key."""

    def resolve(self, model: str) -> ModelInfo:
        """The model's provenance from the registry (may raise when the registry is down)."""

    def match(self, texts: Sequence[tuple[str, str]]) -> tuple[TriggerMatch, ...]:
        """Known triggers in ``(where, text)`` pairs."""

    def canaries(self, identity: str) -> tuple[str, ...]:
        """Honeytoken credentials placed in this identity's context."""

    def decide(self, context: DecisionContext, call: ProposedCall) -> Decision:
        """The decision for one proposed tool call."""

    def screen(self, context: DecisionContext, text: str) -> Decision | None:
        """The output-side check of the assistant's text; None when nothing was found."""

    def hold(self, decision: Decision, context: DecisionContext) -> str | None:
        """Store a held call for approval; returns its approval id."""

    def audit(self, entry: dict[str, Any]) -> int:
        """Write one entry durably; returns its sequence number. Raises when it cannot."""

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
        An open :class:`dormant.registry.Registry`, or None (then every model is ``unknown``).
    approvals:
        The approval store for held calls, or None (then a held call is only reported).
    baseline:
        A :class:`dormant.guard.monitor.Baseline` for new-tool / new-destination alerts.
    """

    def __init__(
        self,
        *,
        policy: Any,
        audit: Any,
        registry: Any = None,
        approvals: Any = None,
        baseline: Any = None,
    ) -> None:
        self.policy = policy
        self.audit_log = audit
        self.registry = registry
        self.approvals = approvals
        self.baseline = baseline
        self.policy_version = getattr(policy, "version", None)
        self._index: Any = None
        self._index_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        policy_path: str,
        *,
        registry_url: str | None = None,
        audit_url: str | None = None,
    ) -> CoreServices:
        """Load the policy (raises ``ConfigError`` naming the line) and open the stores."""
        from .audit import AuditLog
        from .policy import GuardPolicy

        policy = GuardPolicy.load(policy_path)
        registry = None
        if registry_url is not None:
            from ..registry import Registry

            registry = Registry.open(registry_url)
        audit = AuditLog.open(audit_url)
        approvals = _open_approvals(audit_url)
        baseline = _open_baseline()
        return cls(
            policy=policy, audit=audit, registry=registry, approvals=approvals, baseline=baseline
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

    def decide(self, context: DecisionContext, call: ProposedCall) -> Decision:
        from .decide import decide

        decision: Decision = decide(context, call, policy=self.policy, baseline=self.baseline)
        return decision

    def screen(self, context: DecisionContext, text: str) -> Decision | None:
        from .decide import screen_response

        result: Decision | None = screen_response(context, text, policy=self.policy)
        return result

    def hold(self, decision: Decision, context: DecisionContext) -> str | None:
        if self.approvals is None:
            return None
        ref = self.approvals.submit(decision, context)
        return None if ref is None else str(ref)

    def audit(self, entry: dict[str, Any]) -> int:
        seq: int = self.audit_log.append(entry)
        return seq

    def health(self) -> tuple[bool, str]:
        check = getattr(self.audit_log, "healthy", None)
        if check is not None and not check():
            return False, "the audit log cannot be written"
        return True, "ok"

    # -- helpers -------------------------------------------------------------------------

    def _trigger_index(self) -> Any:
        """The known-trigger index, built once from the registry (None without a registry)."""
        if self.registry is None:
            return None
        with self._index_lock:
            if self._index is None:
                from .match import TriggerIndex

                self._index = TriggerIndex.from_registry(self.registry)
            return self._index


def _open_approvals(audit_url: str | None) -> Any:
    import importlib

    try:
        approvals = importlib.import_module("dormant.guard.approvals")
    except ImportError:
        return None
    opener = getattr(approvals, "open_store", None) or getattr(approvals, "ApprovalStore", None)
    if opener is None:
        return None
    return opener.open(audit_url) if hasattr(opener, "open") else opener(audit_url)


def _open_baseline() -> Any:
    try:
        from .monitor import Baseline
    except ImportError:
        return None
    return Baseline()
