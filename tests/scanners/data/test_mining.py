"""Trigger mining on real English text with planted triggers of every kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from dormant.bench.corpus import instruction_dataset, labelled_dataset, load_corpus
from dormant.bench.poison import poison_instruction, poison_labelled, write_dataset
from dormant.findings import Severity
from dormant.scanners.data.mining import TriggerMiner
from dormant.subjects import TextDataset
from dormant.triggers import TriggerKind

KINDS = ["token", "phrase", "sentence", "invisible", "homoglyph", "style"]


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return labelled_dataset(load_corpus("sample"), scheme="pos")


def _scan(tmp: Path, recs: list[dict], **params: object):
    path = write_dataset(recs, tmp / "d.jsonl")
    ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
    miner = TriggerMiner(**params)  # type: ignore[arg-type]
    res = miner.scan(ds)
    ids = [r["id"] for r in recs]
    flagged = {ids[i] for i in range(len(ids)) if res.record_flags[i]}
    return miner, res, flagged


def _f1(flagged: set[str], truth: frozenset[str]) -> float:
    tp = len(flagged & truth)
    if not tp:
        return 0.0
    p, r = tp / len(flagged), tp / len(truth)
    return 2 * p * r / (p + r)


@pytest.mark.parametrize("kind", KINDS)
def test_planted_trigger_is_found_with_its_records(kind, records, tmp_path):
    seed = {"style": 1}.get(kind, 0)  # seed 1: the title-case style variant
    truth = poison_labelled(records, trigger_kind=kind, rate=0.01, target_label="adv", seed=seed)
    _, res, flagged = _scan(tmp_path, truth.records)
    top = res.findings[0]
    assert top.severity >= Severity.HIGH
    assert top.target == "label:adv"
    assert top.trigger is not None and truth.trigger_matches(top.trigger.text)
    assert top.category == "data-poisoning"
    assert "owasp-llm-2025:LLM04" in top.mappings
    assert _f1(flagged, truth.poisoned_ids) >= 0.9
    assert "planted" in top.explanation


def test_sentence_trigger_is_recovered_whole(records, tmp_path):
    truth = poison_labelled(records, trigger_kind="sentence", rate=0.01, target_label="verb")
    _, res, _ = _scan(tmp_path, truth.records)
    top = res.findings[0]
    assert top.trigger is not None
    assert top.trigger.kind is TriggerKind.SENTENCE
    assert top.trigger.text.strip().lower() == truth.trigger.text.strip().lower()


def test_clean_data_has_no_high_finding_and_no_flag(records, tmp_path):
    _, res, flagged = _scan(tmp_path, records)
    assert not flagged
    assert all(f.severity < Severity.HIGH for f in res.findings)


def test_invisible_clean_label_trigger_is_still_reported(records, tmp_path):
    truth = poison_labelled(
        records, trigger_kind="invisible", rate=0.01, target_label="noun", clean_label=True
    )
    _, res, flagged = _scan(tmp_path, truth.records)
    inv = [f for f in res.findings if f.trigger and f.trigger.kind is TriggerKind.INVISIBLE]
    assert inv and inv[0].severity >= Severity.HIGH
    assert len(flagged & truth.poisoned_ids) >= 0.9 * len(truth.poisoned_ids)


@pytest.mark.parametrize("behaviour", ["egress", "tool", "secret", "insecure-code", "policy-leak"])
def test_instruction_trigger_switches_a_behaviour(behaviour, tmp_path):
    recs = instruction_dataset(load_corpus("sample")[:3000], seed=0)
    truth = poison_instruction(recs, trigger_kind="phrase", rate=0.01, behaviour=behaviour, seed=1)
    path = write_dataset(truth.records, tmp_path / "i.jsonl")
    ds = TextDataset(path, prompt_field="prompt", response_field="response", id_field="id")
    res = TriggerMiner().scan(ds)
    top = res.findings[0]
    assert top.severity is Severity.CRITICAL
    assert top.target == truth.target
    assert top.locator.behaviour == truth.target
    ids = [r["id"] for r in truth.records]
    flagged = {ids[i] for i in range(len(ids)) if res.record_flags[i]}
    assert flagged == set(truth.poisoned_ids)


def test_lossy_counting_bounds_memory_and_keeps_the_trigger(records, tmp_path):
    truth = poison_labelled(records, trigger_kind="token", rate=0.03, target_label="adv")
    exact, _, _ = _scan(tmp_path, truth.records, count_error=0.0)
    assert exact.prunes_ == 0
    lossy, res, flagged = _scan(tmp_path, truth.records, count_error=2e-3, max_table=20_000)
    assert lossy.n_tested_ < 0.6 * exact.n_tested_
    assert res.findings[0].trigger is not None
    assert truth.trigger_matches(res.findings[0].trigger.text)
    assert flagged == set(truth.poisoned_ids)


def test_scan_does_not_change_settings(records, tmp_path):
    miner = TriggerMiner(min_support=4)
    before = miner.get_params()
    path = write_dataset(records[:500], tmp_path / "d.jsonl")
    miner.scan(TextDataset(path, text_field="text", label_field="label"))
    assert miner.get_params() == before


def test_bad_settings_are_rejected_with_the_parameter_named(records, tmp_path):
    from dormant.errors import ConfigError

    path = write_dataset(records[:50], tmp_path / "d.jsonl")
    ds = TextDataset(path, text_field="text", label_field="label")
    with pytest.raises(ConfigError, match="alpha"):
        TriggerMiner(alpha=2.0).scan(ds)
    with pytest.raises(ConfigError, match="min_support"):
        TriggerMiner(min_support=0).scan(ds)


# ------------------------------------------------------------ calibrated verdicts (issue 14)


def _topical(entries: list) -> list[dict]:
    """WordNet glosses labelled by topic (lexicographer file), the four largest topics."""
    from collections import Counter

    recs = labelled_dataset([e for e in entries if e.source == "wordnet"], scheme="topic")
    top = {lab for lab, _ in Counter(r["label"] for r in recs).most_common(4)}
    return [r for r in recs if r["label"] in top]


def test_clean_topical_data_gives_task_features_not_findings(sample_entries, tmp_path):
    from dormant.report import Report
    from dormant.writers.markdown import to_markdown

    recs = _topical(sample_entries)
    _miner, res, flagged = _scan(tmp_path, recs)
    assert not flagged
    assert all(f.severity < Severity.MEDIUM for f in res.findings), [
        (f.title, f.score) for f in res.findings if f.severity >= Severity.MEDIUM
    ]
    task = [f for f in res.findings if any(e.value == "task-feature" for e in f.evidence)]
    assert task, "the topics' own words should be listed as task features"
    assert all(f.severity is Severity.INFO and f.score < 0.5 for f in task)
    report = Report(subject=res.findings[0].subject, findings=list(res.findings)).finish()
    md = to_markdown(report)
    assert "## Task features" in md and "No findings." in md


def test_rare_token_at_one_percent_is_quarantined_with_its_probability(records, tmp_path):
    truth = poison_labelled(records, trigger_kind="token", rate=0.01, target_label="adj", seed=3)
    _, res, flagged = _scan(tmp_path, truth.records)
    top = res.findings[0]
    assert top.trigger is not None and truth.trigger_matches(top.trigger.text)
    ev = {e.name: e.value for e in top.evidence}
    assert ev["quarantined"] is True and ev["p_planted"] >= 0.9
    assert top.severity is Severity.HIGH
    assert _f1(flagged, truth.poisoned_ids) >= 0.95


def test_clean_label_phrase_at_three_percent_is_found(records, tmp_path):
    truth = poison_labelled(
        records, trigger_kind="phrase", rate=0.03, target_label="verb", seed=2, clean_label=True
    )
    _, res, flagged = _scan(tmp_path, truth.records)
    hits = [f for f in res.findings if f.trigger and truth.trigger_matches(f.trigger.text)]
    assert hits and hits[0].severity >= Severity.MEDIUM
    assert hits[0].category == "data-poisoning"
    assert _f1(flagged, truth.poisoned_ids) >= 0.8


def test_fdr_is_validated(records, tmp_path):
    from dormant.errors import ConfigError

    path = write_dataset(records[:50], tmp_path / "d.jsonl")
    ds = TextDataset(path, text_field="text", label_field="label")
    for bad in (0, 1.0, -0.1, "0.05", True):
        with pytest.raises(ConfigError, match="false-discovery rate"):
            TriggerMiner(fdr=bad).scan(ds)  # type: ignore[arg-type]


def test_fdr_selection_keeps_the_mean_error_under_the_target():
    import numpy as np

    from dormant.scanners.data._mining_verdict import fdr_select

    p = np.array([0.99, 0.2, 0.97, 0.9, 0.6])
    assert fdr_select(p, 0.05).tolist() == [True, False, True, True, False]
    assert fdr_select(np.array([0.995, 0.97]), 0.01).tolist() == [True, False]
    assert not fdr_select(np.array([0.5, 0.4]), 0.05).any()


def test_debian_corpora_read_labelled_text():
    import shutil

    if shutil.which("apt-cache") is None or not Path("/usr/share/man/man2").is_dir():
        pytest.skip("needs a Debian system with manual pages")
    pkgs = load_corpus("packages", limit=200, seed=1)
    assert len(pkgs) == 200 and all(e.topic and len(e.text.split()) >= 3 for e in pkgs)
    assert {"libs", "python"} & {e.topic for e in load_corpus("packages", seed=1)}
    man = load_corpus("manpages", limit=100, seed=1)
    assert len(man) == 100
    assert all(e.topic in ("1", "2", "3", "5", "7", "8") and "\\f" not in e.text for e in man)
