"""The guard's tables (audit chain, its head, monitoring baselines, held calls) and engine.

They live in their own database (SQLite file by default, PostgreSQL by URL), created with
``metadata.create_all`` under the write lock; the engine comes from the registry's
:func:`dormant.registry._engine.make_engine` (WAL, busy timeout, ``BEGIN IMMEDIATE`` writers),
with SQLite's ``synchronous=FULL`` added so a committed decision survives a power cut.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputNotFoundError, RegistryError, require

require("sqlalchemy", "provenance")  # the audit database: SQLite built in, PostgreSQL by URL

from sqlalchemy import (  # noqa: E402
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
    text,
)

metadata = MetaData()

#: One row per decision, approval or screened response; ``hash`` chains each to the previous.
audit = Table(
    "guard_audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", String(40), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("request_id", String(128)),
    Column("identity", String(256)),
    Column("model", String(256)),
    Column("digest", String(80)),
    Column("provenance", String(16)),
    Column("outcome", String(16), nullable=False),
    Column("policy_version", String(80)),
    Column("data", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_guard_audit_identity", "identity"),
)

#: The chain's head, kept apart so a deleted last entry is noticed.
audit_head = Table(
    "guard_audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

#: Tools and destinations seen per (model, identity).
baseline = Table(
    "guard_baseline",
    metadata,
    Column("model", String(256), primary_key=True),
    Column("identity", String(256), primary_key=True),
    Column("kind", String(16), primary_key=True),  # "tool" or "destination"
    Column("value", String(512), primary_key=True),
    Column("first_seen", String(40), nullable=False),
    Column("count", Integer, nullable=False),
)

#: Decisions observed per (model, identity): the learning period's clock.
baseline_counts = Table(
    "guard_baseline_counts",
    metadata,
    Column("model", String(256), primary_key=True),
    Column("identity", String(256), primary_key=True),
    Column("decisions", Integer, nullable=False),
)

#: Calls held for approval.
holds = Table(
    "guard_holds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created", String(40), nullable=False),
    Column("audit_seq", Integer),
    Column("request_id", String(128)),
    Column("identity", String(256)),
    Column("model", String(256)),
    Column("call", Text, nullable=False),
    Column("reasons", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending, approved, denied
    Column("decided_by", String(256)),
    Column("decided_at", String(40)),
    Column("note", Text),
)

_LOCK_KEY = 0x6775617264  # "guard": the PostgreSQL advisory lock serialising the chain


def default_audit_url() -> str:
    """``$DORMANT_GUARD_AUDIT`` or ``guard-audit.sqlite3`` in the per-user data directory."""
    env = os.environ.get("DORMANT_GUARD_AUDIT")
    if env:
        return env
    platformdirs = require("platformdirs", "provenance")
    base = Path(platformdirs.user_data_dir("dormant", appauthor=False))  # type: ignore[attr-defined]
    return f"sqlite:///{base / 'guard-audit.sqlite3'}"


class Store:
    """An engine on the guard database with the tables created (idempotent)."""

    def __init__(
        self, url: str | os.PathLike[str] | None, *, timeout: float = 30.0, create: bool = True
    ) -> None:
        require("sqlalchemy", "provenance")
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import SQLAlchemyError

        from ..registry._engine import make_engine
        from ..registry.records import normalise_url

        if not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(f"The 'timeout' parameter must be > 0. Got {timeout!r}.")
        raw = default_audit_url() if url is None else url
        self.url = normalise_url(raw)
        parsed = make_url(self.url)
        self.display_url = parsed.render_as_string(hide_password=True)
        if not create and parsed.get_backend_name() == "sqlite":
            db = parsed.database
            if not db or db == ":memory:" or not Path(db).is_file():
                raise InputNotFoundError(
                    f"There is no guard database at {self.display_url} (nothing was recorded "
                    "there yet, or the path is wrong)."
                )
        try:
            self.engine = make_engine(self.url, timeout=float(timeout))
            if self.engine.dialect.name == "sqlite":

                @event.listens_for(self.engine, "connect")
                def _durable(dbapi_conn: Any, record: Any) -> None:
                    cur = dbapi_conn.cursor()
                    cur.execute("PRAGMA synchronous=FULL")
                    cur.close()

            with self.tx() as conn:
                metadata.create_all(conn, checkfirst=True)
        except RegistryError as exc:
            raise RegistryError(
                f"The guard database at {self.display_url} does not answer: "
                f"{_short(exc.__cause__ or exc)}"
            ) from exc
        except SQLAlchemyError as exc:
            raise RegistryError(
                f"The guard database at {self.display_url} does not answer: {_short(exc)}"
            ) from exc

    @property
    def dialect(self) -> str:
        return str(self.engine.dialect.name)

    @contextmanager
    def tx(self, *, write: bool = True) -> Iterator[Any]:
        """A transaction; a write one holds the chain's lock until it commits."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self.engine.connect() as conn:
                if write:
                    conn = conn.execution_options(dormant_write=True)
                with conn.begin():
                    if write and conn.dialect.name == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
                    yield conn
        except SQLAlchemyError as exc:
            raise RegistryError(
                f"The guard database {self.display_url} failed: {_short(exc)}"
            ) from exc

    def close(self) -> None:
        self.engine.dispose()


def _short(exc: BaseException) -> str:
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
