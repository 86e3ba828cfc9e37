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

from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Rows of a candidate: a sorted numpy array after the second pass (lists are accepted too).
Rows = Any


def row_typecode(n: int) -> str:
    """``array`` typecode of a row number below ``n``: 4-byte ``i`` below 2^31, else ``q``."""
    return "i" if n < 2**31 else "q"


def _frozen(buf: array[int]) -> np.ndarray:
    out = np.frombuffer(buf, dtype=np.int32 if buf.typecode == "i" else np.int64)
    out.flags.writeable = False
    return out


class RowCollector:
    """Rows of ``k`` candidates, appended in increasing row order during one pass."""

    def __init__(self, k: int, n: int) -> None:
        code = row_typecode(n)
        self._rows: list[array[int]] = [array(code) for _ in range(k)]
        self._target: list[array[int]] = [array(code) for _ in range(k)]
        self._views: list[np.ndarray] | None = None
        self._k = k

    def to_disk(self, work: Any) -> None:
        """Move every candidate's rows into one file of the scan's working directory
        (:func:`._record_arrays.rows_file`) and free the in-memory buffers; :meth:`rows` and
        :meth:`target_rows` then return read-only views of that file."""
        from ._record_arrays import rows_file

        dtype = np.int32 if not self._rows or self._rows[0].typecode == "i" else np.int64
        self._views = rows_file(work, "candidate-rows", [*self._rows, *self._target], dtype)
        self._rows, self._target = [], []

    def add(self, i: int, row: int, target: bool) -> None:
        """Record that candidate ``i`` occurs in ``row`` (with its target outcome or not)."""
        self._rows[i].append(row)
        if target:
            self._target[i].append(row)

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
    group number per (group, row) pair.
    """

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []
        self.n_groups = 0

    def add(self, rows: np.ndarray) -> int:
        """Add a group holding ``rows`` (sorted, distinct); returns its number."""
        gid = self.n_groups
        self.n_groups += 1
        self._runs.append((np.asarray(rows), np.full(len(rows), gid, dtype=np.int32)))
        # keep run sizes at least halving, so there are O(log G) runs to probe
        while len(self._runs) > 1 and len(self._runs[-2][0]) < 2 * len(self._runs[-1][0]):
            (r1, g1), (r2, g2) = self._runs[-2], self._runs[-1]
            r, g = np.concatenate([r1, r2]), np.concatenate([g1, g2])
            order = np.argsort(r, kind="stable")
            self._runs[-2:] = [(r[order], g[order])]
        return gid

    def overlaps(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """``|rows & group rows|`` for every group, as an array of length :attr:`n_groups`."""
        rows = np.asarray(rows)
        counts = np.zeros(self.n_groups, dtype=np.int64)
        for r, g in self._runs:
            lo = np.searchsorted(r, rows, side="left")
            cnt = np.searchsorted(r, rows, side="right") - lo
            total = int(cnt.sum())
            if not total:
                continue
            starts = np.cumsum(cnt) - cnt
            pos = np.repeat(lo - starts, cnt) + np.arange(total)
            counts += np.bincount(g[pos], minlength=self.n_groups)
        return counts
