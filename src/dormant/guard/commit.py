"""Group commit for the audit log: many concurrent callers, one durable commit per batch.

Every decision must be on disk before it is released, and a durable commit costs one sync of
the disk (a few milliseconds), so one-commit-per-decision caps a guard at a few hundred
decisions a second whatever the CPU. Group commit (Gawlick & Kinkade 1985, as in every
database's write-ahead log) lets the callers that arrive while a commit is running share the
next one: the first waiting caller becomes the leader, writes every pending entry in one
transaction (:meth:`AuditLog.append_many`), and wakes the others with their sequence numbers.
No caller returns before its own entry is committed, so "durable before release" still holds.

Use it from threads (an ASGI server's thread pool, ``anyio.to_thread.run_sync``); a single
caller sees the same latency as a plain :meth:`AuditLog.append`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..errors import ConfigError
from .audit import AuditEntry, AuditLog, check_entry


@dataclass
class _Slot:
    entry: AuditEntry
    seq: int | None = None
    error: BaseException | None = None
    done: bool = False


class GroupCommit:
    """Append entries to ``log`` from many threads, sharing commits.

    Parameters
    ----------
    log:
        The audit log.
    max_batch:
        The most entries one commit carries.
    """

    def __init__(self, log: AuditLog, *, max_batch: int = 256) -> None:
        if not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigError(f"The 'max_batch' parameter must be an int >= 1. Got {max_batch!r}.")
        self.log = log
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._pending: list[_Slot] = []
        self._writing = False
        #: Commits made and entries written (for metrics).
        self.commits = 0
        self.entries = 0

    def append(self, entry: AuditEntry) -> int:
        """Append ``entry``; returns its sequence number once it is committed.

        Raises whatever the commit of its batch raised (then nothing of that batch was
        written: the transaction rolled back).
        """
        check_entry(entry)  # a bad entry fails alone, never the batch it would have joined
        slot = _Slot(entry)
        with self._cond:
            self._pending.append(slot)
            while not slot.done:
                if self._writing:
                    self._cond.wait()
                    continue
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                self._writing = True
                self._cond.release()
                try:
                    seqs = self.log.append_many([s.entry for s in batch])
                    error = None
                except BaseException as exc:  # handed to every caller of the batch
                    seqs, error = [], exc
                finally:
                    self._cond.acquire()
                    self._writing = False
                for i, s in enumerate(batch):
                    s.error = error
                    s.seq = seqs[i] if error is None else None
                    s.done = True
                if error is None:
                    self.commits += 1
                    self.entries += len(batch)
                self._cond.notify_all()
        if slot.error is not None:
            raise slot.error
        assert slot.seq is not None
        return slot.seq


__all__ = ["GroupCommit"]
