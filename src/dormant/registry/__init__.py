"""The registry: a database of artifacts by content digest, their provenance and their scans.

The runtime guard decides an agent's tool access from what is recorded here, so this is the
source of truth for "what is actually running":

- **artifacts** by digest (:mod:`dormant.provenance.hashing`), with every path seen;
- **provenance events** — signed, verified (by which key or certificate, by whom, when),
  tampered (which files), unverified — the latest decides :meth:`Registry.provenance_status`;
- **scan reports** (the full JSON, its digest, the subject digest, the maximum severity) and
  the digests each one speaks about;
- **triggers** the scans found (``finding.trigger`` with its target), for the guard's
  :meth:`Registry.known_triggers`.

Storage is SQLite by default — one file in the per-user data directory
(``platformdirs.user_data_dir("dormant")/registry.sqlite3``, or ``$DORMANT_REGISTRY``), in WAL
mode with ``BEGIN IMMEDIATE`` write transactions and a busy timeout, so several processes can
write at once — or PostgreSQL by URL (``postgresql://user@host/db``, driver psycopg 3). The
schema is created and upgraded by Alembic migrations when the registry is opened; concurrent
first opens are serialised (SQLite write lock, PostgreSQL advisory lock).

Needs ``pip install 'dormant[provenance]'``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from ..errors import ConfigError, RegistryError, require
from ..findings import Severity
from ..report import Report, _json_default
from .records import (
    ArtifactRecord,
    KnownTrigger,
    ProvenanceEvent,
    ProvenanceStatus,
    ScanRecord,
    current_actor,
    default_url,
    normalise_url,
)

EXTRA = "provenance"
STATUSES = ("signed", "verified", "tampered", "unverified")


class Registry:
    """The artifact / provenance / scan database.

    Parameters
    ----------
    url:
        ``sqlite:///path``, ``postgresql://user:pass@host:port/db`` or a file path
        (normalised by :func:`normalise_url`; ``None`` means :func:`default_url`).
    timeout:
        Seconds to wait for a connection (PostgreSQL) or a write lock (SQLite).
    create:
        Create a SQLite registry file (and its folder) that does not exist yet. Read-only
        callers pass ``False``: a missing file is then a :class:`RegistryError` naming the
        absolute path it was looked for at (``sqlite:///x.db`` is relative to the current
        directory, ``sqlite:////abs/x.db`` absolute).

    Use :meth:`open` to connect and migrate in one step.
    """

    def __init__(
        self,
        *,
        url: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
        create: bool = True,
    ):
        self.url = url
        self.timeout = timeout
        self.create = create
        self._engine: Any = None

    # -- connection ----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str | os.PathLike[str] | None = None,
        *,
        timeout: float = 30.0,
        create: bool = True,
    ) -> Registry:
        """Connect (creating a SQLite file if needed, unless ``create=False``) and bring the
        schema to the head revision.

        Raises
        ------
        RegistryError
            The database does not answer or cannot be migrated, or (``create=False``) the
            SQLite file does not exist.
        """
        reg = cls(url=url, timeout=timeout, create=create)
        reg.connect()
        return reg

    @property
    def display_url(self) -> str:
        """The URL with any password masked."""
        from sqlalchemy.engine import make_url

        return str(make_url(normalise_url(self.url)).render_as_string(hide_password=True))

    def connect(self) -> Registry:
        """Create the engine and run migrations (idempotent)."""
        if self._engine is not None:
            return self
        require("sqlalchemy", EXTRA)
        from sqlalchemy.exc import SQLAlchemyError

        from ._engine import make_engine, migrate

        if not isinstance(self.timeout, int | float) or self.timeout <= 0:
            raise ConfigError(f"The 'timeout' parameter must be > 0. Got {self.timeout!r}.")
        url = normalise_url(self.url)
        if not self.create:
            _require_existing_sqlite(url, self.url)
        try:
            engine = make_engine(url, timeout=float(self.timeout))
            migrate(engine)
        except SQLAlchemyError as exc:
            raise RegistryError(
                f"The registry at {self.display_url} does not answer or cannot be migrated: "
                f"{_short(exc)}"
            ) from exc
        self._engine = engine
        return self

    def close(self) -> None:
        """Release the connections."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> Registry:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[Any]:
        from sqlalchemy.exc import SQLAlchemyError

        self.connect()
        try:
            with self._engine.connect() as conn:
                if write:
                    conn = conn.execution_options(dormant_write=True)
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise RegistryError(f"Registry {self.display_url} failed: {_short(exc)}") from exc

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at."""
        from sqlalchemy import text

        with self._tx() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    # -- writes --------------------------------------------------------------------------

    def record_artifact(self, digest: str, path: str, kind: str) -> None:
        """Record that an artifact with this digest was seen at ``path`` (upsert)."""
        from ._engine import upsert
        from .schema import artifact_paths, artifacts

        _check_digest(digest)
        now = _now()
        with self._tx(write=True) as conn:
            upsert(
                conn,
                artifacts,
                {"digest": digest, "kind": kind, "path": path, "first_seen": now, "last_seen": now},
                keys=("digest",),
                update=("kind", "path", "last_seen"),
            )
            upsert(
                conn,
                artifact_paths,
                {"digest": digest, "path": path[:1024], "seen_at": now},
                keys=("digest", "path"),
                update=("seen_at",),
            )

    def record_provenance(
        self,
        digest: str,
        *,
        status: str,
        method: str | None = None,
        signer: str | None = None,
        signature: str | None = None,
        detail: str | None = None,
        signed_digest: str | None = None,
        actor: str | None = None,
    ) -> None:
        """Append a provenance event (``signed``, ``verified``, ``tampered``, ``unverified``)."""
        from .schema import provenance_events

        _check_digest(digest)
        if status not in STATUSES:
            raise ConfigError(
                f"The 'status' parameter must be one of {', '.join(STATUSES)}. Got {status!r}."
            )
        if actor is None:
            actor = current_actor()
        row = {
            "digest": digest,
            "status": status,
            "method": method,
            "signer": signer,
            "actor": actor,
            "signature": signature,
            "signed_digest": signed_digest,
            "detail": detail,
            "at": _now(),
        }
        with self._tx(write=True) as conn:
            conn.execute(provenance_events.insert().values(**row))

    def record_scan(self, report: Report | dict[str, Any]) -> str:
        """Store a scan report, the digests it covers and the triggers it found.

        Returns the new scan id. Accepts a :class:`~dormant.report.Report` or its
        ``to_dict()`` form (e.g. a ``report.json`` read back).
        """
        from .._canonical import report_digest
        from .schema import scan_subjects, scans, triggers

        data = report.to_dict() if isinstance(report, Report) else report
        try:
            text = json.dumps(data, ensure_ascii=False, default=_json_default)
            data = json.loads(text)
            subject = data["subject"]
            findings = data["findings"]
        except (TypeError, ValueError, KeyError) as exc:
            raise ConfigError(f"record_scan needs a dormant Report; got {exc}") from exc
        _check_digest(subject["digest"])
        sev = data.get("summary", {}).get("max_severity")
        now = _now()
        scan_id = str(uuid.uuid4())
        digests = {subject["digest"]} | {f["subject"]["digest"] for f in findings}
        for f in data.get("extras", {}).get("files", []) or []:
            if isinstance(f, dict) and isinstance(f.get("digest"), str):
                digests.add(f["digest"])
        trig_rows = [
            {
                "scan_id": scan_id,
                "subject_digest": f["subject"]["digest"],
                "text": f["trigger"]["text"],
                "kind": f["trigger"]["kind"],
                "target": f.get("target"),
                "scanner": f["scanner"],
                "category": f["category"],
                "severity": f["severity"],
                "score": float(f["score"]),
                "recorded_at": now,
            }
            for f in findings
            if f.get("trigger")
        ]
        with self._tx(write=True) as conn:
            conn.execute(
                scans.insert().values(
                    id=scan_id,
                    subject_digest=subject["digest"],
                    subject_kind=subject.get("kind", ""),
                    subject_name=subject.get("name", ""),
                    report_digest=report_digest(data),
                    max_severity=sev,
                    severity_rank=Severity(sev).rank if sev else -1,
                    findings=len(findings),
                    errors=len(data.get("errors", [])),
                    started=data.get("run", {}).get("started"),
                    finished=data.get("run", {}).get("finished"),
                    recorded_at=now,
                    report_json=text,
                )
            )
            conn.execute(
                scan_subjects.insert(), [{"scan_id": scan_id, "digest": d} for d in digests]
            )
            if trig_rows:
                conn.execute(triggers.insert(), trig_rows)
        return scan_id

    # -- reads ---------------------------------------------------------------------------

    def provenance_status(self, digest: str) -> ProvenanceStatus:
        """The artifact's provenance: the latest event decides (``unknown`` if never seen)."""
        from sqlalchemy import select

        from .schema import artifacts, provenance_events

        with self._tx() as conn:
            rows = conn.execute(
                select(provenance_events)
                .where(provenance_events.c.digest == digest)
                .order_by(provenance_events.c.id)
            ).all()
            known = conn.execute(
                select(artifacts.c.digest).where(artifacts.c.digest == digest)
            ).first()
        history = tuple(
            ProvenanceEvent(
                r.status, r.method, r.signer, r.actor, r.signature, r.signed_digest, r.detail, r.at
            )
            for r in rows
        )
        if not history:
            return ProvenanceStatus(digest, "unverified" if known else "unknown")
        last = history[-1]
        return ProvenanceStatus(
            digest, last.status, last.method, last.signer, last.actor, last.at, last.detail, history
        )

    def artifacts(self, *, kind: str | None = None, limit: int = 100) -> list[ArtifactRecord]:
        """Artifacts, most recently seen first."""
        from sqlalchemy import select

        from .schema import artifacts

        q = select(artifacts).order_by(artifacts.c.last_seen.desc()).limit(limit)
        if kind:
            q = q.where(artifacts.c.kind == kind)
        with self._tx() as conn:
            return [
                ArtifactRecord(r.digest, r.kind, r.path, r.first_seen, r.last_seen)
                for r in conn.execute(q)
            ]

    def artifact(self, digest: str) -> ArtifactRecord | None:
        """One artifact by digest or by a unique prefix of it (``sha256:`` optional)."""
        from sqlalchemy import select

        from .schema import artifact_paths, artifacts

        prefix = digest if digest.startswith("sha256:") else "sha256:" + digest
        with self._tx() as conn:
            rows = conn.execute(
                select(artifacts)
                .where(artifacts.c.digest.startswith(prefix, autoescape=True))
                .limit(2)
            ).all()
            if len(rows) > 1:
                raise ConfigError(f"Digest prefix {digest!r} matches several artifacts.")
            if not rows:
                return None
            r = rows[0]
            paths = conn.execute(
                select(artifact_paths.c.path).where(artifact_paths.c.digest == r.digest)
            ).scalars()
            return ArtifactRecord(r.digest, r.kind, r.path, r.first_seen, r.last_seen, tuple(paths))

    def scans_for(self, digest: str, *, limit: int = 50) -> list[ScanRecord]:
        """Scans whose subject, findings or files include this digest, newest first."""
        from sqlalchemy import select

        from .schema import scan_subjects, scans

        q = (
            select(scans)
            .join(scan_subjects, scan_subjects.c.scan_id == scans.c.id)
            .where(scan_subjects.c.digest == digest)
            .order_by(scans.c.recorded_at.desc())
            .limit(limit)
        )
        with self._tx() as conn:
            return [_scan_record(r) for r in conn.execute(q)]

    def known_triggers(self, *, min_severity: Severity | str | None = None) -> list[KnownTrigger]:
        """Every distinct trigger (text, kind, target) found by recorded scans, worst first."""
        from sqlalchemy import select

        from .schema import triggers

        floor = Severity.parse(min_severity, param="min_severity") if min_severity else None
        with self._tx() as conn:
            rows = conn.execute(select(triggers).order_by(triggers.c.id)).all()
        groups: dict[tuple[str, str, str | None], dict[str, Any]] = {}
        for r in rows:
            g = groups.setdefault(
                (r.text, r.kind, r.target),
                {
                    "sev": Severity(r.severity),
                    "scans": set(),
                    "subjects": [],
                    "first": r.recorded_at,
                },
            )
            g["sev"] = max(g["sev"], Severity(r.severity), key=lambda s: s.rank)
            g["scans"].add(r.scan_id)
            if r.subject_digest not in g["subjects"]:
                g["subjects"].append(r.subject_digest)
            g["last"] = r.recorded_at
        out = [
            KnownTrigger(
                text,
                kind,
                target,
                g["sev"].value,
                len(g["scans"]),
                tuple(g["subjects"]),
                g["first"],
                g["last"],
            )
            for (text, kind, target), g in groups.items()
            if floor is None or g["sev"] >= floor
        ]
        out.sort(key=lambda t: (-Severity(t.max_severity).rank, -t.scans, t.text))
        return out


def _scan_record(r: Any) -> ScanRecord:
    return ScanRecord(
        r.id,
        r.subject_digest,
        r.subject_kind,
        r.subject_name,
        r.report_digest,
        r.max_severity,
        r.findings,
        r.errors,
        r.finished,
        r.recorded_at,
        json.loads(r.report_json),
    )


def _check_digest(digest: object) -> None:
    if not isinstance(digest, str) or ":" not in digest or len(digest) > 80:
        raise ConfigError(
            f"A registry digest must look like 'sha256:<hex>'. Got {digest!r} instead."
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


__all__ = [
    "ArtifactRecord",
    "KnownTrigger",
    "ProvenanceEvent",
    "ProvenanceStatus",
    "Registry",
    "ScanRecord",
    "default_url",
    "normalise_url",
]


def _require_existing_sqlite(url: str, given: object) -> None:
    """A read must not create a registry: refuse a SQLite URL whose file does not exist."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    db = parsed.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return
    path = Path(db).expanduser()
    if not path.is_file():
        raise RegistryError(
            f"No registry at {path.absolute()} (from {given or url!s}); nothing is created by "
            "a read command. sqlite:///NAME is relative to the current directory, "
            "sqlite:////ABS/NAME absolute; record a scan with --registry first."
        )
