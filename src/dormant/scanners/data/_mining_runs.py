"""Sorted integer runs merged and probed in bounded pieces, in memory or in the working directory.

Trigger mining's grouping (:class:`._mining_rows.OverlapIndex`) keeps one ``(row, group)``
pair per row of every group, as sorted runs merged by size (a log-structured merge; O'Neil et
al., "The log-structured merge-tree", Acta Informatica 1996). Merging two runs by
``concatenate`` + ``argsort`` holds, at the largest merge, the two inputs, their concatenation,
an 8-byte order array and the sorted output — about five copies of every pair; probing a run
with all of a candidate's rows at once makes temporaries as long as those rows (millions at
10^7 records). Here:

- :func:`merge_runs` is the textbook two-way merge of sorted sequences (Knuth, TAOCP vol. 3,
  §5.2.4), done a piece of at most :data:`PIECE` entries of each input at a time with
  ``numpy.searchsorted``, written straight into the output (which may be a file map); ties
  keep the first run's entries first, as the stable ``argsort`` did, so the output is the same
  array;
- :func:`run_array` makes the output in memory, or — with a working directory and a run of at
  least :data:`SPILL_PAIRS` pairs — as a ``.npy`` file of the scan's working directory
  (:mod:`._record_arrays`), whose pages are released once written and after each probe, so a
  large run is paged from the file instead of held on the heap;
- :func:`probe_counts` counts, for each group, how many of a sorted set of rows a run holds,
  for at most :data:`PIECE` query rows at a time.

Why not a library: numpy has no merge of sorted arrays (``np.union1d``/``np.sort`` re-sort and
drop the group numbers); ``heapq.merge`` is per element in Python (~100× slower); sorted
containers hold Python objects (~100 bytes a pair). The method is the merge step of merge
sort with numpy's binary search doing the interleaving.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ._record_arrays import frozen, record_array, release

#: Entries of each input (and query rows) handled at a time: bounds every temporary.
PIECE = 1 << 16

#: Runs of at least this many pairs are kept in a file of the working directory (when given).
SPILL_PAIRS = 1 << 20

_names = itertools.count()


def run_array(work: Any, n: int, dtype: Any, *, spill: int | None = None) -> np.ndarray:
    """A writable array of ``n`` entries: a file map in ``work`` when ``n >= spill``
    (default :data:`SPILL_PAIRS`)."""
    if work is None or n < (SPILL_PAIRS if spill is None else spill):
        return np.empty(n, dtype=dtype)
    return record_array(work, f"overlap-run-{next(_names)}", n, dtype)


def merge_runs(
    r1: np.ndarray,
    g1: np.ndarray,
    r2: np.ndarray,
    g2: np.ndarray,
    *,
    work: Any = None,
    piece: int = PIECE,
    spill: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Merge two runs sorted by row (``r``) carrying group numbers (``g``) into one.

    Equal rows keep ``r1``'s entries before ``r2``'s, each in its own order: the result equals
    ``np.concatenate`` of the two followed by a stable ``argsort`` of the rows.
    """
    n1, n2 = len(r1), len(r2)
    rdt = np.result_type(r1.dtype, r2.dtype)
    r = run_array(work, n1 + n2, rdt, spill=spill)
    g = run_array(work, n1 + n2, np.int32, spill=spill)
    i = j = 0
    while i < n1 or j < n2:
        a_end, b_end = min(i + piece, n1), min(j + piece, n2)
        a, b = r1[i:a_end], r2[j:b_end]
        # emit only what surely precedes everything not yet read (see the module docstring)
        ia = len(a) if b_end == n2 else int(np.searchsorted(a, r2[b_end], side="right"))
        jb = len(b) if a_end == n1 else int(np.searchsorted(b, r1[a_end], side="left"))
        a, b = a[:ia], b[:jb]
        lo = i + j
        pos = np.searchsorted(a, b, side="right") + np.arange(jb)  # b's places in the piece
        keep = np.ones(ia + jb, dtype=bool)
        keep[pos] = False
        out_r, out_g = r[lo : lo + ia + jb], g[lo : lo + ia + jb]
        out_r[pos], out_g[pos] = b, g2[j : j + jb]
        out_r[keep], out_g[keep] = a, g1[i : i + ia]
        i, j = i + ia, j + jb
        release(r, lo, lo + ia + jb)
        release(g, lo, lo + ia + jb)
    return frozen(r), frozen(g)


def probe_counts(
    r: np.ndarray, g: np.ndarray, rows: np.ndarray, counts: np.ndarray, *, piece: int = PIECE
) -> None:
    """Add to ``counts[k]`` how many of ``rows`` (sorted, distinct) run ``(r, g)`` gives to
    group ``k``, reading at most ``piece`` query rows at a time; a file run's pages are released
    afterwards."""
    n_groups = len(counts)
    for s in range(0, len(rows), piece):
        q = rows[s : s + piece]
        lo = np.searchsorted(r, q, side="left")
        cnt = np.searchsorted(r, q, side="right") - lo
        total = int(cnt.sum())
        if not total:
            continue
        starts = np.cumsum(cnt) - cnt
        pos = np.repeat(lo - starts, cnt) + np.arange(total)
        counts += np.bincount(g[pos], minlength=n_groups)
    release(r, 0, len(r))
    release(g, 0, len(g))
