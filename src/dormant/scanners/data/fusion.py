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
from typing import Any, cast

import numpy as np

from ...errors import (
    ConfigError,
    DataValidationError,
    DormantError,
    InputError,
    MissingDependencyError,
)
from ...report import RecordScore, Report, ScanIssue
from ...subjects.dataset import TextDataset
from .._runner import Family, Results, register_family, run_scanners, with_features
from ..base import REGISTRY, ScanContext, Scanner, ScanResult
from ..catalog import _load_builtin
from ._mining_features import _outcomes_of
from ._record_arrays import release
from ._record_shards import RecordShardWriter
from ._scan_work import ScanWork

REPRESENTATION_SCANNERS = ("spectral-signature", "activation-clustering", "spectre")
MINING = "trigger-mining"


def record_outcomes(dataset: TextDataset, *, batch_size: int = 8192) -> list[str]:
    """One outcome string per record: ``label:X``, or the sorted behaviour tags of a response."""
    out: list[str] = []
    seen: dict[str, str] = {}  # one string object per distinct outcome, not one per record
    for batch in dataset.batches(batch_size):
        joined = ("+".join(tags) for tags in _outcomes_of(batch.labels, batch.responses))
        out.extend(seen.setdefault(o, o) for o in joined)
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
    work: ScanWork | None = None,
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
    work:
        A working directory (:class:`._scan_work.ScanWork`): the embeddings are written there
        as a memory-mapped matrix batch by batch (and read back when resuming), and the
        per-record scores are streamed there as shards; ``report.records`` then reads them from
        disk. Without it both are held in memory.
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
    if work is not None:
        features["work"] = work
    return run_scanners(
        dataset,
        run,
        context=with_features(ctx, **features),
        report=report,
        combine=partial(combine_data, min_votes=min_votes, work=work),
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
            work = ctx.features.get("work")
            if work is not None:
                embedded = work.embed(encoder, dataset, ctx)
            else:
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
    dataset: TextDataset,
    results: Results,
    report: Report,
    *,
    min_votes: int = 2,
    work: ScanWork | None = None,
) -> None:
    """Fuse per-record scores (maximum) and flags (mining, or ``min_votes`` representation
    scanners agreeing) batch by batch into ``report.records``; findings and extras of every
    scanner.

    With ``work`` each batch is written as a shard (:mod:`._record_shards`) and the report
    reads them back; without it the records are a list.
    """
    for _, res in results:
        report.findings.extend(res.findings)
        for k, v in res.extras.items():
            report.extras.setdefault(k, v)
    _fuse(dataset, dict(results), min_votes, report, work)
    if work is not None:
        for note in work.notes:
            report.issues.append(ScanIssue("input", "warning", note))


register_family(
    Family(kinds=("labelled", "instruction"), combine=combine_data, prepare=prepare_data)
)


def _n_records(results: dict[str, ScanResult], dataset: TextDataset | None) -> int | None:
    for res in results.values():
        if res.record_scores is not None:
            return len(res.record_scores)
    return None if dataset is None else sum(len(b) for b in dataset.batches())


def _fuse(
    dataset: TextDataset,
    results: dict[str, ScanResult],
    min_votes: int,
    report: Report,
    work: ScanWork | None,
) -> None:
    """Fuse the scanners' per-record scores batch by batch into ``report.records``.

    With ``work`` each batch is written as a shard (:mod:`._record_shards`) and the report
    reads them back; without it the records are a list.
    """
    n = _n_records(results, dataset)
    parts = {k: r.record_scores for k, r in sorted(results.items()) if r.record_scores is not None}
    keys = sorted(parts)
    rep_run = sum(1 for k in results if k != MINING)
    need = min(min_votes, max(rep_run, 1))
    sink = RecordShardWriter(work.records_dir, keys) if work is not None else None
    records: list[RecordScore] = []
    threshold = np.float32(np.inf)
    row = 0
    for batch in dataset.batches():
        sl = slice(row, row + len(batch))
        fused = np.zeros(len(batch), dtype=np.float32)
        mined_flags = np.zeros(len(batch), dtype=np.bool_)
        votes = np.zeros(len(batch), dtype=np.int32)
        cols = {k: np.asarray(v[sl]) for k, v in parts.items()}
        for name, res in results.items():
            if res.record_scores is None:
                continue
            fused = np.maximum(fused, cols[name])
            if res.record_flags is not None:
                f = np.asarray(res.record_flags[sl]).astype(np.bool_)
                if name == MINING:
                    mined_flags = mined_flags | f
                else:
                    votes += f.astype(np.int32)
        flagged = mined_flags | (votes >= need) if rep_run else mined_flags
        if flagged.any():
            threshold = min(threshold, fused[flagged].min())
        for res in results.values():  # their mapped pages are not needed again
            for arr in (res.record_scores, res.record_flags):
                if arr is not None:
                    release(arr, row, row + len(batch))
        if sink is not None:
            sink.write(batch.ids, fused, flagged, cols)
        else:
            records.extend(
                RecordScore(
                    record_id=rid,
                    score=float(fused[i]),
                    flagged=bool(flagged[i]),
                    parts=tuple((k, float(cols[k][i])) for k in keys),
                )
                for i, rid in enumerate(batch.ids)
            )
        row += len(batch)
    if n is not None and row != n:
        raise DataValidationError(
            f"{dataset.path}: the dataset changed while it was scanned ({n} records in the "
            f"first pass, {row} now); scan a copy that does not change."
        )
    report.extras["threshold"] = float(threshold) if np.isfinite(threshold) else 1.0
    # a data scan's records on disk: a read-only sequence standing in for the list
    report.records = cast(list[RecordScore], sink.close()) if sink is not None else records
