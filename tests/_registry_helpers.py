"""What the registry tests share: a poisoned report, the behaviour every backend must show,
concurrent writer processes (used by the SQLite, PostgreSQL and guard tests)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dormant.errors import ConfigError
from dormant.findings import Finding, Severity, SubjectRef
from dormant.registry import Registry
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


WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from _registry_helpers import poisoned_report
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
