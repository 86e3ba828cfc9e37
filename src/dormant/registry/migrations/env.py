"""Alembic environment: runs on the connection the registry hands over (never from a URL)."""

from __future__ import annotations

from alembic import context

from dormant.registry.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # Serialise concurrent first-time migrations across processes.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(726567)")
    context.run_migrations()
