"""The provenance gate's input: which model is behind a request, and what the registry says of it.

The served model's name is resolved to its artifact digest with the policy's
``[model_digests]`` table, and the digest to:

- its provenance status (:meth:`dormant.registry.Registry.provenance_status`): ``verified``,
  ``signed``, ``tampered``; ``unverified`` and never-recorded digests are ``unknown``;
- ``flagged`` when a recorded scan of it has a high or critical finding (flagged wins over any
  signature state);
- the behaviours a probe proved for it (the ``target`` of each finding of a recorded scan:
  ``egress:…``, ``tool:…``, ``secret:…``), which the decision core turns into explicit denials.

Fail closed: any failure (no registry, an unknown name, a registry error) gives
:attr:`ProvenanceState.UNKNOWN` — the strict ceiling — with ``detail`` saying why.
"""

from __future__ import annotations

from typing import Any

from .policy import GuardPolicy
from .types import ModelInfo, ProvenanceState

_FLAG_SEVERITIES = {"high", "critical"}
_BEHAVIOUR_FAMILIES = ("egress", "tool", "secret", "code", "leak", "unsafe")
_STATES = {
    "verified": ProvenanceState.VERIFIED,
    "signed": ProvenanceState.SIGNED,
    "tampered": ProvenanceState.TAMPERED,
}


def resolve_model(name: str, *, policy: GuardPolicy, registry: Any | None) -> ModelInfo:
    """Resolve a served model name to a :class:`ModelInfo` (never raises: fails closed).

    Parameters
    ----------
    name:
        The model name a request asked for (``"model"`` in an OpenAI request).
    policy:
        Supplies ``model_digests`` (name -> ``sha256:…``).
    registry:
        A :class:`dormant.registry.Registry`, or ``None`` when the guard runs without one.
    """
    if not isinstance(name, str) or not name:
        return ModelInfo(str(name), detail="the request names no model")
    digest = policy.model_digests.get(name)
    if digest is None:
        return ModelInfo(
            name, detail=f"model {name!r} is not in the policy's [model_digests] table"
        )
    if registry is None:
        return ModelInfo(name, digest, detail="no registry configured")
    try:
        status = registry.provenance_status(digest)
        scans = registry.scans_for(digest)
    except Exception as exc:  # fail closed on anything the registry raises
        return ModelInfo(
            name, digest, detail=f"registry failed: {type(exc).__name__}: {str(exc)[:200]}"
        )
    state = _STATES.get(status.status, ProvenanceState.UNKNOWN)
    detail = f"registry status {status.status}"
    proven: list[str] = []
    flagged_by: list[str] = []
    for scan in scans:
        if scan.max_severity in _FLAG_SEVERITIES:
            flagged_by.append(f"{scan.id[:8]} ({scan.max_severity})")
        for f in (scan.report or {}).get("findings", []) or []:
            target = f.get("target") if isinstance(f, dict) else None
            if (
                isinstance(target, str)
                and target.partition(":")[0] in _BEHAVIOUR_FAMILIES
                and target not in proven
                and f.get("severity") in _FLAG_SEVERITIES | {"medium"}
            ):
                proven.append(target)
    if flagged_by:
        state = ProvenanceState.FLAGGED
        detail += "; flagged by scan " + ", ".join(flagged_by[:3])
    return ModelInfo(name, digest, state, tuple(proven), detail)


__all__ = ["resolve_model"]
