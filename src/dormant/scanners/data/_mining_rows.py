"""Trigger mining's record rows as machine integers: collected, frozen and indexed compactly.

The second pass learns, for every candidate trigger, the rows (0-based record numbers) that
hold it; the grouping then asks, for each candidate, how many of its rows each earlier group
holds. Kept as Python lists, sets and a ``row -> [groups]`` dict these took ~36 bytes (a
list slot and an int) to ~100 bytes (a dict entry and its list) per row and candidate — most
of a 10^6-record scan's memory. Here they are 4-byte integers (8 past 2^31 rows):

- :class:`RowCollector` appends rows to one ``array.array`` per candidate during the pass and
  hands back read-only sorted numpy arrays;
- :func:`sorted_rows` is ``sorted(set(rows))`` as an array (the rows a pass collects are
  already sorted and distinct, so it is then a zero-copy view);
- :class:`OverlapIndex` answers "how many of these rows does each group hold" exactly, from
  sorted runs of ``(row, group)`` pairs merged by size (a log-structured merge: O(log G) runs,
  each probed by binary search; O'Neil et al., "The log-structured merge-tree", Acta
  Informatica 1996) instead of a dict of lists.

Why not a library: the data are a few arrays; numpy's ``searchsorted`` and stable sort are the
whole method, and a database index (sqlite) would cost a round trip per candidate.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._mining_runs import merge_runs, probe_counts

#: Rows of a candidate: a sorted numpy array after the second pass (lists are accepted too).
Rows = Any


def row_typecode(n: int) -> str:
    """``array`` typecode of a row number below ``n``: 4-byte ``i`` below 2^31, else ``q``."""
    return "i" if n < 2**31 else "q"


def _frozen(buf: array[int]) -> np.ndarray:
    out = np.frombuffer(buf, dtype=np.int32 if buf.typecode == "i" else np.int64)
    out.flags.writeable = False
    return out


#: (candidate, row) entries a :class:`RowCollector` holds in memory before it writes them to
#: its spill file (with a working directory): 16 MB of 4-byte rows.
SPILL_ENTRIES = 1 << 22


class RowCollector:
    """Rows of ``k`` candidates, appended in increasing row order during one pass.

    With a working directory (``work``) the buffers are bounded: once they hold
    :data:`SPILL_ENTRIES` entries, :meth:`spill_if_full` appends them to a spill file there as
    one segment per candidate, and :meth:`to_disk` joins each candidate's segments into the
    row file — the same rows, never all of them in memory at once.
    """

    def __init__(self, k: int, n: int, *, work: Any = None) -> None:
        code = row_typecode(n)
        self._code = code
        self._rows: list[array[int]] = [array(code) for _ in range(k)]
        self._target: list[array[int]] = [array(code) for _ in range(k)]
        self._views: list[np.ndarray] | None = None
        self._k = k
        self._work = work
        self._held = 0  # entries in the buffers now
        self._spill: Any = None  # the spill file, opened at the first spill
        self._segments: list[list[tuple[int, int]]] = [[] for _ in range(2 * k)]
        self._spilled = 0  # bytes written to the spill file

    def spill_if_full(self) -> None:
        """Write the buffers to the spill file when they hold :data:`SPILL_ENTRIES` entries or
        more (only with a working directory; a no-op otherwise)."""
        if self._work is None or self._held < SPILL_ENTRIES:
            return
        if self._spill is None:
            from ._record_arrays import _dir

            path = _dir(self._work)
            assert path is not None
            self._spill = open(path / "candidate-rows.spill", "w+b")  # noqa: SIM115
        for j, buf in enumerate([*self._rows, *self._target]):
            if len(buf):
                self._segments[j].append((self._spilled, len(buf)))
                self._spill.write(memoryview(buf).cast("B"))
                self._spilled += len(buf) * buf.itemsize
        self._rows = [array(self._code) for _ in range(self._k)]
        self._target = [array(self._code) for _ in range(self._k)]
        self._held = 0

    def to_disk(self, work: Any) -> None:
        """Move every candidate's rows into one file of the scan's working directory
        (:func:`._record_arrays.rows_file`) and free the in-memory buffers; :meth:`rows` and
        :meth:`target_rows` then return read-only views of that file."""
        from ._record_arrays import rows_file

        dtype = np.int32 if self._code == "i" else np.int64
        parts: list[Any] = [*self._rows, *self._target]
        if self._spill is not None:
            self._spill.flush()
            parts = [self._chunks(j, buf) for j, buf in enumerate(parts)]
        self._views = rows_file(work, "candidate-rows", parts, dtype)
        self._rows, self._target = [], []
        if self._spill is not None:
            name = self._spill.name
            self._spill.close()
            self._spill = None
            Path(name).unlink(missing_ok=True)

    def _chunks(self, j: int, tail: array[int]) -> Iterator[Any]:
        """Part ``j``'s spilled segments, read back one at a time, then its buffer."""
        fd = self._spill.fileno()
        for off, k in self._segments[j]:
            yield os.pread(fd, k * tail.itemsize, off)
        yield tail

    def add(self, i: int, row: int, target: bool) -> None:
        """Record that candidate ``i`` occurs in ``row`` (with its target outcome or not)."""
        self._rows[i].append(row)
        self._held += 1
        if target:
            self._target[i].append(row)
            self._held += 1

    def rows(self, i: int) -> np.ndarray:
        """Candidate ``i``'s rows, sorted, read-only."""
        if self._views is not None:
            return self._views[i]
        return _frozen(self._rows[i])

    def target_rows(self, i: int) -> np.ndarray:
        """Candidate ``i``'s rows that carry its target outcome, sorted, read-only."""
        if self._views is not None:
            return self._views[self._k + i]
        return _frozen(self._target[i])


def sorted_rows(rows: Rows) -> np.ndarray:
    """``sorted(set(rows))`` as an integer array (a view when ``rows`` already is one)."""
    arr = np.asarray(rows)
    if arr.dtype.kind not in "iu":
        arr = arr.astype(np.int64)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if len(arr) < 2 or bool(np.all(arr[1:] > arr[:-1])):
        return arr
    return np.unique(arr)


def member(rows: Sequence[int] | np.ndarray, among: np.ndarray) -> np.ndarray:
    """Whether each of ``rows`` is in the sorted array ``among`` (binary search, no set)."""
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows) or not len(among):
        return np.zeros(len(rows), dtype=bool)
    pos = np.searchsorted(among, rows)
    pos[pos == len(among)] = 0
    return np.asarray(among[pos] == rows)


def count_in(rows: np.ndarray, among: np.ndarray) -> int:
    """How many of the distinct ``rows`` are in the sorted, distinct ``among``."""
    return int(np.count_nonzero(member(rows, among)))


class OverlapIndex:
    """Which groups hold which rows, for exact overlap counts of a new set of rows.

    Groups are added with their sorted, distinct rows; :meth:`overlaps` returns, for each
    group so far, how many of the given rows it holds. Memory: one row number and one 4-byte
    group number per (group, row) pair; with a working directory (``work``) the large runs
    are files there (:mod:`._mining_runs`), merged and probed a bounded piece at a time.
    """

    def __init__(self, *, work: Any = None) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []
        self.n_groups = 0
        self._work = work

    def add(self, rows: np.ndarray) -> int:
        """Add a group holding ``rows`` (sorted, distinct); returns its number."""
        gid = self.n_groups
        self.n_groups += 1
        self._runs.append((np.asarray(rows), np.full(len(rows), gid, dtype=np.int32)))
        # keep run sizes at least halving, so there are O(log G) runs to probe
        while len(self._runs) > 1 and len(self._runs[-2][0]) < 2 * len(self._runs[-1][0]):
            (r1, g1), (r2, g2) = self._runs[-2], self._runs[-1]
            self._runs[-2:] = [merge_runs(r1, g1, r2, g2, work=self._work)]
            for old in (r1, g1, r2, g2):
                _drop_run_file(old)
        return gid

    def overlaps(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """``|rows & group rows|`` for every group, as an array of length :attr:`n_groups`."""
        rows = np.asarray(rows)
        counts = np.zeros(self.n_groups, dtype=np.int64)
        for r, g in self._runs:
            probe_counts(r, g, rows, counts)
        return counts


def _drop_run_file(arr: np.ndarray) -> None:
    """Remove the file of a merged-away run (its map stays valid until it is dropped)."""
    name = getattr(arr, "filename", None)
    if name and Path(name).name.startswith("overlap-run-"):
        Path(name).unlink(missing_ok=True)
