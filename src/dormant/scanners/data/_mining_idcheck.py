"""The duplicate-id check of trigger mining in bounded memory (see :mod:`.mining`).

Every record's id is hashed during the counting pass (64-bit BLAKE2b,
:func:`~dormant.subjects.dataset.stable_id_hashes`) and the hashes that occur twice are
looked for at the end. Held as one array, that is 8 bytes a record (80 MB at 10^7 records)
and, while the array is concatenated and sorted, three times that: the one part of the
counting pass that grew with the data. :class:`IdHashLog` keeps up to ``memory_hashes``
hashes in memory; past that, it hash-partitions them on their top bits into
:data:`N_BUCKETS` files of a temporary folder (under ``TMPDIR``: 8 bytes a record on disk)
and checks one bucket at a time — the
partitioning phase of the GRACE hash join (Kitsuregawa, Tanaka & Moto-oka, "Application of
Hash to Data Base Machine and Its Architecture", New Generation Computing 1, 1983) applied
to a self-join on the hash. Two equal hashes always fall in the same bucket, and buckets
are read in the order of their top bits, so :meth:`IdHashLog.duplicates` returns exactly
what one sort of all the hashes gives (:func:`~dormant.subjects.dataset.find_duplicate_ids`:
sorted, distinct), with at most ``memory_hashes`` plus one bucket in memory.

Why not a library: an embedded database (DuckDB, SQLite) would do the same ``GROUP BY`` with
spilling but is a large dependency for ~60 lines of NumPy, and a Bloom or cuckoo filter is
approximate (a false duplicate would refuse a valid dataset).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from ...subjects.dataset import find_duplicate_ids

#: hash buckets once the hashes are spilled (top 8 bits): 10^8 records give ~3 MB a bucket
N_BUCKETS = 256
_SHIFT = np.uint64(64 - 8)
#: hashes held in memory before the first spill (8 MB)
MEMORY_HASHES = 1 << 20


class IdHashLog:
    """Record-id hashes of one pass, checked for duplicates in bounded memory.

    Parameters
    ----------
    memory_hashes:
        How many hashes to hold in memory (default :data:`MEMORY_HASHES`); past it they go
        to bucket files in a temporary folder (removed by :meth:`close`, which
        :meth:`duplicates` calls).
    """

    def __init__(self, *, memory_hashes: int | None = None) -> None:
        self.memory_hashes = MEMORY_HASHES if memory_hashes is None else memory_hashes
        self._held: list[np.ndarray] = []
        self._n_held = 0
        self._dir: Path | None = None
        self.spills_ = 0

    def append(self, hashes: np.ndarray) -> None:
        """Add one batch's hashes (``uint64``)."""
        self._held.append(hashes)
        self._n_held += len(hashes)
        if self._n_held > self.memory_hashes:
            self._spill()

    def _spill(self) -> None:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="dormant-ids-"))
        allh = np.concatenate(self._held)
        self._held, self._n_held = [], 0
        top = (allh >> _SHIFT).astype(np.intp)
        order = np.argsort(top, kind="stable")
        allh, top = allh[order], top[order]
        bounds = np.searchsorted(top, np.arange(N_BUCKETS + 1))
        for b in np.flatnonzero(np.diff(bounds)).tolist():
            with open(self._dir / f"{b:03d}.u64", "ab") as fh:
                allh[bounds[b] : bounds[b + 1]].tofile(fh)
        self.spills_ += 1

    def duplicates(self) -> np.ndarray:
        """The hashes that occur more than once, sorted and distinct (``uint64``)."""
        try:
            if self._dir is None:
                return find_duplicate_ids(self._held)
            if self._held:
                self._spill()
            found = [
                find_duplicate_ids([np.fromfile(self._dir / f"{b:03d}.u64", dtype=np.uint64)])
                for b in range(N_BUCKETS)
                if (self._dir / f"{b:03d}.u64").exists()
            ]
            return np.concatenate(found) if found else np.empty(0, dtype=np.uint64)
        finally:
            self.close()

    def close(self) -> None:
        """Drop the hashes and remove the bucket files."""
        self._held, self._n_held = [], 0
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
