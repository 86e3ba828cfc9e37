"""Per-record arrays of a data scan in files of its working directory, not on the heap.

A data scan holds a few arrays with one entry per record: each scanner's scores (4 bytes a
record) and flags (1 byte), and trigger mining's candidate rows (4 bytes per record a candidate
holds). At 10^7 records these are the part of a scan's memory that still grows with the data
(BENCHMARKS.md, "Data scan at 10^7 records"). With a working directory
(:class:`._scan_work.ScanWork`) they live in files there instead:

- :func:`record_array` makes a zero-filled ``.npy`` file and maps it (``numpy.lib.format.
  open_memmap``; the file is sparse until written, so untouched zeros take no memory or disk);
- :func:`release` tells the kernel that the pages holding a range of rows are no longer needed
  by this process (``madvise(MADV_DONTNEED)``; for a shared file mapping the data stay in the
  file and are paged back in on the next read), so a pass that walks an array from start to end
  keeps one stretch resident, not the whole array;
- :func:`frozen` flushes a written array and maps it again read-only, with no page resident;
- :func:`rows_file` writes many integer arrays end to end into one file and hands back
  read-only views of it (trigger mining's candidate rows, :mod:`._mining_rows`).

Without a working directory every function falls back to ordinary in-memory arrays, so the
library API keeps working without one. The values are the same either way; only where the
bytes live differs. Why not a library: ``numpy.memmap`` *is* the library; the only addition is
the page release, which numpy does not expose (Python's :meth:`mmap.mmap.madvise` does).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Rows per stretch when an array is written or read from start to end.
CHUNK_ROWS = 1 << 20
#: Bytes before a released range that are released with it. A page fault on a file map maps
#: more than the page asked for: Linux maps the neighbouring pages already in the page cache
#: ("fault-around", 64 KiB) and, for a file read ahead into large folios, up to a whole folio
#: (as large as 2 MiB, the huge-page size) — pages of the stretch released just before, which
#: then stay resident. Releasing from this far back drops them again. Measured on 10^7 float32
#: rows read 8,192 at a time (the fusion's batches): with no margin 26 of the 40 MB stayed
#: resident, with 64 KiB 11 MB, with 1 or 2 MiB 64 KB.
FAULT_AROUND = 1 << 21


def _dir(work: Any) -> Path | None:
    if work is None:
        return None
    path = Path(work.directory) / "arrays"
    path.mkdir(parents=True, exist_ok=True)
    return path


def record_array(work: Any, name: str, n: int, dtype: Any) -> np.ndarray:
    """A zero-filled array of ``n`` entries: a writable map of ``arrays/<name>.npy`` in
    ``work``'s directory, or an in-memory array when ``work`` is ``None``."""
    where = _dir(work)
    if where is None:
        return np.zeros(n, dtype=dtype)
    path = where / f"{name}.npy"
    path.unlink(missing_ok=True)
    out: np.ndarray = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n,))
    return out


def _mapping(arr: np.ndarray) -> tuple[mmap.mmap, int] | None:
    """The mmap behind a top-level ``np.memmap`` and the array's byte offset inside it."""
    mm = getattr(arr, "_mmap", None)
    if not isinstance(arr, np.memmap) or not isinstance(mm, mmap.mmap):
        return None
    return mm, int(arr.offset) % mmap.ALLOCATIONGRANULARITY


def release(arr: np.ndarray, start: int, stop: int) -> None:
    """Drop this process's resident pages of rows ``[start, stop)`` of a mapped array (a no-op
    for an in-memory one). The values are kept: the file holds them, and a later read pages them
    back in."""
    found = _mapping(arr)
    if found is None or stop <= start or not hasattr(mmap, "MADV_DONTNEED"):
        return
    mm, base = found
    size = arr.dtype.itemsize
    lo = max(base, base + start * size - FAULT_AROUND)  # see FAULT_AROUND
    hi = base + min(stop, len(arr)) * size
    page = mmap.PAGESIZE
    lo = lo // page * page  # whole pages: one shared with the next rows is paged back in
    hi = min(-(-hi // page) * page, len(mm))
    if hi > lo:
        if arr.flags.writeable:
            mm.flush(lo, hi - lo)
        mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def release_file_views(arr: Any) -> None:
    """Drop this process's resident pages of the whole read-only file map that ``arr`` (a view
    made by :func:`rows_file`) looks into; a no-op for any other array. Reading the views
    again pages the data back in from the file (the page cache, usually)."""
    base = getattr(arr, "base", None)  # rows may also be a list (the reference path)
    mm = base.obj if isinstance(base, memoryview) else None
    if isinstance(mm, mmap.mmap) and len(mm) and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)


def release_file_maps(arrays: Iterable[Any]) -> None:
    """:func:`release_file_views` once for each distinct file map that ``arrays`` look into
    (many views share one map; arrays in memory are skipped)."""
    done: set[int] = set()
    for arr in arrays:
        base = getattr(arr, "base", None)
        mm = base.obj if isinstance(base, memoryview) else None
        if isinstance(mm, mmap.mmap) and id(mm) not in done:
            done.add(id(mm))
            release_file_views(arr)


def frozen(arr: np.ndarray) -> np.ndarray:
    """A written array as read-only: a mapped one is flushed and mapped again read-only (no
    page resident); an in-memory one is marked read-only."""
    if isinstance(arr, np.memmap) and arr.filename:
        arr.flush()
        path = arr.filename
        release(arr, 0, len(arr))
        out: np.ndarray = np.load(path, mmap_mode="r")
        return out
    arr.flags.writeable = False
    return arr


def rows_file(work: Any, name: str, parts: Sequence[Any], dtype: Any) -> list[np.ndarray]:
    """Integer arrays (``array.array`` or numpy) written end to end into ``arrays/<name>.bin``
    and returned as read-only views of its map, in order; in memory without ``work``. With
    ``work`` a part may also be an iterator of such buffers (pieces of one array, in order)."""
    where = _dir(work)
    dt = np.dtype(dtype)
    if where is None:
        out = []
        for p in parts:
            a = np.frombuffer(p, dtype=dt) if not isinstance(p, np.ndarray) else p.astype(dt)
            a.flags.writeable = False
            out.append(a)
        return out
    path = where / f"{name}.bin"
    sizes = []
    with open(path, "wb") as fh:
        for p in parts:
            k = 0
            # a part is one buffer, or an iterator of buffers written one after another
            for c in p if isinstance(p, Iterator) else (p,):
                buf: Any = c if not isinstance(c, np.ndarray) else np.ascontiguousarray(c, dt)
                b = memoryview(buf)
                fh.write(b.cast("B"))
                k += b.nbytes // dt.itemsize
            sizes.append(k)
    total = sum(sizes)
    if total == 0:
        return [np.frombuffer(b"", dtype=dt) for _ in sizes]
    fd = os.open(path, os.O_RDONLY)
    try:
        mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    views = []
    offset = 0
    for k in sizes:
        if k:
            view = np.frombuffer(mm, dtype=dt, count=k, offset=offset * dt.itemsize)
        else:
            view = np.empty(0, dtype=dt)
            view.flags.writeable = False
        views.append(view)
        offset += k
    return views
