"""The data scan: run the data scanners on a dataset and fuse them into one Report.

``scan_dataset`` runs trigger mining (always), then — when an encoder is available — embeds the
records once and runs the representation scanners (spectral signatures, activation clustering,
SPECTRE) on the same embeddings. Per-record scores are fused by taking the maximum over
scanners (each score is in [0, 1], higher = more suspicious). A record is **flagged** when
trigger mining flags it (a planted trigger with strong evidence), or when at least
``min_votes`` representation scanners flag it inside a class their own attacked-class test
selected — a vote that keeps one noisy geometric method from flooding the quarantine.

A scanner that fails becomes an ``error`` entry of the report and the scan goes on; one whose
requirements are missing becomes a ``skip`` entry with the reason. The report is marked
``partial`` when any scanner failed.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from ..base import REGISTRY, ScanContext, ScanResult
from ..catalog import _load_builtin
from ._mining_features import _outcomes_of
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
    results: dict[str, ScanResult] = {}
    if MINING in names:
        # --no-embed also turns off the miner's natural-neighbour test (it embeds records)
        params = {"neighbour_test": embed, "encoder_path": encoder_path, **(mining_params or {})}
        miner = miner or REGISTRY[MINING](**params)
        # input errors (malformed data, one class, duplicate ids) stop the scan: re-raised
        results[MINING] = miner.scan(dataset, context=ctx)
    rep_names = [n for n in names if n in REPRESENTATION_SCANNERS]
    if rep_names and not embed:
        for name in rep_names:
            report.issues.append(ScanIssue(name, "skip", "embedding disabled (--no-embed)"))
    elif rep_names:
        _run_representation(
            dataset, rep_names, encoder_path, ctx, report, results, embeddings, work
        )

    for res in results.values():
        report.findings.extend(res.findings)
        for k, v in res.extras.items():
            report.extras.setdefault(k, v)
    _fuse(dataset, results, min_votes, report, work)
    if work is not None:
        for note in work.notes:
            report.issues.append(ScanIssue("input", "warning", note))
    report.partial = bool(report.errors)
    return report.finish()


def _run_representation(
    dataset: TextDataset,
    names: list[str],
    encoder_path: str | None,
    ctx: ScanContext,
    report: Report,
    results: dict[str, ScanResult],
    embeddings: np.ndarray | None = None,
    work: ScanWork | None = None,
) -> None:
    available = [n for n in names if n in REGISTRY]
    for n in names:
        if n not in REGISTRY:
            report.issues.append(ScanIssue(n, "skip", "scanner not available in this install"))
    names = available
    if not names:
        return
    try:
        from ...adapters.encoder import TextEncoder

        if embeddings is None:
            encoder = TextEncoder(model_path=encoder_path, device=ctx.device)
            if work is not None:
                embeddings = work.embed(encoder, dataset, ctx, n_records=_n_records(results, None))
            else:
                embeddings = encoder.embed_dataset(dataset, context=ctx)
    except MissingDependencyError as exc:
        for n in names:
            report.issues.append(ScanIssue(n, "skip", str(exc)))
        return
    except InputError:
        raise
    except (DormantError, RuntimeError, OSError, ValueError) as exc:
        for n in names:
            report.issues.append(ScanIssue(n, "error", f"embedding failed: {exc}"))
        return
    outcomes = record_outcomes(dataset)
    for n in names:
        cls = REGISTRY[n]
        try:
            res = cls().scan(dataset, context=ctx, embeddings=embeddings, outcomes=outcomes)  # type: ignore[call-arg]
        except InputError:
            raise
        except Exception as exc:  # a failing scanner becomes an error record, never a crash
            report.issues.append(ScanIssue(n, "error", f"{type(exc).__name__}: {exc}"))
            continue
        results[n] = res


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
