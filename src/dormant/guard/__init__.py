"""The runtime guard: contain triggered behaviour by controlling what a model may *do*.

A planted trigger that no scan has seen passes any input screen, so the guard decides on the
proposed *actions* — which tools, which destinations, which credentials — per agent identity,
deny by default, tightened when the model's provenance is not verified or a scan flagged it.
See :mod:`dormant.guard.types` for the nouns, :func:`decide` for the decision core.

``cedarpy``, ``confusable-homoglyphs`` and SQLAlchemy are imported when first used (the audit
log, baselines and approvals on attribute access): ``pip install 'dormant[guard]'``.
"""

from __future__ import annotations

from typing import Any

from .decide import decide, screen_response
from .match import TriggerIndex
from .policy import GuardPolicy
from .provenance import resolve_model
from .types import (
    Decision,
    DecisionContext,
    ModelInfo,
    Outcome,
    Privilege,
    ProposedCall,
    ProvenanceState,
    ResponseDecision,
    TriggerMatch,
)

_LAZY = {
    "AuditLog": "audit",
    "AuditEntry": "audit",
    "Baseline": "monitor",
    "Guard": "service",
    "GroupCommit": "commit",
    "BaselineView": "monitor",
    "Approvals": "approvals",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'dormant.guard' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{mod}", __name__), name)


__all__ = [
    "Approvals",
    "AuditEntry",
    "AuditLog",
    "Baseline",
    "BaselineView",
    "Decision",
    "DecisionContext",
    "GroupCommit",
    "Guard",
    "GuardPolicy",
    "ModelInfo",
    "Outcome",
    "Privilege",
    "ProposedCall",
    "ProvenanceState",
    "ResponseDecision",
    "TriggerIndex",
    "TriggerMatch",
    "decide",
    "resolve_model",
    "screen_response",
]
