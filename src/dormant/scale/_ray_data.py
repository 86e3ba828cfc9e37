"""``dormant scan data --ray``: the data scan with its heavy passes on Ray Data.

Ray Data reads the dataset's files (``read_text`` for JSONL, ``read_parquet`` for Parquet, in
file order with ``preserve_order``), and the two passes that grow with the data run on the
cluster:

* **counting** (trigger mining's first pass): each block is counted by the miner's own
  :func:`~dormant.scanners.data._mining_features._count_batch` in a ``map_batches`` task; the
  partial tables come back in read order and merge by addition on the driver
  (:meth:`~dormant.scanners.data._mining_features._Partial.merge`), so the tables are those of
  the single-process scan.
* **embedding**: ``map_batches`` on an actor pool, one encoder per actor (a GPU per actor when
  the cluster has GPUs), batches of the encoder's own chunk size (4,096 records) in read order.

The rest of the scan (candidate tests, the second mining pass, the representation scanners and
the fusion) is :func:`~dormant.scanners.data.fusion.scan_dataset` on the driver, given the
merged counts and the embeddings, so the report is the single-process report: the same
findings and the same flagged ids (a test asserts it). Two known limits of that equality: when
the feature table outgrows ``max_table`` the lossy-counting prunes fall at other batch
boundaries (every count stays within the ``count_error × N`` bound of Manku & Motwani, but
features near the bound may differ), and embeddings of datasets above 4,096 records may differ
in the last float bits when Ray's blocks cut the 4,096-record chunks elsewhere.

A record that is malformed makes the driver read the data once itself, so the error names the
file and line exactly as the single-process scan does.

References: Moritz et al., "Ray", OSDI 2018; Ray Data ``map_batches`` and actor pools
(docs.ray.io/en/latest/data); Manku & Motwani, VLDB 2002.
"""

from __future__ import annotations

import functools
import inspect
import json
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ConfigError, DataValidationError, InputError, ScanError
from ..report import Report
from ..scanners.base import ScanContext
from ..scanners.data._mining_count import lossy_prune
from ..scanners.data._mining_features import _count_batch, _Partial, _sum, _words_of
from ..scanners.data._mining_idcheck import IdHashLog
from ..scanners.data.mining import TriggerMiner
from ..subjects.dataset import TextDataset, normalise_label, stable_id_hashes
from ._ray import ray_session

RAY_FORMATS = ("jsonl", "parquet")
EMBED_CHUNK = 4096


def scan_dataset_ray(
    dataset: TextDataset,
    *,
    address: str | None = None,
    workers: int = 2,
    embed: bool = True,
    encoder_path: str | None = None,
    context: ScanContext | None = None,
    mining_params: dict[str, Any] | None = None,
    **scan_params: Any,
) -> Report:
    """Scan ``dataset`` with the counting and embedding passes on Ray (see the module docstring).

    Parameters
    ----------
    dataset:
        A JSONL or Parquet :class:`~dormant.subjects.TextDataset`.
    address:
        A running Ray cluster (``"auto"``, ``"ray://host:10001"``); ``None`` starts a local one
        with ``workers`` CPUs.
    workers:
        CPUs of a local cluster, and the size of the embedding actor pool.
    embed, encoder_path, context, mining_params, scan_params:
        As for :func:`~dormant.scanners.data.fusion.scan_dataset`.
    """
    from ..scanners.data.fusion import scan_dataset

    check_ray_input(dataset, workers)
    ctx = context or ScanContext()
    with ray_session(address, num_cpus=workers) as ray:
        data_ctx = ray.data.DataContext.get_current()
        data_ctx.execution_options.preserve_order = True
        data_ctx.enable_progress_bars = False
        # read once: both passes use the blocks, and embedding actors that hold every CPU
        # cannot starve a read task still waiting for one
        raw = _read(ray, dataset, workers).materialize()
        embeddings = None
        if embed:
            embeddings = _embed(ray, raw, dataset, encoder_path, workers, ctx)
        miner = RayCountedMiner(
            raw, **{"neighbour_test": embed, "encoder_path": encoder_path, **(mining_params or {})}
        )
        return scan_dataset(
            dataset,
            embed=embed,
            encoder_path=encoder_path,
            context=ctx,
            mining_params=mining_params,
            embeddings=embeddings,
            miner=miner,
            **scan_params,
        )


def ray_scan_function(*, address: str | None, workers: int) -> Callable[..., Report]:
    """:func:`scan_dataset_ray` with its cluster settings bound: a drop-in ``scan_dataset``."""
    return functools.partial(scan_dataset_ray, address=address, workers=workers)


def check_ray_input(dataset: TextDataset, workers: int) -> None:
    """Fail before any work: Ray missing, a format Ray Data does not read here, bad workers."""
    from ._ray import import_ray

    if dataset.format not in RAY_FORMATS or dataset.compression not in (None, "gzip"):
        what = (
            f"{dataset.compression}-compressed {dataset.format}"
            if dataset.compression
            else dataset.format
        )
        raise ConfigError(
            f"--ray reads JSONL (plain or gzip) and Parquet; {dataset.path} is {what}. "
            "Convert it, or scan without --ray."
        )
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--ray-workers must be an integer >= 1. Got {workers!r}.")
    import_ray()


def _read(ray: Any, dataset: TextDataset, workers: int) -> Any:
    """The dataset's files as a Ray Dataset, in read order.

    A file is one read task, so a dataset of fewer files than ``2 × workers`` is cut into that
    many blocks (``repartition`` without a shuffle keeps the order) for the map tasks to share.
    """
    paths = [str(f) for f in dataset.files()]
    if dataset.format == "parquet":
        raw = ray.data.read_parquet(paths, columns=dataset._columns())
    else:
        raw = ray.data.read_text(paths, drop_empty_lines=True)
    if len(paths) < 2 * workers:
        raw = raw.repartition(2 * workers)
    return raw


class _Rows:
    """Turn one Ray batch (a pyarrow table) into the dataset's columns, checking each record.

    Checks what :meth:`TextDataset.batches` checks; a bad record sets ``bad`` (the driver then
    reads the data itself to name the record) instead of raising inside a Ray task.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def columns(
        self, table: Any
    ) -> tuple[list[str], list[str] | None, list[str] | None, list[str]]:
        s = self.spec
        if s["format"] == "jsonl":
            rows = []
            for line in table.column("text").to_pylist():
                line = line.removeprefix("\ufeff")
                if line.strip():
                    obj = json.loads(line)
                    if not isinstance(obj, dict):
                        raise ValueError("not an object")
                    rows.append(obj)
            get = lambda f: [r.get(f) for r in rows]  # noqa: E731
        else:
            get = lambda f: table.column(f).to_pylist()  # noqa: E731
        maxc = s["max_chars"]
        texts = get(s["input"])
        for t in texts:
            if not isinstance(t, str) or len(t) > maxc:
                raise ValueError("bad text")
        labels = None
        if s["label"]:
            raw = get(s["label"])
            for v in raw:
                if v is None or isinstance(v, (dict, list)):
                    raise ValueError("bad label")
            labels = [normalise_label(v) for v in raw]
        responses = None
        if s["response"]:
            responses = get(s["response"])
            for v in responses:
                if not isinstance(v, str) or len(v) > maxc:
                    raise ValueError("bad response")
        ids: list[str] = []
        if s["id"]:
            raw_ids = get(s["id"])
            for v in raw_ids:
                if v is None or isinstance(v, (dict, list)):
                    raise ValueError("bad id")
            ids = [str(v) for v in raw_ids]
        return list(map(str, texts)), labels, list(map(str, responses)) if responses else None, ids


def _spec(dataset: TextDataset) -> dict[str, Any]:
    return {
        "format": dataset.format,
        "input": dataset.input_field,
        "label": dataset.label_field if dataset.kind == "labelled" else None,
        "response": dataset.response_field,
        "id": dataset.id_field,
        "max_chars": dataset.max_chars,
    }


def _count_block(table: Any, spec: dict[str, Any], max_n: int) -> dict[str, Any]:
    """A ``map_batches`` task: the block's partial counts and id hashes, pickled."""
    try:
        texts, labels, responses, ids = _Rows(spec).columns(table)
    except (ValueError, TypeError, KeyError):
        return {"part": [b""], "bad": [True]}
    part = _count_batch((texts, labels, responses, max_n))
    hashes = stable_id_hashes(ids) if ids else np.empty(0, dtype=np.uint64)
    return {"part": [pickle.dumps((part, hashes), protocol=5)], "bad": [False]}


class RayCountedMiner(TriggerMiner):
    """Trigger mining whose counting pass runs as Ray Data map tasks (see the module docstring).

    Everything but ``_count`` is :class:`~dormant.scanners.data.mining.TriggerMiner`'s. The
    partials are merged in read order with the miner's own merge and prune, so the tables equal
    those of the single-process pass.
    """

    def __init__(self, raw: Any = None, **params: Any) -> None:
        super().__init__(**params)
        self._raw = raw

    def get_params(self) -> dict[str, Any]:
        """The trigger-mining settings (those of :class:`TriggerMiner`)."""
        sig = inspect.signature(TriggerMiner.__init__)
        return {
            p: getattr(self, p)
            for p in sig.parameters
            if sig.parameters[p].kind is inspect.Parameter.KEYWORD_ONLY
        }

    def _count(self, subject: TextDataset, ctx: ScanContext) -> tuple[Any, ...]:
        labelled = subject.kind == "labelled"
        spec = _spec(subject)
        counted = self._raw.map_batches(
            _count_block,
            fn_kwargs={"spec": spec, "max_n": self.max_n},
            batch_format="pyarrow",
            batch_size=self.batch_size,
        )
        acc = _Partial()
        n = 0
        hashes = IdHashLog()  # bounded memory, as the single-process pass
        try:
            for row in counted.iter_rows():
                if row["bad"]:
                    _raise_precise(subject)
                part, h = pickle.loads(row["part"])  # our own workers' bytes, not scanned data
                acc.merge(part, labelled)
                n += part.n
                acc.n = n
                hashes.append(h)
                ctx.progress("count", part.n, None)
                lossy_prune(
                    acc,
                    labelled=labelled,
                    count_error=self.count_error,
                    max_table=self.max_table,
                )
        except (InputError, ConfigError):
            hashes.close()
            raise
        except Exception as exc:  # a Ray task failed: name the record if the data is the cause
            hashes.close()
            _check_here(subject)
            raise ScanError(f"the Ray counting pass failed: {type(exc).__name__}: {exc}") from None
        self.prunes_ = acc.prunes
        total = _sum(acc.per) if labelled else acc.total
        words_per = {o: _words_of(c, acc.skel_per.get(o)) for o, c in acc.per.items()}
        words_total = _words_of(total, acc.skel_total)
        return n, total, acc.per, acc.outcome_n, words_per, words_total, hashes


def _check_here(subject: TextDataset) -> None:
    """Read the data on the driver: a bad record raises the single-process scan's error."""
    for _ in subject.batches():
        pass


def _raise_precise(subject: TextDataset) -> None:
    """A worker found a bad record: raise the single-process scan's error for it."""
    _check_here(subject)
    raise DataValidationError(
        f"{subject.path}: a record could not be read by the Ray workers, yet reads here; "
        "check that every worker sees the same file."
    )


class _Embedder:
    """An actor of the embedding pool: loads the encoder once, embeds batches of records."""

    def __init__(self, spec: dict[str, Any], model_path: str | None, device: str) -> None:
        import torch

        from ..adapters.encoder import TextEncoder

        torch.set_num_threads(1)
        self.rows = _Rows(spec)
        self.encoder = TextEncoder(model_path=model_path, device=device)

    def __call__(self, table: Any) -> dict[str, Any]:
        texts = self.rows.columns(table)[0]
        return {"emb": self.encoder.encode(texts)}


def _embed(
    ray: Any,
    raw: Any,
    dataset: TextDataset,
    encoder_path: str | None,
    workers: int,
    ctx: ScanContext,
) -> np.ndarray:
    gpus = float(ray.cluster_resources().get("GPU", 0))
    out = raw.map_batches(
        _Embedder,
        fn_constructor_kwargs={
            "spec": _spec(dataset),
            "model_path": encoder_path,
            "device": "cuda" if gpus >= 1 else ctx.device,
        },
        batch_format="pyarrow",
        batch_size=EMBED_CHUNK,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_gpus=1 if gpus >= 1 else 0,
    )
    parts: list[np.ndarray] = []
    try:
        for b in out.iter_batches(batch_format="numpy", batch_size=None):
            parts.append(np.asarray(b["emb"], dtype=np.float32))
            ctx.progress("embed", len(parts[-1]), None)
    except Exception as exc:
        _check_here(dataset)
        raise ScanError(f"the Ray embedding pass failed: {type(exc).__name__}: {exc}") from None
    if not parts:
        return np.empty((0, 0), dtype=np.float32)
    return np.concatenate(parts)
