"""Typed records the registry returns, and how a registry URL is resolved."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, require

EXTRA = "provenance"
#: The Alembic revision a registry database is migrated to.
HEAD_REVISION = "0001"


def current_actor() -> str:
    """Who is recording: the login name, else the numeric user id, else ``"unknown"``."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


@dataclass(frozen=True)
class ProvenanceEvent:
    """One signing or verification event."""

    status: str
    method: str | None
    signer: str | None
    actor: str | None
    signature: str | None
    signed_digest: str | None
    detail: str | None
    at: str


@dataclass(frozen=True)
class ProvenanceStatus:
    """Where an artifact stands: ``verified``, ``signed``, ``tampered``, ``unverified`` or
    ``unknown`` (never recorded). The fields repeat the latest event; ``history`` has all."""

    digest: str
    status: str
    method: str | None = None
    signer: str | None = None
    actor: str | None = None
    at: str | None = None
    detail: str | None = None
    history: tuple[ProvenanceEvent, ...] = ()

    @property
    def trusted(self) -> bool:
        """Only a successful verification makes an artifact trusted."""
        return self.status == "verified"


@dataclass(frozen=True)
class ArtifactRecord:
    """An artifact: digest, kind, last path, first and last seen, every path seen."""

    digest: str
    kind: str
    path: str
    first_seen: str
    last_seen: str
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScanRecord:
    """A recorded scan; ``report`` is the full report as JSON-ready data."""

    id: str
    subject_digest: str
    subject_kind: str
    subject_name: str
    report_digest: str
    max_severity: str | None
    findings: int
    errors: int
    finished: str | None
    recorded_at: str
    report: dict[str, Any]


@dataclass(frozen=True)
class KnownTrigger:
    """A trigger recorded by one or more scans, with the worst severity seen."""

    text: str
    kind: str
    target: str | None
    max_severity: str
    scans: int
    subjects: tuple[str, ...]
    first_seen: str
    last_seen: str


def default_url() -> str:
    """``$DORMANT_REGISTRY`` or the SQLite file in the per-user data directory."""
    env = os.environ.get("DORMANT_REGISTRY")
    if env:
        return env
    platformdirs = require("platformdirs", EXTRA)
    base = Path(platformdirs.user_data_dir("dormant", appauthor=False))  # type: ignore[attr-defined]
    return f"sqlite:///{base / 'registry.sqlite3'}"


def normalise_url(url: str | os.PathLike[str] | None) -> str:
    """A SQLAlchemy URL from ``None``, a file path, ``sqlite:///...`` or ``postgresql://...``."""
    raw = default_url() if url is None else os.fspath(url)
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"The 'url' parameter must be a database URL or a path. Got {url!r}.")
    if "://" not in raw:
        return f"sqlite:///{Path(raw).expanduser().resolve()}"
    scheme, _, rest = raw.partition("://")
    scheme = scheme.lower()
    if scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        return f"postgresql+psycopg://{rest}"
    if scheme == "sqlite":
        return raw
    raise ConfigError(
        "The registry URL must start with sqlite:/// or postgresql:// (or be a file path). "
        f"Got {raw!r}."
    )
