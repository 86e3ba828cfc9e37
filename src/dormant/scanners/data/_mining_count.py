"""The counting pass of trigger mining, fast: batched features and the worker pool.

The per-record features are those of :func:`._mining_features._features` — word 1-2(-3)-grams
with start/end markers, invisible runs, confusable characters, whole-record style — and every
function here returns exactly what it would; only the way they are computed differs:

- **Integer codes.** Batches are counted by :class:`._mining_codes.CodeCounts` (one regular
  expression call per batch, n-grams as packed integer ids, counting in NumPy); when its
  vocabulary outgrows the packed ids, or for trigrams, the string tables take over
  (:func:`count_into`, the record-at-a-time features of :func:`._mining_features._features`).
- **Workers that merge once** (:func:`count_parallel`, ``TriggerMiner(n_jobs=N)``, ``--jobs N``):
  the reading process hands batches to ``N`` forked workers as they become free; each counts its
  batches into its own tables, pruning them with lossy counting at its own share of the stream,
  and returns them once at the end, where they are merged by addition. Manku & Motwani's bound
  holds per worker (a dropped count is at most ``ε × n_k``), so the merged undercount is at most
  ``ε × Σ n_k = ε × N``, the same guarantee as one process. Without pruning (tables below
  ``max_table``) the counts, and so the findings, are identical to one process.

The counter API is :class:`._mining_features._Partial` (``n``, ``total``, ``per``,
``outcome_n``, ``skel_per``, ``skel_total``; :meth:`~._mining_features._Partial.merge` adds two
partials) and :func:`._mining_features._count_batch` (one batch to one partial). Partials of
disjoint parts of a dataset merge by addition in any order, which is what a distributed engine
(Ray Data ``map_batches`` + a reduce) relies on.

Reference: Manku & Motwani, "Approximate frequency counts over data streams", VLDB 2002.
"""

from __future__ import annotations

import queue
import signal
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ...errors import ScanError
from ._mining_codes import CodeCounts
from ._mining_features import _Partial, _sum, count_into


def lossy_prune(part: _Partial, *, labelled: bool, count_error: float, max_table: int) -> None:
    """Lossy-counting prune of a running partial, when its tables exceed ``max_table``.

    Entries seen in at most ``count_error * part.n`` records are dropped; each dropped entry had
    count <= εn when dropped, so any count kept later is short by at most εN (Manku & Motwani
    2002). Tables are rebuilt rather than deleted from (faster). ``part.prunes`` counts them.
    """
    n = part.n
    size = len(part.total) if not labelled else sum(len(c) for c in part.per.values())
    if count_error <= 0 or size <= max_table or int(count_error * n) < 1:
        return
    total = _sum(part.per) if labelled else part.total
    limit = int(count_error * n)
    part.prunes += 1
    kept: Counter[str] = Counter({k: v for k, v in total.items() if v > limit})
    for o, c in part.per.items():
        part.per[o] = Counter({k: v for k, v in c.items() if k in kept})
    part.total = kept


Job = tuple[list[str], list[str] | None, list[str] | None, int]


@dataclass(frozen=True)
class CountSettings:
    """How a counter prunes: the lossy-counting error and the table size that triggers it."""

    labelled: bool
    count_error: float
    max_table: int


class _Counter:
    """Integer-code tables (:class:`.CodeCounts`) while they apply, string tables after."""

    def __init__(self, settings: CountSettings) -> None:
        self.s = settings
        self.codes: CodeCounts | None = None
        self.part: _Partial | None = None

    def add(self, job: Job) -> None:
        texts, labels, responses, max_n = job
        if self.part is None and max_n <= 2:
            if self.codes is None:
                self.codes = CodeCounts(labelled=self.s.labelled, max_n=max_n)
            self.codes.add(texts, labels, responses)
            self.codes.prune(count_error=self.s.count_error, max_table=self.s.max_table)
            if self.codes.vocab_full:  # ids no longer fit: go on with string tables
                self.part, self.codes = self.codes.to_partial(), None
            return
        if self.part is None:
            self.part = self.codes.to_partial() if self.codes is not None else _Partial()
            self.codes = None
        count_into(self.part, texts, labels, responses, max_n)
        lossy_prune(
            self.part,
            labelled=self.s.labelled,
            count_error=self.s.count_error,
            max_table=self.s.max_table,
        )

    def result(self) -> _Partial:
        if self.part is not None:
            return self.part
        return self.codes.to_partial() if self.codes is not None else _Partial()


def count_serial(
    jobs: Iterable[Job], settings: CountSettings, on_batch: Callable[[int], None]
) -> _Partial:
    """Count every batch into one running table, pruning after each batch."""
    counter = _Counter(settings)
    for job in jobs:
        counter.add(job)
        on_batch(len(job[0]))
    return counter.result()


def count_parallel(
    jobs: Iterable[Job],
    n_jobs: int,
    settings: CountSettings,
    on_batch: Callable[[int], None],
) -> _Partial:
    """Count batches in ``n_jobs`` forked workers, merging their tables once at the end.

    Workers take batches from one bounded queue as they become free (at most two batches per
    worker wait, so memory stays bounded) and each prunes its own running partial with
    the same rule at its own ``n``. A worker that fails or dies raises here, after the others are
    stopped; nothing partial is returned.
    """
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    inbox = ctx.Queue(maxsize=2 * n_jobs)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(inbox, results, settings), daemon=True)
        for _ in range(n_jobs)
    ]
    for p in procs:
        p.start()
    parts: list[_Partial] = []

    def handle(msg: tuple[str, Any]) -> None:
        if msg[0] == "batch":
            on_batch(msg[1])
        elif msg[0] == "error":
            raise ScanError(f"a counting worker failed: {msg[1]}")
        else:
            parts.append(msg[1])

    def poll(block: bool) -> None:
        try:
            handle(results.get(timeout=0.5) if block else results.get_nowait())
        except queue.Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise ScanError(
                    f"a counting worker exited with code {dead[0].exitcode} (out of memory?); "
                    "rerun with fewer jobs (--jobs) or a smaller max_table."
                ) from None

    try:
        for job in jobs:
            while True:
                try:
                    inbox.put(job, timeout=0.5)
                    break
                except queue.Full:
                    poll(block=False)
            while not results.empty():
                poll(block=False)
        for _ in procs:
            inbox.put(None)
        while len(parts) < n_jobs:
            poll(block=True)
    finally:
        finished = len(parts) == n_jobs
        if not finished:  # an error: batches still queued must not hold this process at exit
            inbox.cancel_join_thread()
            results.cancel_join_thread()
        for p in procs:
            p.join(timeout=5 if finished else 0)
            if p.is_alive():
                p.terminate()
                p.join()
        inbox.close()
        results.close()
    acc = parts[0]
    for part in parts[1:]:
        acc.merge(part, settings.labelled)
        acc.n += part.n
        acc.prunes += part.prunes
    return acc


def _worker(inbox: Any, results: Any, settings: CountSettings) -> None:
    # the parent handles Ctrl-C and stops its workers; a stop is quiet, not a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    counter = _Counter(settings)
    try:
        while (job := inbox.get()) is not None:
            counter.add(job)
            results.put(("batch", len(job[0])))
        results.put(("done", counter.result()))
    except BaseException as exc:
        results.put(("error", f"{type(exc).__name__}: {exc}"))
