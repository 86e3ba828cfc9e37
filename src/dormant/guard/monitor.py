"""Post-deployment monitoring: a per (model, identity) baseline of tools and destinations.

After a learning period (the first ``learning_decisions`` decisions of that model and identity),
a tool or destination host never seen before raises a ``new-tool`` / ``new-destination`` alert —
even when the policy allows the call (the behaviour-drift signal of OWASP's Agentic Security
guidance, "monitor for deviations from an agent's established behaviour"). The alerts never
change an outcome.

:meth:`Baseline.view` reads a frozen :class:`BaselineView` (the I/O), which
:func:`dormant.guard.decide` consults purely; :meth:`Baseline.observe` records a decision.
Stored in the guard database next to the audit log.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import ConfigError
from ._store import Store, baseline, baseline_counts


@dataclass(frozen=True)
class BaselineView:
    """What was seen for one (model, identity), read at one moment."""

    model: str
    identity: str
    tools: frozenset[str]
    destinations: frozenset[str]
    decisions: int
    learning_decisions: int

    @property
    def learning(self) -> bool:
        """Still inside the learning period (no alerts yet)."""
        return self.decisions < self.learning_decisions

    def alerts(self, tool: str, destinations: tuple[str, ...]) -> tuple[str, ...]:
        """``new-tool`` / ``new-destination`` for what this baseline has not seen."""
        if self.learning:
            return ()
        out = []
        if tool not in self.tools:
            out.append("new-tool")
        if any(d not in self.destinations for d in destinations):
            out.append("new-destination")
        return tuple(out)


class Baseline:
    """The monitoring baselines in the guard database.

    Parameters
    ----------
    store:
        The guard database (``AuditLog.open(url).store``).
    learning_decisions:
        Decisions per (model, identity) observed before alerts start.
    flush_every, flush_seconds:
        Observations are buffered in memory and written in one transaction when this many
        are pending or this many seconds have passed (and by :meth:`flush`): the baseline is
        advisory, and a disk sync per decision would halve the guard's throughput. What one
        process has not flushed yet is still part of its own views.
    cache_seconds:
        How long a view read from the database is reused.
    """

    def __init__(
        self,
        store: Store,
        *,
        learning_decisions: int = 50,
        flush_every: int = 64,
        flush_seconds: float = 2.0,
        cache_seconds: float = 2.0,
    ) -> None:
        if not isinstance(learning_decisions, int) or learning_decisions < 0:
            raise ConfigError(
                "The 'learning_decisions' parameter must be an int >= 0. "
                f"Got {learning_decisions!r} instead."
            )
        self.store = store
        self.learning_decisions = learning_decisions
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._items: dict[tuple[str, str, str, str], int] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._pending = 0
        self._flushed_at = time.monotonic()
        self._cache: dict[tuple[str, str], tuple[float, BaselineView]] = {}
        #: What a flush in progress is writing: still part of views until it is committed.
        self._flushing: tuple[dict[tuple[str, str, str, str], int], dict[tuple[str, str], int]]
        self._flushing = ({}, {})

    def view(self, model: str, identity: str) -> BaselineView:
        """The current baseline of (model, identity): the database's, plus what this process
        observed and has not flushed yet."""
        now = time.monotonic()
        hit = self._cache.get((model, identity))
        base = hit[1] if hit is not None and now - hit[0] < self.cache_seconds else None
        if base is None:
            base = self._read(model, identity)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[(model, identity)] = (now, base)
        with self._lock:
            extra = [
                (k, v)
                for items in (self._items, self._flushing[0])
                for (m, i, k, v) in items
                if m == model and i == identity
            ]
            n = self._counts.get((model, identity), 0) + self._flushing[1].get((model, identity), 0)
        if not extra and not n:
            return base
        return BaselineView(
            model,
            identity,
            base.tools | {v for k, v in extra if k == "tool"},
            base.destinations | {v for k, v in extra if k == "destination"},
            base.decisions + n,
            self.learning_decisions,
        )

    def _read(self, model: str, identity: str) -> BaselineView:
        from sqlalchemy import select

        with self.store.tx(write=False) as conn:
            rows = conn.execute(
                select(baseline.c.kind, baseline.c.value).where(
                    baseline.c.model == model, baseline.c.identity == identity
                )
            ).all()
            n = conn.execute(
                select(baseline_counts.c.decisions).where(
                    baseline_counts.c.model == model, baseline_counts.c.identity == identity
                )
            ).scalar()
        return BaselineView(
            model,
            identity,
            frozenset(v for k, v in rows if k == "tool"),
            frozenset(v for k, v in rows if k == "destination"),
            int(n or 0),
            self.learning_decisions,
        )

    def alerts_for(
        self, model: str, identity: str, tool: str, destinations: tuple[str, ...] = ()
    ) -> tuple[str, ...]:
        """Alerts a call would raise now (reads the baseline)."""
        return self.view(model, identity).alerts(tool, destinations)

    def observe(
        self, model: str, identity: str, tool: str, destinations: tuple[str, ...] = ()
    ) -> None:
        """Record one decided call: its tool and destinations join the baseline."""
        with self._lock:
            for kind, value in [("tool", tool)] + [("destination", d) for d in destinations]:
                key = (model, identity, kind, value[:512])
                self._items[key] = self._items.get(key, 0) + 1
            self._counts[(model, identity)] = self._counts.get((model, identity), 0) + 1
            self._pending += 1
            due = (
                self._pending >= self.flush_every
                or time.monotonic() - self._flushed_at >= self.flush_seconds
            )
        if due:
            self.flush()

    def flush(self) -> None:
        """Write the buffered observations in one transaction."""
        with self._flush_lock:
            self._flush()

    def _flush(self) -> None:
        from ..registry._engine import upsert

        with self._lock:
            items, counts = self._items, self._counts
            self._items, self._counts, self._pending = {}, {}, 0
            self._flushed_at = time.monotonic()
            self._flushing = (items, counts)
        if not items and not counts:
            return
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        try:
            with self.store.tx() as conn:
                for (model, identity, kind, value), k in items.items():
                    _bump(conn, model, identity, kind, value, now, k)
                for (model, identity), k in counts.items():
                    upsert(
                        conn,
                        baseline_counts,
                        {
                            "model": model,
                            "identity": identity,
                            "decisions": _count(conn, model, identity) + k,
                        },
                        keys=("model", "identity"),
                        update=("decisions",),
                    )
        except Exception:
            with self._lock:  # keep them for the next flush
                for key, k in items.items():
                    self._items[key] = self._items.get(key, 0) + k
                for key2, k in counts.items():
                    self._counts[key2] = self._counts.get(key2, 0) + k
                self._flushing = ({}, {})
            raise
        with self._lock:
            for key2 in counts:
                self._cache.pop(key2, None)
            self._flushing = ({}, {})


def _count(conn: Any, model: str, identity: str) -> int:
    from sqlalchemy import select

    n = conn.execute(
        select(baseline_counts.c.decisions).where(
            baseline_counts.c.model == model, baseline_counts.c.identity == identity
        )
    ).scalar()
    return int(n or 0)


def _bump(
    conn: Any, model: str, identity: str, kind: str, value: str, now: str, k: int = 1
) -> None:
    from sqlalchemy import select

    key = (
        (baseline.c.model == model)
        & (baseline.c.identity == identity)
        & (baseline.c.kind == kind)
        & (baseline.c.value == value)
    )
    cur = conn.execute(select(baseline.c.count).where(key)).scalar()
    if cur is None:
        conn.execute(
            baseline.insert().values(
                model=model, identity=identity, kind=kind, value=value, first_seen=now, count=k
            )
        )
    else:
        conn.execute(baseline.update().where(key).values(count=cur + k))


__all__ = ["Baseline", "BaselineView"]
