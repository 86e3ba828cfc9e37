"""The data scan: run the data scanners on a dataset and fuse them into one Report.

``scan_dataset`` runs trigger mining (always), then — when an encoder is available — embeds the
records once and runs the representation scanners (spectral signatures, activation clustering,
SPECTRE) on the same embeddings. Per-record scores are fused by taking the maximum over
scanners (each score is in [0, 1], higher = more suspicious). A record is **flagged** when
trigger mining flags it (a planted trigger with strong evidence), or when at least
``min_votes`` representation scanners flag it inside a class their own attacked-class test
selected — a vote that keeps one noisy geometric method from flooding the quarantine.

It is a thin wrapper over the one runner (:func:`dormant.runner.run_scanners`), whose error
policy holds: a scanner that fails becomes an ``error`` entry of the report and the scan goes
on; one whose requirements are missing becomes a ``skip`` entry with the reason. The report is
marked ``partial`` when any scanner failed. This module registers the data family: records
embedded once for the representation scanners (:func:`prepare_data`) and the vote above
(:func:`combine_data`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from ...errors import ConfigError, DormantError, InputError, MissingDependencyError
from ...report import RecordScore, Report, ScanIssue
from ...runner import Family, Results, register_family, run_scanners, with_features
from ...subjects.dataset import TextDataset
from ..base import REGISTRY, ScanContext, Scanner, _load_builtin
from ._mining_features import _outcomes_of

REPRESENTATION_SCANNERS = ("spectral-signature", "activation-clustering", "spectre")
MINING = "trigger-mining"


def record_outcomes(dataset: TextDataset, *, batch_size: int = 8192) -> list[str]:
    """One outcome string per record: ``label:X``, or the sorted behaviour tags of a response."""
    out: list[str] = []
    for batch in dataset.batches(batch_size):
        out.extend("+".join(tags) for tags in _outcomes_of(batch.labels, batch.responses))
    return out


def scan_dataset(
    dataset: TextDataset,
    *,
    scanners: Sequence[str] | None = None,
    embed: bool = True,
    encoder_path: str | None = None,
    min_votes: int = 2,
    context: ScanContext | None = None,
    mining_params: dict[str, Any] | None = None,
    embeddings: np.ndarray | None = None,
    miner: Any = None,
) -> Report:
    """Scan a dataset with the data scanners and return the fused :class:`Report`.

    Parameters
    ----------
    dataset:
        The :class:`~dormant.subjects.TextDataset` to scan.
    scanners:
        Names of scanners to run; default: trigger mining plus the representation scanners.
    embed:
        Run the representation scanners (needs the ``embed`` extra and an encoder).
    encoder_path:
        A local Hugging Face encoder directory; default: the packaged all-MiniLM-L6-v2.
    min_votes:
        Representation scanners that must agree before their flag counts.
    context:
        Seed, cache directory and progress callback.
    mining_params:
        Settings for the trigger-mining scanner.
    embeddings:
        Precomputed record embeddings (one row per record, in read order); the encoder is not
        run when given.
    miner:
        The trigger-mining scanner to run (e.g. one whose counting pass runs on Ray); default:
        the registered one built with ``mining_params``.
    """
    _load_builtin()
    ctx = context or ScanContext()
    names = list(scanners) if scanners is not None else [MINING, *REPRESENTATION_SCANNERS]
    for name in names:
        if name not in REGISTRY and name not in REPRESENTATION_SCANNERS:
            raise ConfigError(
                f"Unknown scanner {name!r}; registered: {', '.join(sorted(REGISTRY))}."
            )
    report = Report(
        subject=dataset.ref(),
        seed=ctx.seed,
        config={
            "dataset": {
                "path": str(dataset.path),
                "kind": dataset.kind,
                "format": dataset.format,
                "input_field": dataset.input_field,
                "label_field": dataset.label_field,
                "response_field": dataset.response_field,
                "id_field": dataset.id_field,
            },
            "scanners": names,
            "embed": embed,
            "encoder": encoder_path or "packaged all-MiniLM-L6-v2",
            "min_votes": min_votes,
            "mining": mining_params or {},
        },
    )
    run: list[Scanner] = []
    if MINING in names:
        # --no-embed also turns off the miner's natural-neighbour test (it embeds records)
        params = {"neighbour_test": embed, "encoder_path": encoder_path, **(mining_params or {})}
        run.append(miner or REGISTRY[MINING](**params))
    for name in (n for n in names if n in REPRESENTATION_SCANNERS):
        if not embed:
            report.issues.append(ScanIssue(name, "skip", "embedding disabled (--no-embed)"))
        elif name not in REGISTRY:
            report.issues.append(ScanIssue(name, "skip", "scanner not available in this install"))
        else:
            run.append(REGISTRY[name]())
    features: dict[str, Any] = {"encoder_path": encoder_path}
    if embeddings is not None:
        features["embeddings"] = embeddings
    return run_scanners(
        dataset,
        run,
        context=with_features(ctx, **features),
        report=report,
        combine=partial(combine_data, min_votes=min_votes),
    )


def prepare_data(
    dataset: TextDataset, scanner: Scanner, ctx: ScanContext
) -> tuple[ScanContext, ScanIssue | None]:
    """Embed the records (and read their outcomes) once, before the first scanner needing it.

    A missing encoder dependency makes every such scanner a skip, a failed embedding an
    error; unusable input (:class:`InputError`) is raised.
    """
    if "embeddings" not in scanner.requires:
        return ctx, None
    failed = ctx.features.get("embedding_failed")
    if failed is None and "embeddings" not in ctx.features:
        try:
            from ...adapters.encoder import TextEncoder

            encoder = TextEncoder(model_path=ctx.features.get("encoder_path"), device=ctx.device)
            embedded = encoder.embed_dataset(dataset, context=ctx)
        except MissingDependencyError as exc:
            failed = ("skip", str(exc))
        except InputError:
            raise
        except (DormantError, RuntimeError, OSError, ValueError) as exc:
            failed = ("error", f"embedding failed: {exc}")
        if failed is not None:
            ctx = with_features(ctx, embedding_failed=failed)
        else:
            ctx = with_features(ctx, embeddings=embedded)
    if failed is not None:
        return ctx, ScanIssue(scanner.name, failed[0], failed[1])
    if "outcomes" not in ctx.features:
        ctx = with_features(ctx, outcomes=record_outcomes(dataset))
    return ctx, None


def combine_data(
    dataset: TextDataset, results: Results, report: Report, *, min_votes: int = 2
) -> None:
    """Fuse per-record scores (maximum) and flags (mining, or ``min_votes`` representation
    scanners agreeing); findings and extras of every scanner."""
    n: int = _n_records(results, dataset)
    fused = np.zeros(n, dtype=np.float32)
    mined_flags = np.zeros(n, dtype=np.bool_)
    votes = np.zeros(n, dtype=np.int32)
    parts: dict[str, np.ndarray] = {}
    for name, res in results:
        report.findings.extend(res.findings)
        for k, v in res.extras.items():
            report.extras.setdefault(k, v)
        if res.record_scores is None:
            continue
        parts[name] = res.record_scores
        fused = np.maximum(fused, res.record_scores)
        if res.record_flags is not None:
            if name == MINING:
                mined_flags = mined_flags | res.record_flags.astype(np.bool_)
            else:
                votes += res.record_flags.astype(np.int32)
    rep_run = sum(1 for k, _ in results if k != MINING)
    need = min(min_votes, max(rep_run, 1))
    flagged = mined_flags | (votes >= need) if rep_run else mined_flags
    report.extras["threshold"] = float(fused[flagged].min()) if flagged.any() else 1.0
    ids = _ids(dataset)
    keys = sorted(parts)
    report.records = [
        RecordScore(
            record_id=ids[i],
            score=float(fused[i]),
            flagged=bool(flagged[i]),
            parts=tuple((k, float(parts[k][i])) for k in keys),
        )
        for i in range(n)
    ]


register_family(
    Family(kinds=("labelled", "instruction"), combine=combine_data, prepare=prepare_data)
)


def _n_records(results: Results, dataset: TextDataset) -> int:
    for _, res in results:
        if res.record_scores is not None:
            return len(res.record_scores)
    return sum(len(b) for b in dataset.batches())


def _ids(dataset: TextDataset) -> list[str]:
    ids: list[str] = []
    for batch in dataset.batches():
        ids.extend(batch.ids)
    return ids
