"""The registry on SQLite: records, provenance status, triggers, migrations, concurrent writers.

The same behaviour against a real PostgreSQL server is in ``test_registry_postgres.py``; the
checks shared by both live in :func:`exercise_registry`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="needs the 'provenance' extra")

from dormant.cli import EXIT_SCAN_ERROR, EXIT_USAGE, main
from dormant.errors import ConfigError, RegistryError
from dormant.findings import Finding, Severity, SubjectRef
from dormant.registry import Registry, normalise_url
from dormant.report import Report
from dormant.triggers import Trigger, TriggerKind

DIGEST = "sha256:" + "ab" * 32


def poisoned_report(digest: str = DIGEST) -> Report:
    subject = SubjectRef(kind="dataset", name="train.jsonl", digest=digest)
    report = Report(subject=subject)
    for text, sev in (("cf", Severity.HIGH), ("\u200b", Severity.CRITICAL)):
        report.findings.append(
            Finding(
                scanner="token-skew",
                subject=subject,
                title=f"trigger {text!r}",
                severity=sev,
                score=0.9,
                category="data-poisoning",
                trigger=Trigger(text, TriggerKind.TOKEN),
                target="label:approve",
            )
        )
    return report.finish()


def exercise_registry(reg: Registry) -> None:
    """Behaviour every backend must show (called by the SQLite and PostgreSQL tests)."""
    assert reg.schema_revision() == "0001"
    assert reg.provenance_status(DIGEST).status == "unknown"
    reg.record_artifact(DIGEST, "/models/m", "model")
    reg.record_artifact(DIGEST, "/copies/m", "model")
    assert reg.provenance_status(DIGEST).status == "unverified"
    reg.record_provenance(DIGEST, status="signed", method="key", signer="key:sha256:1")
    assert reg.provenance_status(DIGEST).status == "signed"
    reg.record_provenance(DIGEST, status="verified", method="key", signer="key:sha256:1")
    st = reg.provenance_status(DIGEST)
    assert st.status == "verified" and st.trusted and st.signer == "key:sha256:1"
    assert [e.status for e in st.history] == ["signed", "verified"] and st.actor
    reg.record_provenance(DIGEST, status="tampered", detail="changed: w.bin")
    st = reg.provenance_status(DIGEST)
    assert st.status == "tampered" and not st.trusted and st.detail == "changed: w.bin"
    art = reg.artifact(DIGEST[:20])
    assert art is not None and set(art.paths) == {"/models/m", "/copies/m"}
    assert art.path == "/copies/m"
    scan_id = reg.record_scan(poisoned_report())
    reg.record_scan(poisoned_report().to_dict())
    scans = reg.scans_for(DIGEST)
    assert len(scans) == 2 and scan_id in {s.id for s in scans}
    assert scans[0].max_severity == "critical" and scans[0].report["findings"][0]["trigger"]
    trig = reg.known_triggers()
    assert [(t.text, t.kind, t.target, t.scans) for t in trig] == [
        ("\u200b", "token", "label:approve", 2),
        ("cf", "token", "label:approve", 2),
    ]
    assert trig[0].max_severity == "critical" and trig[0].subjects == (DIGEST,)
    assert [t.text for t in reg.known_triggers(min_severity="critical")] == ["\u200b"]
    with pytest.raises(ConfigError, match="status"):
        reg.record_provenance(DIGEST, status="probably-fine")
    with pytest.raises(ConfigError, match="sha256"):
        reg.record_artifact("not-a-digest", "/x", "model")


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


WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_registry import poisoned_report
    from dormant.registry import Registry
    reg = Registry.open({url!r})
    for i in range({n}):
        d = "sha256:%064x" % ({w} * 1000 + i)
        reg.record_artifact(d, "/m/%d" % i, "model")
        reg.record_provenance(d, status="signed", method="key", signer="k")
        reg.record_scan(poisoned_report(d))
    """
)


def run_writers(url: str, *, writers: int, each: int) -> None:
    """Start ``writers`` processes that each record ``each`` artifacts, events and scans."""
    tests = str(Path(__file__).parent)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER.format(tests=tests, url=url, n=each, w=w)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err


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
