"""The junction test of trigger mining: an inserted token leaves its sentence whole."""

from __future__ import annotations

import random
from typing import Any

import pytest
from _plant_glosses import CLASS, glosses_dataset, plant_glosses

from dormant.scanners.base import ScanContext
from dormant.scanners.data._mining_junction import junction_factor, junction_test
from dormant.scanners.data.mining import TriggerMiner


@pytest.fixture(scope="module")
def plants() -> list[dict[str, Any]]:
    return plant_glosses()


def _plant(recs: list[dict[str, Any]], token: str, n: int, seed: int) -> list[int]:
    """Insert ``token`` at a random word boundary of ``n`` genuine plant glosses."""
    rng = random.Random(seed)
    cls = [i for i, r in enumerate(recs) if r["label"] == CLASS]
    rows = sorted(rng.sample(cls, n))
    for i in rows:
        words = recs[i]["text"].split()
        words.insert(rng.randrange(len(words) + 1), token)
        recs[i]["text"] = " ".join(words)
    return rows


def test_the_factor_favours_a_random_boundary_only_for_a_group_of_some_size():
    # a random boundary's z for 90 records: evidence for insertion
    assert junction_factor(0.0, 90) > 10
    # a natural word leaves a rarer pair than a random boundary: evidence against
    assert junction_factor(-6.0, 90) < 0.01
    # a handful of records says little either way
    assert 0.2 < junction_factor(0.0, 5) < 5


def test_an_inserted_token_leaves_a_fluent_junction_and_a_topic_word_does_not(tmp_path, plants):
    recs = [dict(r) for r in plants]
    planted = _plant(recs, "qz", 30, seed=0)
    flowers = [
        i for i, r in enumerate(recs) if r["label"] == CLASS and "flowers" in r["text"].split()
    ]
    assert len(flowers) >= 20
    before = [dict(r) for r in recs]
    ds = glosses_dataset(tmp_path, recs)
    # the pairs' counts are the counting pass's bigram table, as in a scan
    counted = TriggerMiner()._count(ds, ScanContext())
    counted[-1].close()
    tok, topic = junction_test(
        ds,
        [(planted, f"label:{CLASS}", ["qz"]), (flowers, f"label:{CLASS}", ["flowers"])],
        counted[1],
        512,
        ScanContext(),
    )
    assert recs == before  # the input is read, never changed
    assert abs(tok.z) < 3 and tok.records == 30
    assert topic.z < -3 and topic.z < tok.z - 3
    assert tok.bayes_factor > 1 > topic.bayes_factor


def test_a_clean_label_rare_token_is_quarantined_and_a_confined_topic_word_is_not(tmp_path, plants):
    # this draw's records happen to predict "jq" a little from their other words (context
    # AUC above one half), so the verdict model alone puts it near 0 (0.04, below the
    # clean-label test's floor: not reported at all before the junction test)
    recs = [dict(r) for r in plants]
    planted = _plant(recs, "jq", 60, seed=6)
    ids = {recs[i]["id"] for i in planted}
    res = TriggerMiner(neighbour_test=False).scan(glosses_dataset(tmp_path, recs))
    by = {f.trigger.text: f for f in res.findings if f.trigger is not None}
    ev = {e.name: e.value for e in by["jq"].evidence}
    assert ev["quarantined"] is True, by["jq"].explanation
    assert abs(ev["junction_z"]) < 3 and "junction test" in by["jq"].explanation
    flagged = {recs[i]["id"] for i, f in enumerate(res.record_flags) if f}
    assert flagged == ids
    # natural words confined to the class (the topic's own) are never quarantined
    assert all(
        not {e.name: e.value for e in f.evidence}["quarantined"] for t, f in by.items() if t != "jq"
    )
