"""The classifier screen's audit entries and what it reads off the model (its digest, its
penultimate features), apart from the screen's scoring and decisions
(:mod:`dormant.guard.classify`)."""

from __future__ import annotations

import hashlib
from typing import Any

from ._screen_decision import ScreenDecision


def decision_entry(screen: Any, text: Any, d: ScreenDecision, request_id: str | None) -> Any:
    """The audit entry of one decision of ``screen`` (a
    :class:`~dormant.guard.classify.ClassifierScreen`)."""
    from .audit import AuditEntry

    raw = text if isinstance(text, str) else repr(text)
    return AuditEntry(
        kind="decision",
        outcome="deny" if d.flagged else "allow",
        identity=screen.identity,
        model=screen.name,
        digest=screen.digest_,
        triggers=tuple(t.to_dict() for t in d.triggers),
        reasons=d.reasons,
        request_id=request_id,
        detail={
            "screen": "classify",
            "method": screen.method,
            "label": d.label,
            "p_value": d.p_value,
            "score": d.score,
            "span": d.span,
            "representation": d.representation,
            "fpr": screen.fpr,
            "n_calibration": len(screen.calibration_scores_),
            # the input itself is not stored (log lines carry secrets); its hash is
            "input_sha256": hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest(),
            "input_chars": len(raw),
        },
    )


def features_of(model: Any) -> Any:
    """The model's ``features(texts)``, on it or on its adapter; ``None`` if it has none."""
    for obj in (model, getattr(model, "adapter", None)):
        fn = getattr(obj, "features", None)
        if callable(fn):
            return fn
    return None


def model_digest(model: Any) -> str | None:
    for obj in (model, getattr(model, "adapter", None)):
        fn = getattr(obj, "digest", None)
        if callable(fn):
            try:
                return str(fn())
            except Exception:
                return None
    return None


__all__ = ["decision_entry", "features_of", "model_digest"]
