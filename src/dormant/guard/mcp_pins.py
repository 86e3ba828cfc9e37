"""Pinned MCP tool definitions: a changed tool description is noticed and the tool is denied.

An MCP server describes its tools to the model in free text (name, description, input schema),
so a server that changes a description after it was approved can plant instructions in the
model's context or widen what a tool does — "tool poisoning" and the "rug pull" of Invariant
Labs' MCP security notes (2025) and the MCP specification's security best practices. The remedy
they describe, and what ``mcp-scan`` calls tool pinning, is kept here: the first time a
gateway sees a tool, the SHA-256 of its canonical definition is recorded (trust on first use);
a later listing whose digest differs marks the tool ``changed``, raises the critical alert
``tool-definition-changed`` in the audit chain, and the tool is withheld and denied until an
operator approves the new definition (:meth:`ToolPins.approve`, ``dormant guard mcp-tools
approve``).

The digest covers exactly ``name``, ``description`` and ``inputSchema`` as canonical JSON
(keys sorted, no insignificant whitespace, UTF-8 — the subset of RFC 8785 JSON Canonicalization
these values need; there are no floats in a schema we re-encode differently). The pins live in
the guard's own database (the audit log's; SQLite or PostgreSQL), table ``guard_mcp_tools``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, Text, select

from ..errors import ConfigError
from .audit import AuditEntry, AuditLog

__all__ = ["PinnedTool", "ToolPins", "tool_definition", "tool_digest"]

ALERT_CHANGED = "tool-definition-changed"

_metadata = MetaData()

#: One row per (server, tool): the approved definition and the last one seen.
mcp_tools = Table(
    "guard_mcp_tools",
    _metadata,
    Column("server", String(512), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("status", String(16), nullable=False),  # approved | changed
    Column("digest", String(64), nullable=False),  # the approved definition's
    Column("definition", Text, nullable=False),
    Column("seen_digest", String(64), nullable=False),  # the last listing's
    Column("seen_definition", Text, nullable=False),
    Column("first_seen", String(40), nullable=False),
    Column("changed_at", String(40)),
    Column("approved_at", String(40)),
)


def _attr(obj: Any, *names: str) -> Any:
    if isinstance(obj, dict):
        for n in names:
            if obj.get(n) is not None:
                return obj[n]
        return None
    for n in names:
        val = getattr(obj, n, None)
        if val is not None:
            return val
    return None


def tool_definition(tool: Any) -> dict[str, Any]:
    """What is pinned of an MCP ``Tool`` (SDK object or dict): name, description, input schema."""
    name = _attr(tool, "name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"An MCP tool definition needs a 'name' string. Got {name!r}.")
    schema = _attr(tool, "input_schema", "inputSchema")
    if hasattr(schema, "model_dump"):
        schema = schema.model_dump(by_alias=True, exclude_none=True)
    return {
        "name": name,
        "description": str(_attr(tool, "description") or ""),
        "inputSchema": schema if isinstance(schema, dict) else {},
    }


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def tool_digest(tool: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of :func:`tool_definition`."""
    return hashlib.sha256(_canonical(tool_definition(tool)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PinnedTool:
    """Where one tool of one server stands.

    ``status`` is ``approved`` (the listing matches the approved definition) or ``changed``
    (it does not: the tool is withheld and denied until approved again).
    """

    server: str
    name: str
    status: str
    digest: str
    seen_digest: str
    first_seen: str
    changed_at: str | None = None
    approved_at: str | None = None

    @property
    def approved(self) -> bool:
        return self.status == "approved"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _pinned(row: Any) -> PinnedTool:
    return PinnedTool(
        server=row.server,
        name=row.name,
        status=row.status,
        digest=row.digest,
        seen_digest=row.seen_digest,
        first_seen=row.first_seen,
        changed_at=row.changed_at,
        approved_at=row.approved_at,
    )


class ToolPins:
    """The pinned tool definitions in the guard database of ``log``.

    Parameters
    ----------
    log:
        The audit log; its database holds the pins, and every new pin, change and approval is
        appended to its chain.
    """

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        with log.store.tx() as conn:
            _metadata.create_all(conn, checkfirst=True)

    def check(
        self, server: str, tools: Iterable[Any], *, identity: str | None = None
    ) -> dict[str, PinnedTool]:
        """Compare a listing with the pins; record new tools, mark and alert changed ones.

        Returns every listed tool's :class:`PinnedTool` by name. A change is alerted once (when
        it is first seen, or when the definition changes again), not at every listing.
        """
        out: dict[str, PinnedTool] = {}
        with self.log.store.tx(write=False) as conn:  # one read; a write only on a change
            known = {
                r.name: r
                for r in conn.execute(select(mcp_tools).where(mcp_tools.c.server == server))
            }
        for tool in tools:
            definition = tool_definition(tool)
            name = definition["name"]
            text = _canonical(definition)
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            seen = known.get(name)
            if seen is not None and (
                (seen.status == "approved" and digest == seen.digest)
                or (seen.status == "changed" and digest == seen.seen_digest)
            ):
                out[name] = _pinned(seen)
                continue
            event: AuditEntry | None = None
            with self.log.store.tx() as conn:
                key = (mcp_tools.c.server == server) & (mcp_tools.c.name == name)
                row = conn.execute(select(mcp_tools).where(key)).first()
                now = _now()
                if row is None:
                    conn.execute(
                        mcp_tools.insert().values(
                            server=server,
                            name=name,
                            status="approved",
                            digest=digest,
                            definition=text,
                            seen_digest=digest,
                            seen_definition=text,
                            first_seen=now,
                            approved_at=now,
                        )
                    )
                    event = _event(
                        "recorded",
                        server,
                        name,
                        identity,
                        (f"MCP tool {name!r} of {server} pinned on first sight (sha256 {digest})",),
                        digest=digest,
                    )
                elif digest != row.digest and digest != row.seen_digest:
                    conn.execute(
                        mcp_tools.update()
                        .where(key)
                        .values(
                            status="changed",
                            seen_digest=digest,
                            seen_definition=text,
                            changed_at=now,
                        )
                    )
                    event = _event(
                        "alert",
                        server,
                        name,
                        identity,
                        (
                            f"MCP tool {name!r} of {server} changed its definition since it was "
                            f"approved (sha256 {row.digest[:12]}… → {digest[:12]}…): withheld "
                            "and denied until approved again",
                        ),
                        alerts=(ALERT_CHANGED,),
                        digest=digest,
                        approved_digest=row.digest,
                        approved_definition=json.loads(row.definition),
                        seen_definition=definition,
                    )
                elif digest == row.digest and row.status != "approved":
                    # the server went back to the approved definition: approved again
                    conn.execute(
                        mcp_tools.update()
                        .where(key)
                        .values(status="approved", seen_digest=digest, seen_definition=text)
                    )
                if event is not None:
                    self.log.append(event, conn=conn)
                row = conn.execute(select(mcp_tools).where(key)).first()
            out[name] = _pinned(row)
        return out

    def approve(self, server: str, name: str, *, by: str | None = None) -> PinnedTool:
        """Approve the last seen definition of a tool (after reading it).

        Raises
        ------
        ConfigError
            No such tool is pinned for ``server``.
        """
        with self.log.store.tx() as conn:
            key = (mcp_tools.c.server == server) & (mcp_tools.c.name == name)
            row = conn.execute(select(mcp_tools).where(key)).first()
            if row is None:
                known = ", ".join(p.name for p in self.list(server)) or "none"
                raise ConfigError(
                    f"No MCP tool {name!r} is pinned for server {server!r} (pinned: {known})."
                )
            conn.execute(
                mcp_tools.update()
                .where(key)
                .values(
                    status="approved",
                    digest=row.seen_digest,
                    definition=row.seen_definition,
                    approved_at=_now(),
                )
            )
            self.log.append(
                _event(
                    "approved",
                    server,
                    name,
                    by,
                    (f"MCP tool {name!r} of {server} approved at sha256 {row.seen_digest}",),
                    digest=row.seen_digest,
                    previous_digest=row.digest,
                ),
                conn=conn,
            )
            row = conn.execute(select(mcp_tools).where(key)).first()
        return _pinned(row)

    def list(self, server: str | None = None) -> list[PinnedTool]:
        """Every pin (of one server), by server and name."""
        query = select(mcp_tools).order_by(mcp_tools.c.server, mcp_tools.c.name)
        if server is not None:
            query = query.where(mcp_tools.c.server == server)
        with self.log.store.tx(write=False) as conn:
            return [_pinned(r) for r in conn.execute(query)]

    def definition(self, server: str, name: str, *, seen: bool = True) -> dict[str, Any] | None:
        """The last seen (or the approved) definition of a pinned tool."""
        with self.log.store.tx(write=False) as conn:
            key = (mcp_tools.c.server == server) & (mcp_tools.c.name == name)
            row = conn.execute(select(mcp_tools).where(key)).first()
        if row is None:
            return None
        loaded: dict[str, Any] = json.loads(row.seen_definition if seen else row.definition)
        return loaded


def _event(
    outcome: str,
    server: str,
    name: str,
    identity: str | None,
    reasons: tuple[str, ...],
    *,
    alerts: tuple[str, ...] = (),
    **detail: Any,
) -> AuditEntry:
    return AuditEntry(
        kind="event",
        outcome=outcome,
        identity=identity,
        call={"tool": name},
        reasons=reasons,
        alerts=alerts,
        detail={"face": "mcp", "event": f"mcp-tool-{outcome}", "server": server, **detail},
    )
