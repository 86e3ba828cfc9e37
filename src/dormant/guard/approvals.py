"""Calls held for approval: a person approves or denies each, and that decision is audited.

A call whose tool has ``hold = true`` is decided ``hold``; the face that received it records it
with :meth:`Approvals.hold` (in the same guard database as the audit log) and answers the client
that the call is pending. Once a person has approved it, the same identity proposing the same
call again (same model, tool and arguments) is allowed once: :meth:`Approvals.release` marks the
hold ``released`` and appends the ``allow`` decision to the audit chain in one transaction.
``dormant guard approvals list|approve|deny`` is the operator's side. Every approve/deny is
appended to the audit chain in the same transaction that changes the hold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import ConfigError
from ._store import holds
from .audit import AuditEntry, AuditLog
from .types import Decision, DecisionContext

#: ``released``: approved, and the agent's repeat of the call was allowed (each approval
#: releases one call).
STATUSES = ("pending", "approved", "denied", "released")


@dataclass(frozen=True)
class HeldCall:
    """One held call and where it stands."""

    id: int
    created: str
    status: str
    identity: str | None
    model: str | None
    call: dict[str, Any]
    reasons: tuple[str, ...]
    request_id: str | None = None
    audit_seq: int | None = None
    decided_by: str | None = None
    decided_at: str | None = None
    note: str | None = None


class Approvals:
    """The hold queue of one guard database (the audit log's)."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def hold(
        self, context: DecisionContext, decision: Decision, *, audit_seq: int | None = None
    ) -> int:
        """Queue a held call; returns its id."""
        now = _now()
        with self.log.store.tx() as conn:
            res = conn.execute(
                holds.insert().values(
                    created=now,
                    audit_seq=audit_seq,
                    request_id=context.request_id,
                    identity=context.identity,
                    model=context.model.name,
                    call=json.dumps(decision.to_dict()["call"], ensure_ascii=False, default=str),
                    reasons=json.dumps(list(decision.reasons), ensure_ascii=False),
                    status="pending",
                )
            )
            return int(res.inserted_primary_key[0])

    def list(self, *, status: str | None = "pending") -> list[HeldCall]:
        """Held calls with ``status`` (``None``: all), oldest first."""
        from sqlalchemy import select

        if status is not None and status not in STATUSES:
            raise ConfigError(f"status must be one of {STATUSES} or None. Got {status!r}.")
        q = select(holds).order_by(holds.c.id)
        if status is not None:
            q = q.where(holds.c.status == status)
        with self.log.store.tx(write=False) as conn:
            return [_held(r) for r in conn.execute(q)]

    def get(self, hold_id: int) -> HeldCall | None:
        """One held call by id."""
        from sqlalchemy import select

        with self.log.store.tx(write=False) as conn:
            r = conn.execute(select(holds).where(holds.c.id == int(hold_id))).first()
        return _held(r) if r else None

    def status(self, hold_id: int) -> str | None:
        """``pending``, ``approved``, ``denied`` or ``None`` for an unknown id."""
        h = self.get(hold_id)
        return h.status if h else None

    def approve(self, hold_id: int, *, actor: str, note: str | None = None) -> HeldCall:
        """Approve a pending call (audited). Raises ConfigError if it is not pending."""
        return self._decide(hold_id, "approved", actor=actor, note=note)

    def deny(self, hold_id: int, *, actor: str, note: str | None = None) -> HeldCall:
        """Deny a pending call (audited). Raises ConfigError if it is not pending."""
        return self._decide(hold_id, "denied", actor=actor, note=note)

    def _decide(self, hold_id: int, status: str, *, actor: str, note: str | None) -> HeldCall:
        from sqlalchemy import select

        if not isinstance(actor, str) or not actor:
            raise ConfigError("An approval needs a non-empty 'actor' (who decided).")
        now = _now()
        with self.log.store.tx() as conn:
            r = conn.execute(select(holds).where(holds.c.id == int(hold_id))).first()
            if r is None:
                raise ConfigError(f"No held call with id {hold_id}.")
            if r.status != "pending":
                raise ConfigError(f"Held call {hold_id} is already {r.status}; nothing to do.")
            held = _held(r)
            entry = AuditEntry(
                kind="approval",
                outcome="allow" if status == "approved" else "deny",
                identity=held.identity,
                model=held.model,
                call=held.call,
                reasons=(
                    f"held call {hold_id} {status} by {actor}" + (f": {note}" if note else ""),
                ),
                request_id=held.request_id,
                detail={"hold_id": held.id, "held_entry": held.audit_seq, "actor": actor},
            )
            self.log.append(entry, conn=conn)
            conn.execute(
                holds.update()
                .where(holds.c.id == held.id)
                .values(status=status, decided_by=actor, decided_at=now, note=note)
            )
            r = conn.execute(select(holds).where(holds.c.id == held.id)).first()
        return _held(r)

    def release(
        self, context: DecisionContext, decision: Decision, entry: AuditEntry
    ) -> tuple[HeldCall, int] | None:
        """Release one approved held call matching ``decision.call`` for this identity and model.

        In one transaction: find the oldest approved hold with the same tool and arguments,
        append ``entry`` (the ``allow`` decision) to the audit chain and mark the hold
        ``released``. Returns the hold and the entry's sequence number, or ``None`` when no
        approved hold matches (nothing is written then).
        """
        from sqlalchemy import select

        call = decision.call
        q = (
            select(holds)
            .where(holds.c.status == "approved")
            .where(holds.c.identity == context.identity)
            .where(holds.c.model == context.model.name)
            .order_by(holds.c.id)
        )
        want = {"tool": call.tool, "arguments": _plain(call.arguments)}
        with self.log.store.tx() as conn:
            for r in conn.execute(q).all():
                held = json.loads(r.call)
                if not isinstance(held, dict):
                    continue
                if {"tool": held.get("tool"), "arguments": held.get("arguments")} != want:
                    continue
                entry = AuditEntry(
                    **{**entry.__dict__, "detail": {**entry.detail, "hold_id": r.id}}
                )
                seq = self.log.append(entry, conn=conn)
                conn.execute(
                    holds.update()
                    .where(holds.c.id == r.id)
                    .where(holds.c.status == "approved")
                    .values(status="released")
                )
                r2 = conn.execute(select(holds).where(holds.c.id == r.id)).first()
                return _held(r2), seq
        return None


def _plain(value: Any) -> Any:
    """``value`` as it reads back from the stored JSON (tuples become lists)."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def _held(r: Any) -> HeldCall:
    return HeldCall(
        r.id,
        r.created,
        r.status,
        r.identity,
        r.model,
        json.loads(r.call),
        tuple(json.loads(r.reasons)),
        r.request_id,
        r.audit_seq,
        r.decided_by,
        r.decided_at,
        r.note,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


__all__ = ["Approvals", "HeldCall"]
