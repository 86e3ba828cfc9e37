"""How often each normalised text occurs per outcome, in bounded memory (clean-label test).

The clean-label test (:mod:`._mining_cleanlabel`) asks, for a few thousand sampled records,
whether their (blinded) text occurs once or more, or twice or more, among all the records of a
target outcome. It used to keep a ``Counter`` of ``(text hash, outcome)`` over every record:
about 100 bytes per distinct text, so a dataset of 10^7 distinct texts held a gigabyte.

:class:`HashCounts` gives the same answers with a bounded amount of memory. Each record's
64-bit text hash is appended under its outcome; every ``memory_hashes`` entries the pending
hashes are merged into per-outcome sorted arrays of distinct hashes with their counts capped
at :data:`CAP` (only "at least once" and "at least twice" are asked, so a cap of 2 answers
both). Once the merged arrays themselves pass ``memory_hashes`` entries they are
hash-partitioned on their top bits into :data:`N_BUCKETS` files of a temporary folder and each
bucket is counted on its own when the counts are asked for — the treatment of the duplicate-id
check (:mod:`._mining_idcheck`: the partitioning phase of the GRACE hash join, Kitsuregawa,
Tanaka & Moto-oka, 1983). Equal hashes always fall in the same bucket, so the counts are
exactly those of one ``Counter`` over all records (capped).

Why not a library: as for the id check, an embedded database would do this ``GROUP BY`` with
spilling but is a large dependency for ~100 lines of NumPy, and a counting Bloom filter or
count-min sketch over-counts (a text seen once could read as seen twice, changing the test).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

#: counts are capped here: the test only asks for "> 0" and "> 1"
CAP = 2
#: hash buckets once spilled (top 8 bits)
N_BUCKETS = 256
_SHIFT = np.uint64(64 - 8)
#: entries held in memory (pending, and merged) before the merged counts go to files: 2 MB of
#: pending hashes; the merge peaks at ~20 MB (bench_text_counts.py)
MEMORY_HASHES = 1 << 18
_ENTRY = np.dtype([("h", "<u8"), ("c", "u1")])


def _merge(hashes: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``hashes``, sorted, with their ``counts`` summed and capped at :data:`CAP`
    (one sort order and a segmented sum: ~21 bytes an entry at peak, where ``np.unique``
    with its inverse takes about twice that)."""
    if not len(hashes):
        return hashes.astype(np.uint64), counts.astype(np.uint8)
    order = np.argsort(hashes)
    h = hashes[order]
    c = counts[order].astype(np.uint32)
    del order
    starts = np.flatnonzero(np.concatenate(([True], h[1:] != h[:-1])))
    total = np.add.reduceat(c, starts)
    return h[starts], np.minimum(total, CAP).astype(np.uint8)


class HashCounts:
    """Counts of 64-bit text hashes per outcome, capped at :data:`CAP`, in bounded memory.

    Parameters
    ----------
    memory_hashes:
        Entries held in memory (default :data:`MEMORY_HASHES`); past it the counts go to
        bucket files in a temporary folder, removed by :meth:`close`.
    """

    def __init__(self, *, memory_hashes: int | None = None) -> None:
        self.memory_hashes = MEMORY_HASHES if memory_hashes is None else memory_hashes
        self._pending: dict[str, list[np.ndarray]] = {}
        self._n_pending = 0
        self._merged: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._dir: Path | None = None
        self._folders: dict[str, Path] = {}
        self.spills_ = 0

    def add(self, outcome: str, hashes: np.ndarray) -> None:
        """Count each of ``hashes`` (``uint64``, repeats allowed) once more under ``outcome``."""
        if not len(hashes):
            return
        self._pending.setdefault(outcome, []).append(np.asarray(hashes, dtype=np.uint64))
        self._n_pending += len(hashes)
        if self._n_pending > self.memory_hashes:
            self._compact()

    def _compact(self) -> None:
        for outcome, parts in self._pending.items():
            old_h, old_c = self._merged.get(
                outcome, (np.empty(0, np.uint64), np.empty(0, np.uint8))
            )
            new = np.concatenate(parts)
            self._merged[outcome] = _merge(
                np.concatenate([old_h, new]),
                np.concatenate([old_c, np.ones(len(new), dtype=np.uint8)]),
            )
        self._pending, self._n_pending = {}, 0
        if sum(len(h) for h, _c in self._merged.values()) > self.memory_hashes:
            self._spill()

    def _spill(self) -> None:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="dormant-texts-"))
        for outcome, (h, c) in self._merged.items():
            folder = self._folders.get(outcome)
            if folder is None:
                folder = self._folders[outcome] = self._dir / f"{len(self._folders):04d}"
                folder.mkdir()
            entries = np.empty(len(h), dtype=_ENTRY)
            entries["h"], entries["c"] = h, c
            bounds = np.searchsorted(h >> _SHIFT, np.arange(N_BUCKETS + 1, dtype=np.uint64))
            for b in np.flatnonzero(np.diff(bounds)).tolist():
                with open(folder / f"{b:03d}.bin", "ab") as fh:
                    entries[bounds[b] : bounds[b + 1]].tofile(fh)
        self._merged = {}
        self.spills_ += 1

    def finish(self) -> None:
        """End the adding: merge what is pending and, once spilled, count each bucket file
        (its distinct hashes, sorted, with capped counts, written back in place)."""
        self._compact()
        if self._dir is None:
            return
        if self._merged:
            self._spill()
        for folder in self._folders.values():
            for path in sorted(folder.iterdir()):
                e = np.fromfile(path, dtype=_ENTRY)
                h, c = _merge(e["h"], e["c"])
                out = np.empty(len(h), dtype=_ENTRY)
                out["h"], out["c"] = h, c
                out.tofile(path)

    def counts(self, outcome: str, hashes: np.ndarray) -> np.ndarray:
        """How often each of ``hashes`` was added under ``outcome``, capped at :data:`CAP`
        (``uint8``; 0 for a hash never added). Call :meth:`finish` first."""
        query = np.asarray(hashes, dtype=np.uint64)
        out = np.zeros(len(query), dtype=np.uint8)
        if self._dir is None:
            h, c = self._merged.get(outcome, (np.empty(0, np.uint64), np.empty(0, np.uint8)))
            return _lookup(h, c, query)
        folder = self._folders.get(outcome)
        if folder is None or not len(query):
            return out
        top = query >> _SHIFT
        for b in np.unique(top).tolist():
            path = folder / f"{b:03d}.bin"
            if not path.exists():
                continue
            at = np.flatnonzero(top == b)
            e = np.fromfile(path, dtype=_ENTRY)
            out[at] = _lookup(e["h"], e["c"], query[at])
        return out

    def close(self) -> None:
        """Drop the counts and remove the bucket files."""
        self._pending, self._merged, self._n_pending = {}, {}, 0
        self._folders = {}
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _lookup(h: np.ndarray, c: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The counts ``c`` of each of ``query`` in the sorted distinct ``h`` (0 if absent)."""
    if not len(h) or not len(query):
        return np.zeros(len(query), dtype=np.uint8)
    pos = np.searchsorted(h, query)
    pos[pos == len(h)] = 0
    return np.where(h[pos] == query, c[pos], 0).astype(np.uint8)


#: Record hashes a :class:`RepeatSample` keeps at most (512 KB); every record below it.
SAMPLE_HASHES = 1 << 16


class RepeatSample:
    """The share of all records whose normalised text is another record's too, from a sample
    of records chosen by their text hash, in bounded memory.

    A record is kept when the top ``level`` bits of its 64-bit text hash are zero; when more
    than ``budget`` records are kept the level rises by one and half of them (by hash) are
    dropped — Gibbons' distinct sampling (VLDB 2001). Every copy of a text has its hash, so a
    kept record's copies are all kept: the share of kept records whose hash occurs twice or
    more among them is an unbiased estimate of the data's share, exact while every record
    fits (``N <= budget``). Why not :class:`HashCounts` under one more key: that would hold
    (or spill) every record's hash to answer one rate.
    """

    def __init__(self, *, budget: int | None = None) -> None:
        self.budget = SAMPLE_HASHES if budget is None else budget
        self.level = 0
        self._parts: list[np.ndarray] = []
        self._n = 0

    def _keep(self, hashes: np.ndarray) -> np.ndarray:
        if self.level == 0:
            return hashes
        return hashes[(hashes >> np.uint64(64 - self.level)) == 0]

    def add(self, hashes: np.ndarray) -> None:
        """Count ``hashes`` (``uint64``, one a record)."""
        kept = self._keep(np.asarray(hashes, dtype=np.uint64))
        self._parts.append(kept)
        self._n += len(kept)
        while self._n > self.budget and self.level < 63:
            self.level += 1
            self._parts = [self._keep(np.concatenate(self._parts))]
            self._n = len(self._parts[0])

    def repeated_share(self) -> float:
        """Share of the sampled records whose text occurs at least twice (0 when none)."""
        if not self._n:
            return 0.0
        _h, counts = np.unique(np.concatenate(self._parts), return_counts=True)
        return float(counts[counts > 1].sum() / self._n)
