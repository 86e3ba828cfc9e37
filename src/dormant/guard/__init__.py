"""The runtime guard: contain triggered behaviour by controlling what a model may *do*.

A planted trigger that no scan has seen passes any input screen, so the guard decides on the
proposed *actions* — which tools, which destinations, which credentials — per agent identity,
deny by default, tightened when the model's provenance is not verified or a scan flagged it.
See :mod:`dormant.guard.types` for the nouns.
"""

from __future__ import annotations

from .types import (
    Decision,
    DecisionContext,
    ModelInfo,
    Outcome,
    Privilege,
    ProposedCall,
    ProvenanceState,
    TriggerMatch,
)

__all__ = [
    "Decision",
    "DecisionContext",
    "ModelInfo",
    "Outcome",
    "Privilege",
    "ProposedCall",
    "ProvenanceState",
    "TriggerMatch",
]
