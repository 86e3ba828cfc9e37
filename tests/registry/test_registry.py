"""The registry on SQLite: records, provenance status, triggers, migrations, concurrent writers.

The same behaviour against a real PostgreSQL server is in ``test_registry_postgres.py``; the
checks shared by both live in :func:`exercise_registry`.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("sqlalchemy", reason="needs the 'provenance' extra")

from _registry_helpers import DIGEST, exercise_registry, run_writers

from dormant.cli import EXIT_SCAN_ERROR, EXIT_USAGE, main
from dormant.errors import ConfigError, RegistryError
from dormant.registry import Registry, normalise_url


def test_sqlite_registry_behaviour(tmp_path):
    with Registry.open(tmp_path / "reg.sqlite3") as reg:
        exercise_registry(reg)
    # reopening does not re-run migrations or lose data
    with Registry.open(f"sqlite:///{tmp_path / 'reg.sqlite3'}") as reg:
        assert len(reg.scans_for(DIGEST)) == 2
        mode = reg._engine.connect().exec_driver_sql("PRAGMA journal_mode").scalar()
        assert mode == "wal"


def test_default_location_and_urls(tmp_path, monkeypatch):
    monkeypatch.setenv("DORMANT_REGISTRY", str(tmp_path / "env.sqlite3"))
    assert normalise_url(None) == f"sqlite:///{tmp_path / 'env.sqlite3'}"
    monkeypatch.delenv("DORMANT_REGISTRY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert normalise_url(None).endswith("dormant/registry.sqlite3")
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(ConfigError, match="must start with"):
        normalise_url("mysql://x")


def test_unreachable_registry_is_a_clear_error(tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    url = f"postgresql://nobody:secret@127.0.0.1:{port}/db"
    with pytest.raises(RegistryError, match="does not answer") as exc:
        Registry.open(url, timeout=3)
    assert "secret" not in str(exc.value)
    assert main(["registry", "list", "--registry", url]) == EXIT_SCAN_ERROR
    assert "does not answer" in capsys.readouterr().err
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(RegistryError):
        Registry.open(tmp_path / "dir.sqlite3")


def test_concurrent_writer_processes_on_a_fresh_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'busy.sqlite3'}"
    run_writers(url, writers=3, each=15)  # the first opens race on the migration too
    with Registry.open(url) as reg:
        assert len(reg.artifacts(limit=1000)) == 45
        assert sum(t.scans for t in reg.known_triggers()) == 2 * 45
        assert reg.provenance_status(f"sha256:{2014:064x}").status == "signed"


def test_scan_artifact_records_itself_and_cli_reads_it(tmp_path, capsys):
    model = tmp_path / "m"
    model.mkdir()
    (model / "evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    url = str(tmp_path / "r.sqlite3")
    assert main(["scan", "artifact", str(model), "--registry", url]) == 1
    capsys.readouterr()
    assert main(["registry", "list", "--registry", url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["status"] == "unverified"
    digest = rows[0]["digest"]
    assert main(["registry", "show", digest[7:20], "--registry", url]) == 0
    out = capsys.readouterr().out
    assert digest in out and "critical" in out
    assert main(["registry", "show", "sha256:00", "--registry", url]) == EXIT_USAGE
    # a second scan now also reports the missing provenance as a supply-chain finding
    with Registry.open(url) as reg:
        rep = __import__("dormant.provenance", fromlist=["x"]).scan_artifact(model, registry=reg)
        assert {f.category for f in rep.findings} == {"unsafe-serialization", "supply-chain"}
        assert len(reg.scans_for(digest)) == 2
