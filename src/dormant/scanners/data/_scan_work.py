"""A data scan's working directory: embeddings on disk, record shards, and resumption.

A long data scan keeps its per-record state in a working directory instead of memory:

- ``embeddings.npy`` — the record embeddings as a memory-mapped ``.npy`` (NumPy format 1.0,
  float32, one row per record in read order), filled batch by batch, so the matrix of
  ``n × 384`` floats is paged by the operating system rather than held;
- ``records/`` — the fused per-record scores as shards (:mod:`._record_shards`);
- ``units.jsonl`` — the manifest of finished units: one line per embedded batch with its first
  row, its row count and the SHA-256 of its content (every id and text of the batch), appended
  only after the batch's rows are flushed to ``embeddings.npy``;
- ``run.json`` — what the embeddings depend on besides the data (the encoder's digest and
  settings, the number of records, the width).

**Resuming** (``resume=True``, ``dormant scan data --resume``): a scan killed mid-way (Ctrl-C,
SIGKILL, a lost machine) is run again with the same arguments; every batch whose manifest line
is present *and* whose content hash still matches is read back from ``embeddings.npy`` instead
of being embedded again; any other batch is embedded. A manifest made with another encoder or
for a different number of records is discarded (the scan starts afresh and says so). A torn
last manifest line (killed while writing it) is ignored, so its batch is redone. Nothing in the
working directory looks like a finished output: the reports are written into the output
directory only at the end, atomically (:mod:`dormant.outputs`).

The unit is the embedding batch because embedding is where a default scan spends its time
(BENCHMARKS.md "Data scan at scale, on disk"). Trigger mining's counting pass keeps its own
checkpoints in ``count/`` (:mod:`._count_resume`): a resumed run counts only the blocks after
the last one saved.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError
from ...subjects.dataset import Batch, TextDataset
from ..base import ScanContext

_VERSION = 1


def work_dir_for(out_dir: str | os.PathLike[str]) -> Path:
    """The working directory of a scan writing into ``out_dir``: a hidden sibling of it."""
    out = Path(out_dir)
    return out.parent / f".{out.name}.work"


def batch_digest(batch: Batch) -> str:
    """SHA-256 over a batch's ids and texts (length-prefixed, so no two batches collide)."""
    h = hashlib.sha256()
    for rid, text in zip(batch.ids, batch.texts, strict=True):
        for s in (rid, text):
            b = s.encode("utf-8", "surrogatepass")
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)
    return h.hexdigest()


@dataclass
class ScanWork:
    """The working directory of one data scan (see the module docstring).

    Parameters
    ----------
    directory:
        Where the working files live; created when missing.
    resume:
        Reuse the finished units found there; when ``False`` any earlier content is removed.
    unit_size:
        Records per unit (an embedding batch): what a killed run loses at most.
    count_block:
        Records between two checkpoints of trigger mining's counting pass
        (:mod:`._count_resume`), rounded down to whole batches (at least one).
    """

    directory: Path
    resume: bool = False
    unit_size: int = 1024
    count_block: int = 1 << 18
    notes: list[str] = field(default_factory=list)
    resumed_units_: int = 0
    embedded_units_: int = 0

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        if not isinstance(self.unit_size, int) or self.unit_size < 1:
            raise ConfigError(f"unit_size must be a positive int. Got {self.unit_size!r}.")
        if not isinstance(self.count_block, int) or self.count_block < 1:
            raise ConfigError(f"count_block must be a positive int. Got {self.count_block!r}.")
        if self.directory.exists() and not self.directory.is_dir():
            raise ConfigError(
                f"The scan's working directory {self.directory} exists and is not a directory; "
                "remove it or choose another output directory (--out)."
            )
        if not self.resume:
            self.clear()
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def records_dir(self) -> Path:
        return self.directory / "records"

    def clear(self) -> None:
        """Remove everything in the working directory (it is rebuilt as the scan runs)."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def has_units(self) -> bool:
        """Whether a finished unit is on disk (something a ``--resume`` would reuse)."""
        path = self.directory / "units.jsonl"
        if (self.directory / "count" / "state.json").is_file():  # a counting checkpoint
            return True
        return path.is_file() and path.stat().st_size > 0

    # -- the manifest ------------------------------------------------------------------

    def _units(self) -> dict[int, tuple[int, int, str]]:
        done: dict[int, tuple[int, int, str]] = {}
        path = self.directory / "units.jsonl"
        if not path.is_file():
            return done
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    d = json.loads(line)
                    done[int(d["unit"])] = (int(d["start"]), int(d["rows"]), str(d["sha256"]))
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a kill: its batch is redone
        return done

    def _open_run(self, key: dict[str, Any]) -> bool:
        """Whether the finished units on disk belong to a run with ``key``; reset them if not."""
        run = self.directory / "run.json"
        if self.resume and run.is_file():
            try:
                same = json.loads(run.read_text("utf-8")) == key
            except ValueError:
                same = False
            if same:
                return True
            self.notes.append(
                "resume: the working files were made with another encoder, settings or "
                "number of records; started afresh"
            )
        elif self.resume:
            self.notes.append("resume: no earlier run found; started afresh")
        for name in ("units.jsonl", "embeddings.npy", "run.json"):
            (self.directory / name).unlink(missing_ok=True)
        tmp = run.with_suffix(".tmp")
        tmp.write_text(json.dumps(key, sort_keys=True), "utf-8")
        os.replace(tmp, run)
        return False

    # -- embeddings --------------------------------------------------------------------

    def embed(
        self,
        encoder: Any,
        dataset: TextDataset,
        context: ScanContext,
        *,
        n_records: int | None = None,
    ) -> np.ndarray:
        """Embed ``dataset`` into ``embeddings.npy`` batch by batch; returns the memory map.

        Parameters
        ----------
        encoder:
            A :class:`~dormant.adapters.TextEncoder`.
        dataset:
            The dataset (its batches are the units).
        context:
            Progress: ``context.progress("embed", n, None)`` per batch, resumed ones included.
        n_records:
            The number of records when already known (counted otherwise).
        """
        encoder.load()
        batch_size = self.unit_size
        n = n_records if n_records is not None else sum(len(b) for b in dataset.batches())
        dim = int(encoder.dim_)
        key = {
            "version": _VERSION,
            "model": encoder.model_digest(),
            "max_length": encoder.max_length,
            "pooling": encoder.pooling,
            "normalize": bool(encoder.normalize),
            "field": dataset.input_field,
            "records": n,
            "dim": dim,
            "batch_size": batch_size,
        }
        reuse = self._open_run(key)
        path = self.directory / "embeddings.npy"
        done = self._units() if reuse else {}
        matrix = _open_matrix(path, n, dim, existing=reuse and path.is_file())
        if matrix is None:  # unreadable or of another shape: start afresh
            done = {}
            (self.directory / "units.jsonl").unlink(missing_ok=True)
            matrix = _open_matrix(path, n, dim, existing=False)
            assert matrix is not None
        with open(self.directory / "units.jsonl", "a", encoding="utf-8") as manifest:
            for k, batch in _units(dataset, batch_size):
                digest = batch_digest(batch)
                m = len(batch)
                if batch.start + m > n:
                    raise ConfigError(
                        f"{dataset.path}: the dataset grew while it was scanned "
                        f"(more than {n} records); scan a copy that does not change."
                    )
                if done.get(k) == (batch.start, m, digest):
                    self.resumed_units_ += 1
                else:
                    matrix[batch.start : batch.start + m] = encoder.encode(batch.texts)
                    matrix.flush()
                    line = {"unit": k, "start": batch.start, "rows": m, "sha256": digest}
                    manifest.write(json.dumps(line) + "\n")
                    manifest.flush()
                    os.fsync(manifest.fileno())
                    self.embedded_units_ += 1
                context.progress("embed", m, None)
        if self.resumed_units_:
            self.notes.append(
                f"resume: {self.resumed_units_} of "
                f"{self.resumed_units_ + self.embedded_units_} embedding batches were read "
                "back from the interrupted run"
            )
        return matrix


def _units(dataset: TextDataset, batch_size: int) -> Iterator[tuple[int, Batch]]:
    yield from enumerate(dataset.batches(batch_size))


def _open_matrix(path: Path, n: int, dim: int, *, existing: bool) -> np.memmap | None:
    """The ``(n, dim)`` float32 memory map at ``path``; ``None`` when an existing one does not
    fit."""
    if existing:
        try:
            mm: np.memmap = np.lib.format.open_memmap(path, mode="r+")
        except (OSError, ValueError):
            return None
        if mm.shape != (n, dim) or mm.dtype != np.float32:
            return None
        return mm
    path.unlink(missing_ok=True)
    new: np.memmap = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    return new
