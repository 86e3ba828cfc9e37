"""Initial registry schema: artifacts, paths, provenance events, scans, subjects, triggers.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("digest", sa.String(80), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("first_seen", sa.String(40), nullable=False),
        sa.Column("last_seen", sa.String(40), nullable=False),
    )
    op.create_table(
        "artifact_paths",
        sa.Column("digest", sa.String(80), sa.ForeignKey("artifacts.digest"), primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("seen_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "provenance_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("method", sa.String(16)),
        sa.Column("signer", sa.Text),
        sa.Column("actor", sa.String(128)),
        sa.Column("signature", sa.Text),
        sa.Column("signed_digest", sa.String(80)),
        sa.Column("detail", sa.Text),
        sa.Column("at", sa.String(40), nullable=False),
    )
    op.create_index("ix_provenance_events_digest", "provenance_events", ["digest"])
    op.create_table(
        "scans",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("subject_digest", sa.String(80), nullable=False),
        sa.Column("subject_kind", sa.String(32), nullable=False),
        sa.Column("subject_name", sa.Text, nullable=False),
        sa.Column("report_digest", sa.String(80), nullable=False),
        sa.Column("max_severity", sa.String(16)),
        sa.Column("severity_rank", sa.Integer, nullable=False),
        sa.Column("findings", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("started", sa.String(40)),
        sa.Column("finished", sa.String(40)),
        sa.Column("recorded_at", sa.String(40), nullable=False),
        sa.Column("report_json", sa.Text, nullable=False),
    )
    op.create_index("ix_scans_subject_digest", "scans", ["subject_digest"])
    op.create_table(
        "scan_subjects",
        sa.Column("scan_id", sa.String(36), sa.ForeignKey("scans.id"), primary_key=True),
        sa.Column("digest", sa.String(80), primary_key=True),
    )
    op.create_index("ix_scan_subjects_digest", "scan_subjects", ["digest"])
    op.create_table(
        "triggers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scan_id", sa.String(36), sa.ForeignKey("scans.id"), nullable=False),
        sa.Column("subject_digest", sa.String(80), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.Text),
        sa.Column("scanner", sa.String(64), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("recorded_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_triggers_scan_id", "triggers", ["scan_id"])
    op.create_index("ix_triggers_kind_scanner", "triggers", ["kind", "scanner"])


def downgrade() -> None:
    for name in ("triggers", "scan_subjects", "scans", "provenance_events", "artifact_paths"):
        op.drop_table(name)
    op.drop_table("artifacts")
