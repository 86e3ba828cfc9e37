"""``scan_model``: run the model scanners on a classifier and assemble one Report.

A thin wrapper over the one runner (:func:`dormant.runner.run_scanners`): it chooses the
scanners and their settings from ``method``; the runner applies its error policy and this
module's combiner (:func:`combine_model`, the strongest verdict) makes the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import ConfigError
from ...findings import PriorTrigger
from ...priors import PriorSource, check_priors, prior_triggers
from ...report import Report
from .._runner import Family, Results, jsonable_params, register_family, run_scanners
from ..base import ScanContext, ScanResult
from .blackbox import QueryTriggerSearchScanner
from .whitebox import TriggerInversionScanner

METHODS = ("auto", "whitebox", "blackbox")


def scan_model(
    model: Any,
    *,
    method: str = "auto",
    data_report: PriorSource | None = None,
    priors: Sequence[PriorTrigger] = (),
    context: ScanContext | None = None,
    whitebox_params: dict[str, Any] | None = None,
    blackbox_params: dict[str, Any] | None = None,
) -> Report:
    """Scan a :class:`~dormant.subjects.model.ClassifierModel` (with ``clean`` data set).

    ``method='auto'`` inverts triggers with gradients when the model exposes them and searches
    by query otherwise; with prior triggers (``priors``, or those of a ``data_report``: a
    :class:`~dormant.report.Report`, a ``report.json`` path or its parsed dict, read by
    :func:`dormant.priors.prior_triggers`) they are also tested by query, and the stronger
    verdict is kept. A scanner that fails is recorded as an error (the report
    is then ``partial``); a verdict reached under ``context.budget_seconds`` says it was capped.
    """
    if method not in METHODS:
        raise ConfigError(
            f"The 'method' parameter must be one of {', '.join(METHODS)}. Got {method!r} instead."
        )
    ctx = context or ScanContext()
    known = (*check_priors(priors, "priors", "scan_model"), *prior_triggers(data_report))
    runs: list[Any] = []
    grads = "gradients" in model.capabilities
    if method == "whitebox" or (method == "auto" and grads):
        if not grads:
            raise ConfigError("method='whitebox' needs a local transformers model (gradients).")
        runs.append(TriggerInversionScanner(**(whitebox_params or {})))
        if known:
            runs.append(
                QueryTriggerSearchScanner(
                    tail=0, pairs_of=0, priors=known, **(blackbox_params or {})
                )
            )
    else:
        runs.append(QueryTriggerSearchScanner(priors=known, **(blackbox_params or {})))
    report = Report(
        subject=model.ref(),
        config={
            "method": method,
            "budget_seconds": ctx.budget_seconds,
            "scanners": {s.name: jsonable_params(s.get_params()) for s in runs},
        },
        seed=ctx.seed,
    )
    return run_scanners(model, runs, context=ctx, report=report)


def combine_model(model: Any, results: Results, report: Report) -> None:
    """Keep the strongest verdict: the findings and extras of the result whose
    ``model_verdict`` probability is highest (the first on a tie)."""
    best: ScanResult | None = None
    for _, res in results:
        if best is None or _prob(res) > _prob(best):
            best = res
    if best is not None:
        report.findings.extend(best.findings)
        report.extras.update(best.extras)


def _prob(res: ScanResult) -> float:
    return float(res.extras.get("model_verdict", {}).get("probability", 0.0))


register_family(Family(kinds=("classifier",), combine=combine_model))
