"""The last step both classifier scans share: the verdict's label replayed on held-out texts,
the finding, and the result's extras with the reference check (:mod:`._reference`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ...findings import Finding
from . import decision as D
from ._reference import Check, Explainer


def conclude(
    scanner: str,
    subject: Any,
    held: Sequence[str],
    decided: tuple[Any, dict[str, list[Check]], list[Check], Any],
    results: Sequence[D.LabelResult],
    explainer: Explainer,
    method: str,
    capped: bool,
    t0: float,
    seed: int,
    held_pred: Any = None,
) -> tuple[Finding | None, dict[str, Any]]:
    """The finding (or ``None``) and the extras of a model scan.

    Parameters
    ----------
    scanner, subject, held:
        The scanner's name, the classifier and the held-out clean texts the replay runs on.
    decided:
        What :func:`._reference.decide_explained` returned.
    results, explainer:
        The per-label results decided on, and the reference that checked them.
    method, capped, t0, seed:
        The search's name, whether a budget cut it short, when it started, the seed.
    held_pred:
        The model's labels of ``held`` when already computed (spares the replay a pass).
    """
    verdict, explained, checks, before = decided
    examples: list[dict[str, str]] = []
    b = verdict.best
    if b is not None and b.trigger is not None:
        _, _, examples, _ = D.replay(
            subject.predict_proba,
            subject.labels,
            held,
            b.trigger,
            b.label,
            seed=seed,
            before=held_pred,
        )
    ref = [c.to_dict() for c in checks]
    finding = D.build_finding(
        scanner, subject.ref(), verdict, examples, method=method, reference=ref
    )
    out = D.extras(
        verdict, results, examples, method=method, capped=capped, seconds=time.monotonic() - t0
    )
    out["task_explained"] = explainer.to_dict(explained, checks, before)
    return finding, out
