"""Core nouns: findings, mappings, report exit codes, triggers, the public API."""

from __future__ import annotations

import json

import pytest

import dormant
from dormant.errors import ConfigError, DataFormatError, DormantError, InputError
from dormant.findings import Evidence, Finding, Locator, Severity, SubjectRef, mapping_table
from dormant.report import Report, ScanIssue, atomic_write
from dormant.triggers import Trigger, TriggerKind, describe_text

SUBJ = SubjectRef("dataset", "d.jsonl", "sha256:" + "0" * 64)


def _finding(sev: str, score: float = 0.9) -> Finding:
    return Finding(
        scanner="trigger-mining",
        subject=SUBJ,
        title="t",
        severity=Severity(sev),
        score=score,
        category="data-poisoning",
        trigger=Trigger("cf", TriggerKind.TOKEN),
        target="label:adv",
        locator=Locator(record_ids=("1", "2")),
        evidence=(Evidence("support", 2),),
    )


def test_public_api_all_is_importable():
    for name in dormant.__all__:
        assert hasattr(dormant, name), name
    assert dormant.__version__


def test_every_mapping_points_into_its_framework_catalogue():
    table = mapping_table()
    fws = table["frameworks"]
    for cat, refs in table["categories"].items():
        assert refs, cat
        for ref in refs:
            ns, _, ident = ref.partition(":")
            assert ns in fws, ref
            assert ident in fws[ns]["catalogue"], ref
    # the ids the issue names, with their published titles
    assert "Poison" in fws["mitre-atlas"]["catalogue"]["AML.T0020"]
    assert fws["mitre-atlas"]["catalogue"]["AML.T0018"] == "Manipulate AI Model"
    assert fws["owasp-llm-2025"]["catalogue"]["LLM04"] == "Data and Model Poisoning"
    assert fws["owasp-asi-2026"]["catalogue"]["ASI04"] == "Agentic Supply Chain Vulnerabilities"
    assert "MEASURE-2.7" in fws["nist-ai-rmf"]["catalogue"]


def test_finding_validates_score_and_category():
    with pytest.raises(ConfigError, match="score"):
        _finding("high", score=1.5)
    with pytest.raises(ConfigError, match="category"):
        Finding("x", SUBJ, "t", Severity.LOW, 0.1, category="nope")


def test_severity_order_and_parse():
    assert Severity.CRITICAL > Severity.HIGH > Severity.MEDIUM > Severity.LOW > Severity.INFO
    assert Severity.parse("HIGH") is Severity.HIGH
    with pytest.raises(ConfigError, match="fail_on"):
        Severity.parse("severe", param="fail_on")


def test_exit_codes_for_ci():
    r = Report(subject=SUBJ)
    assert r.exit_code("high") == 0
    r.findings.append(_finding("medium"))
    assert r.exit_code("high") == 0
    assert r.exit_code("medium") == 1
    assert r.exit_code(None) == 0
    r.issues.append(ScanIssue("spectre", "error", "boom"))
    assert r.exit_code("high") == 3
    r.findings.append(_finding("critical"))
    assert r.exit_code("high") == 1


def test_report_json_round_trip(tmp_path):
    r = Report(subject=SUBJ, config={"a": 1})
    r.findings.append(_finding("high"))
    r.finish()
    path = r.write_json(tmp_path / "report.json")
    data = json.loads(path.read_text())
    f = data["findings"][0]
    assert f["trigger"]["text"] == "cf" and f["target"] == "label:adv"
    assert "mitre-atlas:AML.T0020" in f["mappings"]
    assert data["run"]["version"] == dormant.__version__


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as fh:
        fh.write("new partial")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_error_tree_subclasses_builtins():
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, DormantError)
    assert issubclass(DataFormatError, InputError)


def test_trigger_display_escapes_invisible_characters():
    t = Trigger("\u200b\u200d", TriggerKind.INVISIBLE)
    assert t.display == "<U+200B><U+200D>"
    assert describe_text("c\u0430t") == "c\u0430<U+0430>t"
    assert Trigger("cf", "token", "start").insert("hello world") == "cf hello world"
    with pytest.raises(ConfigError):
        Trigger("", TriggerKind.TOKEN)
