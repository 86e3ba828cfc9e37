"""One guarded step for every face of the guard: decide, write the audit entry, then release.

The proxy, the MCP gateway and an in-process integration all do the same thing per request:
resolve the model, find known triggers in the request's text, decide each proposed call,
write the decision durably to the audit chain *before* answering, feed the monitoring baseline
and queue held calls. :class:`Guard` is that sequence, so each face stays thin. It fails
closed: when the audit log cannot be written, the call is denied (never released unlogged).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import replace
from typing import Any

from .approvals import Approvals
from .audit import AuditEntry, AuditLog
from .commit import GroupCommit
from .decide import decide, screen_response
from .match import TriggerIndex
from .monitor import Baseline
from .policy import GuardPolicy
from .provenance import resolve_model
from .types import (
    Decision,
    DecisionContext,
    ModelInfo,
    Outcome,
    ProposedCall,
    ResponseDecision,
)


class Guard:
    """The decision core with its audit log, baseline, hold queue and trigger index.

    Parameters
    ----------
    policy:
        The loaded policy.
    audit:
        The audit log (its database also holds baselines and held calls).
    registry:
        A :class:`dormant.registry.Registry` for the provenance gate, or ``None`` (every model
        is then ``unknown``: the strict ceiling).
    triggers:
        Known triggers; ``None`` reads them from ``registry`` (none without one) and re-reads
        them every ``triggers_ttl`` seconds. When the registry cannot be read, the last index
        is kept (empty at first) and :attr:`trigger_error` says why.
    provenance_ttl:
        Seconds a model's resolved provenance is reused (a failed resolution never is), so
        the registry is not queried on every request; a new signature or flagging scan takes
        effect within this time.
    triggers_ttl:
        Seconds between re-reads of the registry's known triggers.
    trigger_min_severity:
        Only recorded triggers at or above this severity drop a request to the suspect tier
        (a low-severity candidate is weak evidence, and a common word flagged by one scan
        would otherwise restrict every request that uses it).
    """

    def __init__(
        self,
        policy: GuardPolicy,
        *,
        audit: AuditLog,
        registry: Any | None = None,
        triggers: TriggerIndex | None = None,
        provenance_ttl: float = 5.0,
        triggers_ttl: float = 60.0,
        trigger_min_severity: str | None = "medium",
    ) -> None:
        self.policy = policy
        self.audit = audit
        self.registry = registry
        self.provenance_ttl = provenance_ttl
        self.triggers_ttl = triggers_ttl
        self.trigger_min_severity = trigger_min_severity
        self.trigger_error: str | None = None
        self._models: dict[str, tuple[float, ModelInfo]] = {}
        self._own_triggers = triggers is None
        self._triggers_at = 0.0
        self.triggers = triggers if triggers is not None else TriggerIndex()
        if self._own_triggers:
            self.refresh_triggers()
        #: Decisions from concurrent threads share durable commits (see :mod:`.commit`).
        self.commit = GroupCommit(audit)
        self.baseline = Baseline(audit.store, learning_decisions=policy.learning_decisions)
        self.approvals = Approvals(audit)

    def close(self) -> None:
        """Write what the monitoring baseline still buffers (call at shutdown)."""
        with suppress(Exception):
            self.baseline.flush()

    def refresh_triggers(self) -> None:
        """Re-read the registry's known triggers (keeps the old index when that fails)."""
        self._triggers_at = time.monotonic()
        if self.registry is None:
            return
        try:
            self.triggers = TriggerIndex.from_registry(
                self.registry, min_severity=self.trigger_min_severity
            )
            self.trigger_error = None
        except Exception as exc:  # the guard still runs, strictly, without new ones
            self.trigger_error = f"{type(exc).__name__}: {str(exc)[:200]}"

    def model(self, name: str) -> ModelInfo:
        """The model's provenance, reused for ``provenance_ttl`` seconds once resolved."""
        now = time.monotonic()
        hit = self._models.get(name)
        if hit is not None and now - hit[0] < self.provenance_ttl:
            return hit[1]
        info = resolve_model(name, policy=self.policy, registry=self.registry)
        if not (info.detail or "").startswith("registry failed"):
            if len(self._models) > 1024:
                self._models.clear()
            self._models[name] = (now, info)
        return info

    def context(
        self,
        identity: str,
        model: str,
        texts: Sequence[tuple[str, str]] = (),
        *,
        request_id: str | None = None,
        system_prompt: str | None = None,
    ) -> DecisionContext:
        """Build the request's context: model resolved, triggers matched, canaries attached.

        ``texts`` are ``(where, text)`` pairs: ``("message[0]", …)``, ``("tool_result[1]", …)``.
        """
        if self._own_triggers and time.monotonic() - self._triggers_at >= self.triggers_ttl:
            self.refresh_triggers()
        info = self.model(model)
        found = self.triggers.find(texts)
        return DecisionContext(
            identity=identity,
            model=info,
            triggers=found,
            input_texts=tuple(t for _, t in texts),
            canaries=self.policy.canaries_for(identity),
            request_id=request_id,
            system_prompt=system_prompt,
        )

    def check_call(self, context: DecisionContext, call: ProposedCall) -> Decision:
        """Decide one call, audit it durably, observe it, queue it if held.

        The returned decision carries ``audit_seq`` (and ``hold_id`` when held); release the
        call only when ``decision.allowed``.
        """
        try:
            view = self.baseline.view(context.model.name, context.identity)
        except Exception:
            view = None  # monitoring is advisory: its failure never blocks a decision
        decision = decide(context, call, policy=self.policy, baseline=view)
        if decision.outcome is Outcome.HOLD:
            released = self._release_approved(context, decision)
            if released is not None:
                return released
        try:
            seq = self.commit.append(AuditEntry.for_decision(context, decision))
        except Exception as exc:
            return replace(
                decision,
                outcome=Outcome.DENY,
                reasons=(
                    *decision.reasons,
                    f"the audit log could not be written ({type(exc).__name__}); denied "
                    "(fail closed)",
                ),
            )
        decision = replace(decision, audit_seq=seq)
        if decision.outcome is Outcome.HOLD:
            try:
                hold_id = self.approvals.hold(context, decision, audit_seq=seq)
            except Exception as exc:
                return replace(
                    decision,
                    outcome=Outcome.DENY,
                    reasons=(
                        *decision.reasons,
                        f"the hold queue could not be written ({type(exc).__name__}); denied",
                    ),
                )
            decision = replace(decision, hold_id=hold_id)
        if decision.outcome is not Outcome.DENY:
            with suppress(Exception):  # advisory, as above
                self.baseline.observe(
                    context.model.name, context.identity, call.tool, decision.destinations
                )
        return decision

    def _release_approved(self, context: DecisionContext, decision: Decision) -> Decision | None:
        """The ``allow`` for a held call a person has approved (audited, the hold used up), or
        ``None`` when none is approved; a failure to read or write the queue is ``None`` too
        (the call is then held again: fail closed)."""
        allowed = replace(
            decision,
            outcome=Outcome.ALLOW,
            reasons=(
                f"permitted: tool {decision.call.tool!r} was held for approval by the policy "
                "and a person approved this call",
            ),
        )
        try:
            got = self.approvals.release(
                context, allowed, AuditEntry.for_decision(context, allowed)
            )
        except Exception:
            return None
        if got is None:
            return None
        held, seq = got
        with suppress(Exception):  # advisory, as in check_call
            self.baseline.observe(
                context.model.name, context.identity, decision.call.tool, decision.destinations
            )
        return replace(allowed, audit_seq=seq, hold_id=held.id)

    def check_response(self, context: DecisionContext, text: str) -> ResponseDecision:
        """Screen a response and audit the outcome before it is released (fails closed)."""
        decision = screen_response(context, text, policy=self.policy)
        try:
            self.commit.append(AuditEntry.for_response(context, decision))
        except Exception as exc:
            return ResponseDecision(
                Outcome.DENY,
                (
                    *decision.reasons,
                    f"the audit log could not be written ({type(exc).__name__}); withheld",
                ),
                "",
                decision.behaviours,
                decision.alerts,
                decision.redactions,
                decision.policy_version,
            )
        return decision


__all__ = ["Guard"]
