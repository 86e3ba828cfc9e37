"""Scan a fleet of models: one task per model, results in the registry and one fleet report.

Each model of a manifest (:mod:`dormant.scale.manifest`) is one task, run in a local process
pool or as a Ray task (``ray_address``): the task checks the artifact's serialization
(:class:`~dormant.provenance.artifact.ArtifactScanner`; a model whose files would run code on
load is refused, never loaded) and runs the model scan
(:func:`~dormant.scanners.model.run.scan_model`) with the model's clean data. The driver writes
each model's reports and then its ``result.json`` into ``OUT/models/<name>/`` (each file
atomically, ``result.json`` last, so a present ``result.json`` means a finished model), records
both reports, the artifact and its provenance status in the registry (one writer: the driver), and
writes ``fleet.json`` and ``fleet.html`` when every model is done. A model that fails is a row
with its error, never a failed fleet. With ``resume=True`` models that already have a
``result.json`` for the same model and data paths are not scanned again (a model whose scan
failed is tried again).

Scheduling is an existing engine's, not a home-made one: a spawned
:class:`multiprocessing.pool.Pool` (one model per task, terminated on an interrupt) locally, Ray
tasks (``num_cpus=1`` each) on a cluster (Moritz et al., "Ray: A Distributed Framework for
Emerging AI Applications", OSDI 2018).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, DormantError
from ..findings import Severity
from ._fleet_records import FleetReport, FleetRow, FleetSettings
from .manifest import ModelEntry

if TYPE_CHECKING:
    from ..registry import Registry

#: ``progress(stage, advance, total)`` as elsewhere; the stage here is ``"models"``.
ProgressFn = Callable[[str, int, int | None], None]


# ---------------------------------------------------------------------- the task (a worker)


def scan_one(entry: ModelEntry, settings: FleetSettings) -> dict[str, Any]:
    """Scan one model; never raises for a problem of the model or its data.

    Runs in a worker process or a Ray task. Returns plain data (``row``, and the ``report`` and
    ``artifact`` reports as dicts when they were made) so that it crosses process boundaries.
    """
    t0 = time.perf_counter()
    row: dict[str, Any] = {
        "name": entry.name,
        "model": entry.model,
        "data": entry.data,
        "status": "error",
    }
    out: dict[str, Any] = {"row": row, "report": None, "artifact": None}
    try:
        _limit_threads(settings.threads)
        _scan_into(entry, settings, row, out)
    except DormantError as exc:
        row["error"] = str(exc)
    except Exception as exc:  # one model's defect is its row, not the fleet's crash
        row["error"] = f"internal error ({type(exc).__name__}: {exc})"
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def _scan_into(
    entry: ModelEntry, settings: FleetSettings, row: dict[str, Any], out: dict[str, Any]
) -> None:
    from ..provenance.artifact import ArtifactScanner
    from ..scanners.base import ScanContext
    from ..scanners.model.run import scan_model
    from ..subjects.dataset import TextDataset
    from ..subjects.model import load_classifier, load_clean_data

    if not Path(entry.model).exists():
        raise ConfigError(f"model not found: {entry.model} (no such file or directory)")
    art = ArtifactScanner().scan_path(entry.model)
    out["artifact"] = art.to_dict()
    row["model_digest"] = art.subject.digest
    unsafe = [f for f in art.findings if f.category == "unsafe-serialization"]
    row["unsafe_findings"] = len(unsafe)
    sev = art.max_severity()
    row["artifact_max_severity"] = sev.value if sev else None
    if any(f.severity >= Severity.HIGH for f in unsafe):
        row["status"] = "refused"
        row["error"] = (
            f"not loaded: {len(unsafe)} unsafe-serialization finding(s), e.g. "
            f"{unsafe[0].title!r} (see artifact.json)"
        )
        return
    model = load_classifier(entry.model, device=settings.device)
    ds = TextDataset(entry.data, text_field=entry.text_field, label_field=entry.label_field)
    model.clean = load_clean_data(ds, model)
    ctx = ScanContext(
        seed=settings.seed, device=settings.device, budget_seconds=settings.budget_seconds
    )
    report = scan_model(
        model,
        method=settings.method,
        context=ctx,
        whitebox_params={
            "trigger_len": settings.trigger_len,
            "steps": settings.steps,
            "optimizer": settings.optimizer,
            "top_k": settings.top_k,
        },
    )
    out["report"] = report.to_dict()
    verdict = report.extras.get("model_verdict") or {}
    replay = report.extras.get("replay") or {}
    if report.errors and not verdict:
        row["error"] = "; ".join(f"{i.scanner}: {i.message}" for i in report.errors)
        return
    row["status"] = "ok"
    row["probability"] = float(verdict.get("probability", 0.0))
    row["backdoored"] = bool(verdict.get("backdoored", False))
    row["capped"] = bool(verdict.get("capped", False))
    if row["backdoored"]:
        row["trigger"] = replay.get("trigger")
        row["target"] = replay.get("target")
        if replay.get("flip_rate") is not None:
            row["flip_rate"] = float(replay["flip_rate"])
    if report.errors:
        row["error"] = "partial: " + "; ".join(f"{i.scanner}: {i.message}" for i in report.errors)


def _limit_threads(n: int) -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(max(1, n))


# ---------------------------------------------------------------------- the driver


def scan_fleet(
    entries: Sequence[ModelEntry],
    out: str | os.PathLike[str],
    *,
    settings: FleetSettings | None = None,
    jobs: int = 1,
    ray_address: str | None = None,
    use_ray: bool = False,
    registry: Registry | None = None,
    resume: bool = False,
    manifest: str = "",
    progress: ProgressFn | None = None,
) -> FleetReport:
    """Scan every model of ``entries``; write per-model results and the fleet report in ``out``.

    Parameters
    ----------
    entries:
        The models (:func:`~dormant.scale.manifest.read_manifest`).
    out:
        Output folder: ``models/<name>/{report,artifact,result}.json``, ``fleet.json``,
        ``fleet.html``.
    settings:
        The model-scan settings shared by every model.
    jobs:
        Worker processes (local pool), or the most Ray tasks in flight (``use_ray``).
    ray_address, use_ray:
        Run the tasks on Ray: ``ray_address`` of a running cluster (``"auto"`` finds one), or
        ``None`` for a local one started here with ``jobs`` CPUs.
    registry:
        Record each model's artifact, provenance status and reports here (optional).
    resume:
        Skip models whose ``result.json`` is already in ``out`` for the same model and data
        (scanned or refused; a failed one is scanned again).
    manifest:
        The manifest's path, for the report.
    progress:
        ``progress("models", 1, total)`` after each model.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"The 'jobs' parameter (--jobs) must be an int >= 1. Got {jobs!r}.")
    settings = settings or FleetSettings()
    root = Path(out)
    (root / "models").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows: dict[str, FleetRow] = {}
    todo: list[ModelEntry] = []
    for e in entries:
        done = _finished(root, e) if resume else None
        if done is not None:
            rows[e.slug] = done
        else:
            todo.append(e)
    total = len(entries)
    tick = progress or (lambda stage, n, t: None)
    if rows:
        tick("models", len(rows), total)
    runner = _ray_results if use_ray else _pool_results
    engine = "ray" if use_ray else "process-pool"
    for entry, result in runner(todo, settings, jobs, ray_address):
        rows[entry.slug] = _record(root, entry, result, registry)
        tick("models", 1, total)
    report = FleetReport(
        rows=tuple(rows[e.slug] for e in entries),
        manifest=manifest,
        engine=engine,
        workers=jobs,
        seconds=time.perf_counter() - t0,
        settings=settings,
    )
    from ._fleet_html import render_fleet_html

    _atomic_write(root / "fleet.json", json.dumps(report.to_dict(), indent=2) + "\n")
    _atomic_write(root / "fleet.html", render_fleet_html(report))
    return report


def _pool_results(
    todo: list[ModelEntry], settings: FleetSettings, jobs: int, address: str | None
) -> Iterator[tuple[ModelEntry, dict[str, Any]]]:
    if not todo:
        return
    if jobs == 1:
        for e in todo:
            yield e, scan_one(e, settings)
        return
    import multiprocessing as mp

    # spawned, not forked: a forked copy of a process that already holds torch threads can hang
    pool = mp.get_context("spawn").Pool(min(jobs, len(todo)))
    try:
        yield from pool.imap_unordered(_scan_pair, [(e, settings) for e in todo])
    finally:  # an interrupt stops the running scans instead of waiting for them
        pool.terminate()
        pool.join()


def _scan_pair(job: tuple[ModelEntry, FleetSettings]) -> tuple[ModelEntry, dict[str, Any]]:
    return job[0], scan_one(*job)


def _ray_results(
    todo: list[ModelEntry], settings: FleetSettings, jobs: int, address: str | None
) -> Iterator[tuple[ModelEntry, dict[str, Any]]]:
    from ._ray import ray_session

    if not todo:
        return
    with ray_session(address, num_cpus=jobs) as ray:
        task = ray.remote(num_cpus=1, max_retries=1)(scan_one)
        pending: dict[Any, ModelEntry] = {}
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < jobs:
                e = queue.pop(0)
                pending[task.remote(e, settings)] = e
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                e = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # a worker that died: the model's row, not a crash
                    result = {
                        "row": {
                            "name": e.name,
                            "model": e.model,
                            "data": e.data,
                            "status": "error",
                            "error": f"the Ray task failed: {type(exc).__name__}: {exc}",
                        },
                        "report": None,
                        "artifact": None,
                    }
                yield e, result


def _record(
    root: Path, entry: ModelEntry, result: dict[str, Any], registry: Registry | None
) -> FleetRow:
    row = dict(result["row"])
    folder = root / "models" / entry.slug
    folder.mkdir(parents=True, exist_ok=True)
    for key in ("artifact", "report"):
        if result.get(key) is not None:
            _atomic_write(folder / f"{key}.json", json.dumps(result[key], indent=2) + "\n")
    if registry is not None and row.get("model_digest"):
        try:
            digest = row["model_digest"]
            registry.record_artifact(digest, entry.model, "model")
            row["provenance"] = registry.provenance_status(digest).status
            for key in ("artifact", "report"):
                if result.get(key) is not None:
                    registry.record_scan(result[key])
        except DormantError as exc:
            row["error"] = (row.get("error") or "") + f" registry: {exc}"
    fr = FleetRow.from_dict(row)
    _atomic_write(folder / "result.json", json.dumps(fr.to_dict(), indent=2) + "\n")
    return fr


def _finished(root: Path, entry: ModelEntry) -> FleetRow | None:
    """The row of an earlier run for this model and data, or ``None`` (scan it again)."""
    f = root / "models" / entry.slug / "result.json"
    try:
        row = FleetRow.from_dict(json.loads(f.read_text("utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    if row.model != entry.model or row.data != entry.data or row.status == "error":
        return None  # another model or data under this name, or a failure worth a new try
    return FleetRow.from_dict({**row.to_dict(), "resumed": True})


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
