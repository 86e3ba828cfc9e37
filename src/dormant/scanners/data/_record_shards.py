"""Per-record scores streamed to disk: one JSON Lines shard per batch, read back lazily.

The fused data scan writes each batch's records (id, score, flag, per-scanner parts) as a shard
the moment the batch is fused, so a scan of 10⁷ records never holds 10⁷ :class:`RecordScore`
objects (about 300 bytes each) or the list of ids. :class:`DiskRecords` is the report's
``records`` for such a scan: a read-only sequence that reads the shards again each time it is
iterated, so the writers (summary counts, the score histogram, ``scores.jsonl``) work unchanged
at a batch of memory. ``scores.jsonl`` is then the shards' bytes concatenated, in order.

A shard line is exactly the line :meth:`RecordScore.to_dict` gives ``scores.jsonl``. Shards are
written into ``<dir>.partial/`` and the directory is renamed to ``<dir>`` only once every
batch is written, so an interrupted scan never leaves a shard set that looks complete.

Why not Parquet here: the final output is ``scores.jsonl``; JSON Lines shards make it a byte
copy, and reading them back needs only the standard library.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, overload

import numpy as np

from ...errors import DataFormatError
from ...report import RecordScore

_SHARD = "part-{:06d}.jsonl"


class RecordShardWriter:
    """Write fused per-record scores batch by batch into ``directory`` (see the module doc).

    Parameters
    ----------
    directory:
        Where the finished shards end up; an older shard set there is replaced on
        :meth:`close`.
    keys:
        Names of the per-scanner parts, in column order.
    """

    def __init__(self, directory: str | os.PathLike[str], keys: Sequence[str]) -> None:
        self.directory = Path(directory)
        self.keys = tuple(keys)
        self._tmp = self.directory.with_name(self.directory.name + ".partial")
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp.mkdir(parents=True)
        self._counts: list[int] = []

    def write(
        self,
        ids: Sequence[str],
        scores: np.ndarray,
        flags: np.ndarray,
        parts: dict[str, np.ndarray],
    ) -> None:
        """Write one batch: ``ids`` with its fused ``scores``, ``flags`` and ``parts``."""
        path = self._tmp / _SHARD.format(len(self._counts))
        cols = [(k, parts[k].tolist()) for k in self.keys]
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            for i, (rid, s, f) in enumerate(zip(ids, scores.tolist(), flags.tolist(), strict=True)):
                rec = {"id": rid, "score": round(s, 6), "flagged": bool(f)}
                for k, v in cols:
                    rec[f"score_{k}"] = round(v[i], 6)
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._counts.append(len(ids))

    def close(self) -> DiskRecords:
        """Move the finished shards into place and return them as a :class:`DiskRecords`."""
        (self._tmp / "index.json").write_text(
            json.dumps({"keys": list(self.keys), "rows": self._counts}), "utf-8"
        )
        shutil.rmtree(self.directory, ignore_errors=True)
        os.replace(self._tmp, self.directory)
        return DiskRecords(self.directory)


class DiskRecords(Sequence[RecordScore]):
    """The per-record scores of a scan, read from the shards of :class:`RecordShardWriter`.

    A read-only sequence of :class:`~dormant.report.RecordScore` in read order; iterating it
    reads the shards again (a batch in memory at a time).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        try:
            index = json.loads((self.directory / "index.json").read_text("utf-8"))
            self.keys: tuple[str, ...] = tuple(index["keys"])
            self._rows: list[int] = [int(r) for r in index["rows"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataFormatError(
                f"{self.directory} is not a finished set of record-score shards "
                f"({type(exc).__name__}: {exc}); expected index.json beside part-*.jsonl."
            ) from None
        self._n = sum(self._rows)

    def __len__(self) -> int:
        return self._n

    def shard_paths(self) -> list[Path]:
        """The shard files, in read order."""
        return [self.directory / _SHARD.format(i) for i in range(len(self._rows))]

    def __iter__(self) -> Iterator[RecordScore]:
        for path in self.shard_paths():
            yield from _read_shard(path, self.keys)

    @overload
    def __getitem__(self, index: int) -> RecordScore: ...

    @overload
    def __getitem__(self, index: slice) -> list[RecordScore]: ...

    def __getitem__(self, index: int | slice) -> RecordScore | list[RecordScore]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        i = index + self._n if index < 0 else index
        if not 0 <= i < self._n:
            raise IndexError(f"record index {index} out of range for {self._n} records")
        for k, rows in enumerate(self._rows):
            if i < rows:
                shard = _read_shard(self.directory / _SHARD.format(k), self.keys)
                return list(shard)[i]
            i -= rows
        raise IndexError(index)  # unreachable: the rows add up to _n

    def write_jsonl(self, fh: IO[str]) -> None:
        """Write every record as ``scores.jsonl`` lines into ``fh`` (a byte-for-byte copy)."""
        for path in self.shard_paths():
            with open(path, encoding="utf-8", newline="\n") as src:
                shutil.copyfileobj(src, fh, 1 << 20)


def _read_shard(path: Path, keys: tuple[str, ...]) -> Iterator[RecordScore]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            yield RecordScore(
                record_id=d["id"],
                score=d["score"],
                flagged=d["flagged"],
                parts=tuple((k, d[f"score_{k}"]) for k in keys),
            )
