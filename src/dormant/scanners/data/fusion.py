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
from typing import Any

import numpy as np

from ...errors import ConfigError, DormantError, InputError, MissingDependencyError
from ...report import RecordScore, Report, ScanIssue
from ...subjects.dataset import TextDataset
from ..base import REGISTRY, ScanContext, ScanResult
from ..catalog import _load_builtin
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
        _run_representation(dataset, rep_names, encoder_path, ctx, report, results, embeddings)

    n: int = _n_records(results, dataset)
    fused = np.zeros(n, dtype=np.float32)
    mined_flags = np.zeros(n, dtype=np.bool_)
    votes = np.zeros(n, dtype=np.int32)
    parts: dict[str, np.ndarray] = {}
    for name, res in results.items():
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
    rep_run = sum(1 for k in results if k != MINING)
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


def _n_records(results: dict[str, ScanResult], dataset: TextDataset) -> int:
    for res in results.values():
        if res.record_scores is not None:
            return len(res.record_scores)
    return sum(len(b) for b in dataset.batches())


def _ids(dataset: TextDataset) -> list[str]:
    ids: list[str] = []
    for batch in dataset.batches():
        ids.extend(batch.ids)
    return ids
