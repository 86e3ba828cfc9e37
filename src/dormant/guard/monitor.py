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
    """

    def __init__(self, store: Store, *, learning_decisions: int = 50) -> None:
        if not isinstance(learning_decisions, int) or learning_decisions < 0:
            raise ConfigError(
                "The 'learning_decisions' parameter must be an int >= 0. "
                f"Got {learning_decisions!r} instead."
            )
        self.store = store
        self.learning_decisions = learning_decisions

    def view(self, model: str, identity: str) -> BaselineView:
        """The current baseline of (model, identity)."""
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
        from ..registry._engine import upsert

        now = datetime.now(UTC).isoformat(timespec="microseconds")
        with self.store.tx() as conn:
            for kind, value in [("tool", tool)] + [("destination", d) for d in destinations]:
                _bump(conn, model, identity, kind, value[:512], now)
            cur = _count(conn, model, identity)
            upsert(
                conn,
                baseline_counts,
                {"model": model, "identity": identity, "decisions": cur + 1},
                keys=("model", "identity"),
                update=("decisions",),
            )


def _count(conn: Any, model: str, identity: str) -> int:
    from sqlalchemy import select

    n = conn.execute(
        select(baseline_counts.c.decisions).where(
            baseline_counts.c.model == model, baseline_counts.c.identity == identity
        )
    ).scalar()
    return int(n or 0)


def _bump(conn: Any, model: str, identity: str, kind: str, value: str, now: str) -> None:
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
                model=model, identity=identity, kind=kind, value=value, first_seen=now, count=1
            )
        )
    else:
        conn.execute(baseline.update().where(key).values(count=cur + 1))


__all__ = ["Baseline", "BaselineView"]
