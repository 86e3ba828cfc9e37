"""Group commit for the audit log: many requests' entries, one durable transaction.

Every decision must be on disk before its response is released, and the audit chain is one
sequence, so appends are serialised. Committing each entry on its own costs one ``fsync`` per
entry (SQLite ``synchronous=FULL``; about 5–10 ms on the development machine), which caps the
guard near 100 requests/s however fast the rest is. This is the *group commit* of database
logs (DeWitt et al., "Implementation techniques for main memory database systems", SIGMOD
1984; Helland et al., "Group commit timers and high volume transaction systems", 1987): one
writer thread takes every batch of entries waiting, appends them all in one transaction
(:meth:`dormant.guard.audit.AuditLog.append` with ``conn=``) and commits once; each request
waits only for the commit that holds its own entries. Nothing is released earlier than with
one commit per entry — every waiting request still sees its entries durable first — and a
failed commit fails every request of the batch (each is then answered 503, nothing released).

Monitoring updates (the per (model, identity) baseline) are not needed before release; they
are gathered and applied about once a second, in one transaction of their own, best effort.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger("dormant.guard.proxy")

#: One request's writes: each is called with ``conn=`` (the open connection) and returns a
#: sequence number.
Writes = list[Callable[..., int]]

_STOP = object()
_WAKE = object()


class AuditWriter:
    """The single writer thread of one audit log.

    Parameters
    ----------
    transaction:
        A context-manager factory for one write transaction on the audit database (it commits,
        durably, when the block ends).
    apply_later:
        Called as ``apply_later(items, conn=conn)`` with the items queued by :meth:`after`,
        in a transaction of their own (monitoring updates), at most every ``later_every``
        seconds (a crash loses at most that much monitoring, never an audit entry).
    max_batch:
        Most requests committed together.
    """

    def __init__(
        self,
        transaction: Callable[[], Any],
        *,
        apply_later: Callable[..., None] | None = None,
        later_every: float = 1.0,
        max_batch: int = 256,
    ) -> None:
        self._tx = transaction
        self._apply = apply_later
        self._every = later_every
        self._last_apply = time.monotonic()
        self._max = max_batch
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._later: list[Any] = []
        self._later_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="dormant-audit", daemon=True)
        self._thread.start()

    def submit(self, writes: Writes) -> Future[list[int]]:
        """Queue one request's writes; the future holds their sequence numbers once durable."""
        fut: Future[list[int]] = Future()
        self._jobs.put((writes, fut))
        return fut

    def after(self, item: Any) -> None:
        """Queue an item for the best-effort ``apply_later`` after the next commit."""
        with self._later_lock:
            self._later.append(item)

    def close(self) -> None:
        self._jobs.put(_STOP)
        self._thread.join(timeout=10)

    # -- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            wait = None
            if self._later:
                wait = max(0.0, self._last_apply + self._every - time.monotonic())
            try:
                first = self._jobs.get(timeout=wait)
            except queue.Empty:
                first = _WAKE
            if first is _STOP:
                self._apply_later(force=True)
                return
            batch = [] if first is _WAKE else [first]
            stop = False
            while len(batch) < self._max:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stop = True
                    break
                if job is not _WAKE:
                    batch.append(job)
            if batch:
                self._commit(batch)
            self._apply_later(force=stop)
            if stop:
                return

    def _commit(self, batch: list[tuple[Writes, Future[list[int]]]]) -> None:
        try:
            results = self._write(batch)
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            # one bad request must not fail the others: commit each on its own
            for job in batch:
                self._commit([job])
            return
        for (_, fut), seqs in zip(batch, results, strict=True):
            fut.set_result(seqs)

    def _write(self, batch: list[tuple[Writes, Future[list[int]]]]) -> list[list[int]]:
        with self._tx() as conn:
            return [[w(conn=conn) for w in writes] for writes, _ in batch]

    def _apply_later(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_apply < self._every:
            return
        self._last_apply = time.monotonic()
        with self._later_lock:
            todo, self._later = self._later, []
        if not todo or self._apply is None:
            return
        try:
            with self._tx() as conn:
                self._apply(todo, conn=conn)
        except Exception as exc:  # monitoring only: the decisions are already durable
            log.warning("baseline update failed", extra={"error": f"{type(exc).__name__}: {exc}"})
