"""The registry against a real PostgreSQL server, started here on loopback in a temp directory.

Needs Debian's ``postgresql`` package (``apt-get install -y postgresql``: ``initdb`` and
``pg_ctl`` under ``/usr/lib/postgresql/<version>/bin``). PostgreSQL refuses to run as root, so
under root the server runs as the ``postgres`` user the package creates (via ``runuser``).
Skipped, with the reason, only when the server binaries are absent.
"""

from __future__ import annotations

import pytest

pytest.importorskip("psycopg", reason="needs the 'provenance' extra")

from _postgres import _create_database, pg_url  # noqa: F401 (a fixture)
from _registry_helpers import DIGEST, exercise_registry, poisoned_report, run_writers

from dormant.registry import Registry


def test_postgres_registry_behaviour(pg_url):  # noqa: F811
    url = _create_database(pg_url, "behaviour")
    with Registry.open(url) as reg:
        assert reg._engine.dialect.name == "postgresql"
        exercise_registry(reg)
    with Registry.open(url) as reg:  # reopen: schema already at head, data kept
        assert len(reg.scans_for(DIGEST)) == 2


def test_postgres_concurrent_writers_on_a_fresh_database(pg_url):  # noqa: F811
    url = _create_database(pg_url, "busy")
    run_writers(url, writers=3, each=10)  # the first opens race on the migration too
    with Registry.open(url) as reg:
        assert len(reg.artifacts(limit=1000)) == 30
        assert sum(t.scans for t in reg.known_triggers()) == 2 * 30
        reg.record_scan(poisoned_report())
        assert reg.known_triggers()[0].scans == 31
