"""The clean-label test of trigger mining: a planted token is a random draw of its class."""

from __future__ import annotations

import random
from typing import Any

import pytest
from _plant_glosses import CLASS, glosses_dataset, plant_glosses

from dormant.bench.poison import poison_labelled
from dormant.errors import ConfigError
from dormant.findings import Severity
from dormant.scanners.base import ScanContext
from dormant.scanners.data._mining_cleanlabel import clean_label_factor, clean_label_test
from dormant.scanners.data.mining import TriggerMiner
from dormant.subjects import TextDataset


@pytest.fixture(scope="module")
def plants() -> list[dict[str, Any]]:
    return plant_glosses()


def _test(ds: TextDataset, groups: list[tuple[list[int], list[str]]]) -> list[Any]:
    miner = TriggerMiner()
    target = miner._outcomes(next(iter(ds.batches(1))))  # outcome naming, e.g. "label:..."
    prefix = target[0][0].split(":", 1)[0]
    specs = [(rows, f"{prefix}:{CLASS}", pats) for rows, pats in groups]
    return clean_label_test(ds, specs, miner._outcomes, 512, ScanContext())


def test_the_factor_needs_both_a_random_draw_and_a_confined_word():
    # a random draw of the class with a word found nowhere else: evidence for planting
    assert clean_label_factor(0.0, True, records=90) > 10
    # the same draw whose word the data uses elsewhere: never raises the odds
    assert clean_label_factor(0.0, False, records=90) <= 1.0
    # a cohesive topic, confined or not: evidence against
    assert clean_label_factor(12.0, True, records=90) < 0.01
    assert clean_label_factor(12.0, False, records=90) < 0.01
    # a natural feature's z grows with its group: a random-looking handful says less
    assert clean_label_factor(0.0, True, records=8) < clean_label_factor(0.0, True, records=90)


def test_a_planted_token_is_a_random_draw_and_a_topic_word_is_not(tmp_path, plants):
    recs = [dict(r) for r in plants]
    rng = random.Random(0)
    cls = [i for i, r in enumerate(recs) if r["label"] == CLASS]
    planted = sorted(rng.sample(cls, 30))
    for i in planted:
        words = recs[i]["text"].split()
        words.insert(rng.randrange(len(words) + 1), "qz")
        recs[i]["text"] = " ".join(words)
    flowers = [i for i in cls if "flowers" in recs[i]["text"].split()]
    assert len(flowers) >= 20
    before = [dict(r) for r in recs]
    ds = glosses_dataset(tmp_path, recs)
    tok, topic = _test(ds, [(planted, ["qz"]), (flowers, ["flowers"])])
    assert recs == before  # the input is read, never changed
    assert abs(tok.z) < 3 and tok.confinement == 1.0 and tok.word == "qz"
    assert topic.z > 3 and topic.z > tok.z + 3
    assert tok.bayes_factor > 5 > 1 > topic.bayes_factor
    assert tok.copies == 0.0 and tok.copies_p > 0.5


def test_copies_of_other_records_with_a_suffix_are_told_apart(tmp_path, plants):
    recs = [dict(r) for r in plants]
    rng = random.Random(1)
    cls = [i for i, r in enumerate(recs) if r["label"] == CLASS]
    rows = []
    for i in rng.sample(cls, 25):  # a metadata variant: a copy of the record plus a suffix
        rows.append(len(recs))
        recs.append({"id": f"c{i:05d}", "text": recs[i]["text"] + "; cultivar", "label": CLASS})
    (res,) = _test(glosses_dataset(tmp_path, recs), [(rows, ["; cultivar"])])
    assert res.copies == 1.0 and res.copies_p < 1e-6


@pytest.mark.slow
def test_a_clean_label_token_is_quarantined_and_copies_only_reported(tmp_path, plants):
    truth = poison_labelled(
        plants, trigger_kind="token", rate=0.03, target_label=CLASS, seed=3, clean_label=True
    )
    ds = glosses_dataset(tmp_path, truth.records)
    res = TriggerMiner(neighbour_test=False).scan(ds)
    top = res.findings[0]
    assert top.trigger is not None and truth.trigger_matches(top.trigger.text)
    ev = {e.name: e.value for e in top.evidence}
    assert ev["quarantined"] is True and top.severity >= Severity.HIGH
    assert abs(ev["clean_label_z"]) < 3 and ev["clean_label_confinement"] == 1.0
    ids = [r["id"] for r in truth.records]
    flagged = {ids[i] for i, f in enumerate(res.record_flags) if f}
    tp = len(flagged & truth.poisoned_ids)
    assert tp / len(truth.poisoned_ids) >= 0.9 and tp / max(len(flagged), 1) >= 0.9

    # the same token added to *copies* of genuine records: text and label cannot tell this
    # from a copy template, so it is reported (medium) but not quarantined, and says why
    recs = [dict(r) for r in plants]
    rows = [i for i, r in enumerate(truth.records) if r["id"] in truth.poisoned_ids]
    for i in rows:
        recs.append({**truth.records[i], "id": f"copy-{i}"})
    res = TriggerMiner(neighbour_test=False).scan(glosses_dataset(tmp_path, recs))
    top = res.findings[0]
    assert top.trigger is not None and truth.trigger_matches(top.trigger.text)
    assert top.severity == Severity.MEDIUM
    assert "copies" in top.explanation and not res.record_flags.any()


def test_the_setting_is_checked_before_the_data_is_read(tmp_path, plants):
    ds = glosses_dataset(tmp_path, plants[:50])
    with pytest.raises(ConfigError, match="clean_label_test must be True or False"):
        TriggerMiner(clean_label_test="yes").scan(ds)  # type: ignore[arg-type]


def test_one_text_shared_by_several_records_is_copies(tmp_path, plants):
    recs = [dict(r) for r in plants]
    text = "a cultivated plant grown for its showy leaves and hardy roots in cold regions"
    rows = []
    for i in range(8):
        rows.append(len(recs))
        recs.append({"id": f"dup{i}", "text": text, "label": CLASS})
    (res,) = _test(glosses_dataset(tmp_path, recs), [(rows, [text])])
    # one text filed 8 times: duplicates (the pattern kept), and a copy template past its null
    # of half the records copies (0.5 ** 8)
    assert res.copies == 1.0 and res.copies_p < 0.01 and res.bayes_factor == 1.0
    assert res.duplicates == 1.0
    assert res.copies_only  # no text is left to compare its neighbours


def test_the_text_counts_spilled_give_the_same_test(tmp_path, plants, monkeypatch):
    from dormant.scanners.data import _mining_hashcount

    recs = [dict(r) for r in plants]
    rng = random.Random(1)
    cls = [i for i, r in enumerate(recs) if r["label"] == CLASS]
    rows = []
    for i in rng.sample(cls, 25):  # copies with a suffix, so the counts decide the result
        rows.append(len(recs))
        recs.append({"id": f"c{i:05d}", "text": recs[i]["text"] + "; cultivar", "label": CLASS})
    flowers = [i for i in cls if "flowers" in recs[i]["text"].split()]
    ds = glosses_dataset(tmp_path, recs)
    groups = [(rows, ["; cultivar"]), (flowers, ["flowers"])]
    held = _test(ds, groups)
    monkeypatch.setattr(_mining_hashcount, "MEMORY_HASHES", 50)  # spilled many times
    assert _test(ds, groups) == held
    assert held[0].copies == 1.0


def test_a_log_token_covering_a_third_of_a_small_class_is_quarantined(tmp_path, plants):
    # noun.plant is 8% of these glosses, as a small manual-page section is of its pages; a
    # clean-label `key=value` token put into 110 of its 311 records (35% of the class, under 3%
    # of the data) lies where the verdict's calibration once had only natural class words
    recs = [dict(r) for r in plants]
    rng = random.Random(3)
    cls = [i for i, r in enumerate(recs) if r["label"] == CLASS]
    planted = set()
    for i in rng.sample(cls, 110):
        words = recs[i]["text"].split()
        words.insert(rng.randrange(len(words) + 1), "sid=9c2e7b")
        recs[i] = {**recs[i], "text": " ".join(words)}
        planted.add(recs[i]["id"])
    res = TriggerMiner(neighbour_test=False).scan(glosses_dataset(tmp_path, recs))
    top = res.findings[0]
    assert top.trigger is not None and top.trigger.text == "sid=9c2e7b"
    assert top.severity >= Severity.HIGH
    flagged = {recs[i]["id"] for i, f in enumerate(res.record_flags) if f}
    assert len(flagged & planted) >= 0.9 * len(planted) and flagged <= planted
