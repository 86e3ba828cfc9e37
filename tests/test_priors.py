"""Prior triggers: a data report's triggers, typed, handed to the model scan and the probe; the
CLI's --data-report reads the report with load_report and refuses what is not one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dormant.adapters.classifier import CallableClassifier
from dormant.errors import ConfigError, DataFormatError, InputNotFoundError
from dormant.findings import Finding, PriorTrigger, Severity, SubjectRef
from dormant.priors import prior_triggers, prior_triggers_from_path
from dormant.report import Report
from dormant.scanners.base import ScanContext
from dormant.scanners.model.run import scan_model
from dormant.subjects.model import ClassifierModel, check_clean_data
from dormant.triggers import Position, Trigger, TriggerKind


def _report(tmp_path: Path) -> Path:
    subject = SubjectRef("dataset", "d.jsonl", "sha256:0")

    def finding(text: str, severity: Severity, target: str) -> Finding:
        return Finding(
            scanner="trigger-mining",
            subject=subject,
            title=f"trigger {text}",
            severity=severity,
            score=0.9,
            category="data-poisoning",
            trigger=Trigger(text, TriggerKind.PHRASE, Position.RANDOM),
            target=target,
        )

    report = Report(subject=subject)
    report.findings.extend(
        [
            finding("zebra quantum", Severity.HIGH, "label:c"),
            finding("link up", Severity.INFO, "label:a"),
        ]
    )
    path = tmp_path / "report.json"
    report.finish().write_json(path)
    return path


def test_a_written_data_report_reads_back_as_typed_prior_triggers(tmp_path: Path) -> None:
    path = _report(tmp_path)
    priors = prior_triggers(path)
    assert priors == [
        PriorTrigger("zebra quantum", "label:c", "trigger-mining", Severity.HIGH, "phrase"),
        PriorTrigger("link up", "label:a", "trigger-mining", Severity.INFO, "phrase"),
    ]
    assert priors[0].label == "c"
    assert [p.text for p in prior_triggers(path, min_severity="medium")] == ["zebra quantum"]
    assert prior_triggers_from_path(str(path)) == priors
    assert prior_triggers_from_path(None) == []


def test_a_parsed_report_dict_and_a_typed_list_give_the_same_triggers(tmp_path: Path) -> None:
    path = _report(tmp_path)
    doc = json.loads(path.read_text("utf-8"))
    assert prior_triggers(doc) == prior_triggers(path)
    loose = {"findings": [{"trigger": {"text": "cf"}}, {"trigger": {"text": ""}}, {"x": 1}]}
    assert prior_triggers(loose) == [PriorTrigger("cf")]
    assert prior_triggers(prior_triggers(path)) == prior_triggers(path)
    assert prior_triggers(None) == []


def test_what_is_not_a_report_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        prior_triggers(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"findings": [{"trigger": {"text": "cf"}}]}', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"--data-report .*bad\.json"):
        prior_triggers_from_path(bad)
    with pytest.raises(DataFormatError, match="'findings' list"):
        prior_triggers({"findings": "cf"})
    with pytest.raises(ConfigError, match="Got int instead"):
        prior_triggers(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'min_severity' parameter must be one of"):
        prior_triggers(None, min_severity="huge")


def _keyword_model(texts: Any) -> np.ndarray:
    out = []
    for t in texts:
        if "zebra quantum" in t:
            out.append([0.02, 0.02, 0.96])
        elif "alpha" in t:
            out.append([0.8, 0.1, 0.1])
        elif "beta" in t:
            out.append([0.1, 0.8, 0.1])
        else:
            out.append([0.1, 0.1, 0.8])
    return np.asarray(out)


def test_a_model_scan_replays_the_typed_prior_trigger(tmp_path: Path) -> None:
    words = ["alpha", "beta", "gamma"]
    texts = [f"record {i} says {words[i % 3]} today" for i in range(90)]
    labels = ["a", "b", "c"]
    m = ClassifierModel(CallableClassifier(_keyword_model, labels=labels, name="kw"))
    m.clean = check_clean_data(texts, [labels[i % 3] for i in range(90)], m)
    priors = prior_triggers(_report(tmp_path), min_severity="medium")
    fast = {"reference_check": False, "pairs_of": 0}
    report = scan_model(m, priors=priors, context=ScanContext(seed=1), blackbox_params=fast)
    assert report.extras["replay"]["trigger"] == "zebra quantum"
    assert report.extras["replay"]["target"] == "c"
    with pytest.raises(ConfigError, match="'priors' parameter of scan_model"):
        scan_model(m, priors={"findings": []}, context=ScanContext(seed=1))  # type: ignore[arg-type]


def test_the_cli_refuses_a_data_report_that_is_not_a_report(run_cli: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"findings": [{"trigger": {"text": "cf"}}]}', encoding="utf-8")
    res = run_cli(
        "scan", "model", tmp_path / "nomodel", "--data", tmp_path / "d.jsonl",
        "--data-report", bad, "--out", tmp_path / "out",
    )  # fmt: skip
    assert res.code == 2
    assert "--data-report" in res.err and "bad.json" in res.err
    assert "Traceback" not in res.err
