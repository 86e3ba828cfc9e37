"""The provenance gate on a real SQLite registry: states, flags, proven behaviours, failures."""

from __future__ import annotations

import pytest

pytest.importorskip("sqlalchemy", reason="needs the 'provenance' extra")
pytest.importorskip("cedarpy", reason="needs the 'guard' extra")

from _guard_policy import MODEL, MODEL_DIGEST, write_policy

from dormant.findings import Finding, Severity, SubjectRef
from dormant.guard import (
    DecisionContext,
    GuardPolicy,
    ProposedCall,
    ProvenanceState,
    decide,
    resolve_model,
)
from dormant.registry import Registry
from dormant.report import Report
from dormant.triggers import Trigger, TriggerKind


def probe_report(severity: Severity, target: str = "tool:send_email") -> Report:
    subject = SubjectRef(kind="model", name=MODEL, digest=MODEL_DIGEST)
    report = Report(subject=subject)
    report.findings.append(
        Finding(
            scanner="agent-trigger-probe",
            subject=subject,
            title="trigger switches the model to send_email",
            severity=severity,
            score=0.9,
            category="agent-trigger",
            trigger=Trigger("cf", TriggerKind.TOKEN),
            target=target,
        )
    )
    return report.finish()


@pytest.fixture
def policy(tmp_path):
    return GuardPolicy.load(write_policy(tmp_path / "policy"))


@pytest.fixture
def reg(tmp_path):
    with Registry.open(tmp_path / "reg.sqlite3") as r:
        yield r


def test_states_follow_the_registry(policy, reg):
    assert resolve_model(MODEL, policy=policy, registry=reg).provenance is ProvenanceState.UNKNOWN
    reg.record_artifact(MODEL_DIGEST, "/models/support", "model")
    reg.record_provenance(MODEL_DIGEST, status="signed", method="key", signer="k", actor="t")
    info = resolve_model(MODEL, policy=policy, registry=reg)
    assert info.provenance is ProvenanceState.SIGNED and info.digest == MODEL_DIGEST
    reg.record_provenance(MODEL_DIGEST, status="verified", method="key", signer="k", actor="t")
    assert resolve_model(MODEL, policy=policy, registry=reg).provenance is ProvenanceState.VERIFIED
    reg.record_provenance(MODEL_DIGEST, status="tampered", detail="w.bin", actor="t")
    assert resolve_model(MODEL, policy=policy, registry=reg).provenance is ProvenanceState.TAMPERED


def test_a_high_finding_flags_the_model_and_its_behaviour_is_denied(policy, reg):
    reg.record_provenance(MODEL_DIGEST, status="verified", method="key", signer="k", actor="t")
    reg.record_scan(probe_report(Severity.MEDIUM, "egress:evil.example"))
    info = resolve_model(MODEL, policy=policy, registry=reg)
    assert info.provenance is ProvenanceState.VERIFIED  # medium does not flag
    assert info.proven_behaviours == ("egress:evil.example",)
    reg.record_scan(probe_report(Severity.HIGH))
    info = resolve_model(MODEL, policy=policy, registry=reg)
    assert info.provenance is ProvenanceState.FLAGGED and "flagged by scan" in (info.detail or "")
    assert set(info.proven_behaviours) == {"egress:evil.example", "tool:send_email"}
    d = decide(
        DecisionContext("support-bot", info),
        ProposedCall("lookup_order", {"id": "1"}),
        policy=policy,
    )
    assert not d.allowed and d.ceiling is None  # flagged -> no tools


def test_failures_resolve_to_unknown_with_the_reason(policy, reg, tmp_path):
    info = resolve_model("other-model", policy=policy, registry=reg)
    assert info.provenance is ProvenanceState.UNKNOWN and "model_digests" in (info.detail or "")
    info = resolve_model(MODEL, policy=policy, registry=None)
    assert info.provenance is ProvenanceState.UNKNOWN and "no registry" in (info.detail or "")
    down = Registry(url="postgresql://nobody@127.0.0.1:1/none", timeout=1)
    info = resolve_model(MODEL, policy=policy, registry=down)
    assert info.provenance is ProvenanceState.UNKNOWN
    assert (info.detail or "").startswith("registry failed")
    assert resolve_model("", policy=policy, registry=reg).provenance is ProvenanceState.UNKNOWN
