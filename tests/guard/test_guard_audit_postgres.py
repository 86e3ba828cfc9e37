"""The guard's audit chain, approvals and baselines on a real PostgreSQL server on loopback.

The server is started as in ``test_registry_postgres.py`` (skipped, with the reason, only when
the PostgreSQL server binaries are absent).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("psycopg", reason="needs the 'provenance' extra")

from _postgres import _create_database, pg_url  # noqa: F401 (a fixture)
from test_guard_audit import SRC, WRITER

from dormant.guard.audit import AuditEntry, AuditLog
from dormant.guard.monitor import Baseline


def test_postgres_chain_verify_and_tamper(pg_url):  # noqa: F811
    url = _create_database(pg_url, "guard_audit")
    with AuditLog.open(url) as log:
        assert log.store.dialect == "postgresql"
        for i in range(5):
            log.append(
                AuditEntry(kind="decision", outcome="allow", identity="bot", request_id=str(i))
            )
        odd = {"tool": "t", "arguments": {"a": "nul \x00 and lone \ud800 surrogate"}}
        log.append(AuditEntry(kind="decision", outcome="deny", model="m\x00", call=odd))
        assert log.verify().ok
        base = Baseline(log.store, learning_decisions=1)
        base.observe("m", "bot", "lookup_order")
        assert base.alerts_for("m", "bot", "send_email") == ("new-tool",)
        with log.store.tx() as conn:
            conn.exec_driver_sql("UPDATE guard_audit SET outcome='deny' WHERE seq=4")
        res = log.verify()
    assert not res.ok and res.first_broken == 4


def test_postgres_concurrent_appends_keep_the_chain(pg_url):  # noqa: F811
    url = _create_database(pg_url, "guard_busy")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER.format(src=SRC, url=url, n=25, w=w)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with AuditLog.open(url) as log:
        res = log.verify()
    assert res.ok and res.entries == 50, res


def test_postgres_guard_service_from_threads(pg_url, tmp_path):  # noqa: F811
    from concurrent.futures import ThreadPoolExecutor

    from _guard_policy import MODEL, write_policy

    from dormant.guard import Guard, GuardPolicy, ProposedCall

    url = _create_database(pg_url, "guard_service")
    policy = GuardPolicy.load(write_policy(tmp_path))
    with AuditLog.open(url) as log:
        guard = Guard(policy, audit=log)
        ctx = guard.context("support-bot", MODEL, [("message[0]", "where is order 7?")])
        call = ProposedCall("lookup_order", {"id": "7"})
        with ThreadPoolExecutor(8) as ex:
            decisions = list(ex.map(lambda _: guard.check_call(ctx, call), range(40)))
        guard.close()
        assert all(d.allowed for d in decisions)  # unknown provenance still allows read
        assert sorted(d.audit_seq for d in decisions) == list(range(1, 41))
        assert log.verify().ok and guard.baseline.view(MODEL, "support-bot").decisions == 40
