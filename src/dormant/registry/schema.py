"""Tables of the registry (SQLAlchemy Core). Changes go through an Alembic migration."""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

#: One row per content digest ever recorded.
artifacts = Table(
    "artifacts",
    metadata,
    Column("digest", String(80), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("path", Text, nullable=False),
    Column("first_seen", String(40), nullable=False),
    Column("last_seen", String(40), nullable=False),
)

#: Every path an artifact was seen at.
artifact_paths = Table(
    "artifact_paths",
    metadata,
    Column("digest", String(80), ForeignKey("artifacts.digest"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("seen_at", String(40), nullable=False),
)

#: Signing and verification events; the latest decides an artifact's status.
provenance_events = Table(
    "provenance_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("digest", String(80), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("method", String(16)),
    Column("signer", Text),
    Column("actor", String(128)),
    Column("signature", Text),
    Column("signed_digest", String(80)),
    Column("detail", Text),
    Column("at", String(40), nullable=False),
)

#: One row per recorded scan report.
scans = Table(
    "scans",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("subject_digest", String(80), nullable=False, index=True),
    Column("subject_kind", String(32), nullable=False),
    Column("subject_name", Text, nullable=False),
    Column("report_digest", String(80), nullable=False),
    Column("max_severity", String(16)),
    Column("severity_rank", Integer, nullable=False),
    Column("findings", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("started", String(40)),
    Column("finished", String(40)),
    Column("recorded_at", String(40), nullable=False),
    Column("report_json", Text, nullable=False),
)

#: Every digest a scan speaks about (its subject, its findings' subjects, its files).
scan_subjects = Table(
    "scan_subjects",
    metadata,
    Column("scan_id", String(36), ForeignKey("scans.id"), primary_key=True),
    Column("digest", String(80), primary_key=True),
    Index("ix_scan_subjects_digest", "digest"),
)

#: Triggers found by scans (finding.trigger), with their target and severity.
triggers = Table(
    "triggers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scan_id", String(36), ForeignKey("scans.id"), nullable=False, index=True),
    Column("subject_digest", String(80), nullable=False),
    Column("text", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("target", Text),
    Column("scanner", String(64), nullable=False),
    Column("category", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("score", Float, nullable=False),
    Column("recorded_at", String(40), nullable=False),
    Index("ix_triggers_kind_scanner", "kind", "scanner"),
)
