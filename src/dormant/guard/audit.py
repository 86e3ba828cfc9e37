"""The audit trail: every decision written durably before it is released, hash-chained.

Each entry carries the identity, model name, artifact digest and provenance state, the matched
triggers, the proposed call, the outcome, its reasons and alerts, the policy version, the time
and the request id, plus ``prev_hash`` and ``hash`` = SHA-256 over the canonical JSON of the
entry (RFC 8785-style: sorted keys, no insignificant whitespace, UTF-8) including ``prev_hash``
— the hash chain of Haber & Stornetta (1991) / Schneier & Kelsey's secure audit logs (1999).
:meth:`AuditLog.verify` recomputes the chain and names the first entry that was edited,
inserted or removed; the head record (last sequence number and hash, kept in its own table)
catches a removed *last* entry.

What a chain cannot do: someone who can write the database can recompute every hash after an
edit. Anchor the head outside (copy ``dormant guard audit verify``'s head hash to another
system) to close that.

Appends are serialised across processes (SQLite ``BEGIN IMMEDIATE``; PostgreSQL
``pg_advisory_xact_lock``) and committed before :meth:`AuditLog.append` returns; SQLite runs
with ``synchronous=FULL`` so a committed entry survives a crash of the machine.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from ..errors import ConfigError
from ._redact import redact_call
from ._store import Store, audit, audit_head
from .types import Decision, DecisionContext, ResponseDecision

GENESIS = "0" * 64
KINDS = ("decision", "response", "approval", "event")


@dataclass(frozen=True)
class AuditEntry:
    """One audit record. ``seq``, ``prev_hash`` and ``hash`` are set by :meth:`AuditLog.append`."""

    kind: str
    outcome: str
    identity: str | None = None
    model: str | None = None
    digest: str | None = None
    provenance: str | None = None
    triggers: tuple[dict[str, Any], ...] = ()
    call: dict[str, Any] | None = None
    reasons: tuple[str, ...] = ()
    alerts: tuple[str, ...] = ()
    behaviours: tuple[str, ...] = ()
    policy_version: str | None = None
    request_id: str | None = None
    at: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    prev_hash: str = ""
    hash: str = ""

    @classmethod
    def for_decision(
        cls, context: DecisionContext, decision: Decision, **detail: Any
    ) -> AuditEntry:
        """The entry for one tool-call decision."""
        d = decision.to_dict()
        extra = {
            "tier": d["tier"],
            "privilege": d["privilege"],
            "ceiling": d["ceiling"],
            "destinations": list(decision.destinations),
        }
        if context.model.detail:
            extra["provenance_detail"] = context.model.detail
        extra.update(detail)
        return cls(
            kind="decision",
            outcome=decision.outcome.value,
            **_context_fields(context),
            call=redact_call(d["call"]),
            reasons=decision.reasons,
            alerts=decision.alerts,
            behaviours=decision.behaviours,
            policy_version=decision.policy_version,
            request_id=context.request_id,
            detail=extra,
        )

    @classmethod
    def for_response(
        cls, context: DecisionContext, decision: ResponseDecision, **detail: Any
    ) -> AuditEntry:
        """The entry for one screened response (the text itself is not stored)."""
        return cls(
            kind="response",
            outcome=decision.outcome.value,
            **_context_fields(context),
            reasons=decision.reasons,
            alerts=decision.alerts,
            behaviours=decision.behaviours,
            policy_version=decision.policy_version,
            request_id=context.request_id,
            detail={"redactions": decision.redactions, **detail},
        )

    def payload(self) -> dict[str, Any]:
        """What the hash covers: every field but ``hash``, JSON-ready.

        Built by hand: :func:`dataclasses.asdict` deep-copied every nested value and was the
        largest CPU cost per guarded request. Nested values are shared with the entry, which
        is frozen; the hash only reads them.
        """
        return {
            "kind": self.kind,
            "outcome": self.outcome,
            "identity": self.identity,
            "model": self.model,
            "digest": self.digest,
            "provenance": self.provenance,
            "triggers": list(self.triggers),
            "call": self.call,
            "reasons": list(self.reasons),
            "alerts": list(self.alerts),
            "behaviours": list(self.behaviours),
            "policy_version": self.policy_version,
            "request_id": self.request_id,
            "at": self.at,
            "detail": self.detail,
            "seq": self.seq,
            "prev_hash": self.prev_hash,
        }

    def compute_hash(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`payload`."""
        return hashlib.sha256(canonical(self.payload()).encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        d = self.payload()
        d["hash"] = self.hash
        return d


def canonical(obj: Any) -> str:
    """Sorted keys, no whitespace, non-ASCII escaped: the form the chain hashes.

    Escaping keeps the stored JSON plain ASCII, so a lone surrogate or a NUL in a request
    (both legal in JSON text) hashes, stores (PostgreSQL refuses NUL in text) and reads back
    to the same bytes.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


_COLUMNS = ("kind", "outcome", "identity", "model", "digest", "provenance", "policy_version")


def check_entry(entry: object) -> None:
    """Raise :class:`ConfigError` unless ``entry`` is an :class:`AuditEntry` that can be
    chained (a known kind, JSON-serialisable content)."""
    _check_kind(entry)
    try:
        canonical(entry.payload())  # type: ignore[attr-defined]
    except (TypeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"An audit entry's content cannot be serialised: {exc}") from None


def _check_kind(entry: object) -> None:
    if not isinstance(entry, AuditEntry):
        raise ConfigError(f"append needs an AuditEntry. Got {type(entry).__name__} instead.")
    if entry.kind not in KINDS:
        raise ConfigError(f"An audit entry's kind must be one of {KINDS}. Got {entry.kind!r}.")


def _bad(c: str) -> bool:
    return c == "\0" or 0xD800 <= ord(c) <= 0xDFFF


def _storable(entry: AuditEntry) -> AuditEntry:
    """Lone surrogates and NUL in the plain text columns replaced (U+FFFD), before hashing."""
    changes: dict[str, Any] = {}
    for name in (*_COLUMNS, "request_id", "at"):
        v = getattr(entry, name)
        if isinstance(v, str) and (not v.isascii() or "\0" in v):
            clean = "".join("\ufffd" if _bad(c) else c for c in v)
            if clean != v:
                changes[name] = clean
    return replace(entry, **changes) if changes else entry


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :meth:`AuditLog.verify`: ``ok``, or the first broken entry and why."""

    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_broken: int | None = None
    reason: str = ""


_DATA_KEYS = ("triggers", "call", "reasons", "alerts", "behaviours", "detail")


class AuditLog:
    """The hash-chained audit log. Open it with :meth:`open`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @classmethod
    def open(
        cls,
        url: str | os.PathLike[str] | None = None,
        *,
        timeout: float = 30.0,
        create: bool = True,
    ) -> AuditLog:
        """Open (creating if needed) the audit database.

        Parameters
        ----------
        url:
            ``sqlite:///path``, a file path, or ``postgresql://…``; ``None`` means
            ``$DORMANT_GUARD_AUDIT`` or ``guard-audit.sqlite3`` in the per-user data directory.
        timeout:
            Seconds to wait for the write lock (SQLite) or a connection (PostgreSQL).
        create:
            Create a missing SQLite file (``False`` for readers: a mistyped path is an error,
            not an empty, "intact" log).

        Raises
        ------
        RegistryError
            The database does not answer.
        InputNotFoundError
            ``create=False`` and the SQLite file does not exist.
        """
        return cls(Store(url, timeout=timeout, create=create))

    @property
    def store(self) -> Store:
        """The underlying database (shared with baselines and approvals)."""
        return self._store

    @property
    def display_url(self) -> str:
        return self._store.display_url

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, entry: AuditEntry, *, conn: Any = None) -> int:
        """Chain and commit ``entry``; returns its sequence number.

        The entry is committed (and, on SQLite, synced to disk) when this returns — release the
        decision to the caller only then. ``conn`` joins an open write transaction of the same
        store (used by approvals to record a decision and its audit entry together).
        """
        if conn is not None:
            return self._append(conn, [entry])[0]
        with self._store.tx() as c:
            return self._append(c, [entry])[0]

    def append_many(self, entries: list[AuditEntry]) -> list[int]:
        """Chain and commit several entries in one transaction (one sync to disk); their
        sequence numbers, in order. All are committed or none is."""
        if not entries:
            return []
        with self._store.tx() as c:
            return self._append(c, entries)

    def _append(self, conn: Any, entries: list[AuditEntry]) -> list[int]:
        head_select, head_update = _head_statements()
        for entry in entries:
            _check_kind(entry)
        head = conn.execute(head_select).first()
        seq = head.seq if head else 0
        prev = head.hash if head else GENESIS
        rows = []
        seqs = []
        for entry in entries:
            seq += 1
            e = replace(_storable(entry), seq=seq, prev_hash=prev, at=entry.at or _now())
            payload = e.payload()
            try:  # one serialisation per entry: the hash and the stored row share it
                digest = hashlib.sha256(canonical(payload).encode("utf-8")).hexdigest()
                data = canonical({k: payload[k] for k in _DATA_KEYS})
            except (TypeError, ValueError, RecursionError) as exc:
                raise ConfigError(f"An audit entry's content cannot be serialised: {exc}") from None
            rows.append(_row(e, digest, data))
            seqs.append(seq)
            prev = digest
        conn.execute(audit.insert(), rows)
        if head:
            conn.execute(head_update, {"seq": seq, "hash": prev})
        else:
            conn.execute(audit_head.insert().values(id=1, seq=seq, hash=prev))
        return seqs

    def entries(
        self,
        *,
        since: int = 0,
        limit: int | None = None,
        identity: str | None = None,
        kind: str | None = None,
        outcome: str | None = None,
    ) -> list[AuditEntry]:
        """Entries with ``seq > since``, oldest first, optionally filtered."""
        from sqlalchemy import select

        q = select(audit).where(audit.c.seq > since).order_by(audit.c.seq)
        if identity is not None:
            q = q.where(audit.c.identity == identity)
        if kind is not None:
            q = q.where(audit.c.kind == kind)
        if outcome is not None:
            q = q.where(audit.c.outcome == outcome)
        if limit is not None:
            q = q.limit(limit)
        with self._store.tx(write=False) as conn:
            return [_entry(r) for r in conn.execute(q)]

    def verify(self) -> VerifyResult:
        """Recompute the chain; name the first entry edited, inserted or removed."""
        from sqlalchemy import select

        with self._store.tx(write=False) as conn:
            head = conn.execute(select(audit_head).where(audit_head.c.id == 1)).first()
            rows = conn.execution_options(yield_per=2000).execute(
                select(audit).order_by(audit.c.seq)
            )
            try:
                return _check_chain(rows, head.seq if head else 0, head.hash if head else GENESIS)
            finally:
                rows.close()  # a broken entry stops the walk early: release the cursor


def _check_chain(rows: Any, head_seq: int, head_hash: str) -> VerifyResult:
    """Walk the rows in sequence order (streamed: memory does not grow with the log)."""
    prev = GENESIS
    n = 0
    last = 0
    for expected, r in enumerate(rows, start=1):
        n += 1
        try:
            e = _entry(r)
        except ValueError as exc:
            return VerifyResult(False, n, head_seq, head_hash, r.seq, f"unreadable: {exc}")
        if e.seq != expected:
            which = expected if e.seq > expected else e.seq
            why = (
                f"entry {expected} is missing (next is {e.seq})"
                if e.seq > expected
                else f"entry {e.seq} is out of order"
            )
            return VerifyResult(False, n, head_seq, head_hash, which, why)
        if e.prev_hash != prev:
            return VerifyResult(
                False,
                n,
                head_seq,
                head_hash,
                e.seq,
                f"entry {e.seq} does not follow entry {e.seq - 1} (prev_hash differs): "
                "an entry was inserted, removed or edited",
            )
        if e.compute_hash() != e.hash:
            return VerifyResult(
                False,
                n,
                head_seq,
                head_hash,
                e.seq,
                f"entry {e.seq} was edited (its hash does not match its content)",
            )
        prev = e.hash
        last = e.seq
    if head_seq != last or head_hash != prev:
        return VerifyResult(
            False,
            n,
            head_seq,
            head_hash,
            min(head_seq, last) + 1,
            f"the head record says entry {head_seq} ends the chain but the log ends at "
            f"entry {last}: entries were removed from or added at the end",
        )
    return VerifyResult(True, n, head_seq, head_hash)


def _row(e: AuditEntry, digest: str | None = None, data: str | None = None) -> dict[str, Any]:
    """The stored row; ``digest`` and ``data`` when the caller has serialised already."""
    if data is None:
        p = e.payload()
        data = canonical({k: p[k] for k in _DATA_KEYS})
    return {
        "seq": e.seq,
        "at": e.at,
        "kind": e.kind,
        "request_id": e.request_id,
        "identity": e.identity,
        "model": e.model,
        "digest": e.digest,
        "provenance": e.provenance,
        "outcome": e.outcome,
        "policy_version": e.policy_version,
        "data": data,
        "prev_hash": e.prev_hash,
        "hash": e.hash if digest is None else digest,
    }


@lru_cache(maxsize=1)
def _head_statements() -> tuple[Any, Any]:
    """The head record's select and update, built once (building a statement costs more CPU
    than SQLAlchemy's cached compile of it)."""
    from sqlalchemy import select

    where = audit_head.c.id == 1
    return select(audit_head).where(where), audit_head.update().where(where)


def _entry(r: Any) -> AuditEntry:
    data = json.loads(r.data)
    if not isinstance(data, dict):
        raise ValueError("the data column is not a JSON object")
    return AuditEntry(
        kind=r.kind,
        outcome=r.outcome,
        identity=r.identity,
        model=r.model,
        digest=r.digest,
        provenance=r.provenance,
        triggers=tuple(data.get("triggers", ())),
        call=data.get("call"),
        reasons=tuple(data.get("reasons", ())),
        alerts=tuple(data.get("alerts", ())),
        behaviours=tuple(data.get("behaviours", ())),
        policy_version=r.policy_version,
        request_id=r.request_id,
        at=r.at,
        detail=data.get("detail", {}),
        seq=r.seq,
        prev_hash=r.prev_hash,
        hash=r.hash,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


__all__ = ["AuditEntry", "AuditLog", "VerifyResult", "canonical", "redact_call"]


def _context_fields(context: DecisionContext) -> dict[str, Any]:
    """The fields every entry about a request takes from its context (who, which model)."""
    return {
        "identity": context.identity,
        "model": context.model.name,
        "digest": context.model.digest,
        "provenance": context.model.provenance.value,
        "triggers": tuple(t.to_dict() for t in context.triggers),
    }
