"""Verdicts the held-out manual pages and package descriptions asked for (issue 14): a
relabelled trigger whose records came with their own copies, a label's own name, a clean-label
word that also occurs once elsewhere."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from _plant_glosses import CLASS, glosses_dataset, plant_glosses

from dormant.findings import Severity
from dormant.scanners.data._mining_cleanlabel import clean_label_factor, confinement_ratio
from dormant.scanners.data._mining_hashcount import RepeatSample
from dormant.scanners.data.mining import TriggerMiner


@pytest.fixture(scope="module")
def plants() -> list[dict[str, Any]]:
    return plant_glosses()


def _flagged(res: Any, recs: list[dict[str, Any]]) -> set[str]:
    return {recs[i]["id"] for i, f in enumerate(res.record_flags) if f}


def test_a_relabelled_trigger_among_data_full_of_copies_is_quarantined(tmp_path, plants):
    # data whose other classes hold many word-for-word copies (manual pages in several
    # sections), a target class with none; a dirty-label token put into records of the other
    # classes, some of them with their copy: those copies are the data's, not a template
    rng = random.Random(4)
    recs = [dict(r) for r in plants]
    others = [i for i, r in enumerate(recs) if r["label"] != CLASS]
    for i in rng.sample(others, 1200):
        recs.append({**recs[i], "id": f"dup-{recs[i]['id']}"})
    dup_of = {r["id"].removeprefix("dup-"): j for j, r in enumerate(recs) if r["id"][:4] == "dup-"}
    sources = rng.sample([i for i in others if recs[i]["id"] not in dup_of], 60)
    sources += [dup_of[recs[i]["id"]] for i in others if recs[i]["id"] in dup_of][:3]
    sources += [i for i in others if recs[i]["id"] in dup_of][:3]  # both copies of three
    planted = set()
    for i in sources:
        words = recs[i]["text"].split()
        words.insert(rng.randrange(len(words) + 1), "zq=77")
        recs[i] = {**recs[i], "text": " ".join(words), "label": CLASS}
        planted.add(recs[i]["id"])
    res = TriggerMiner(neighbour_test=False).scan(glosses_dataset(tmp_path, recs))
    top = res.findings[0]
    assert top.trigger is not None and "zq=77" in top.trigger.text
    assert top.severity >= Severity.HIGH and "copies" not in top.explanation
    flagged = _flagged(res, recs)
    assert len(flagged & planted) >= 0.9 * len(planted) and flagged <= planted


def test_a_word_that_names_its_label_is_a_task_feature(tmp_path, plants):
    # records of every topic that say which class they were filed under ("... - plant"):
    # the label's own name, never a trigger, however unlike the class the rest reads
    rng = random.Random(5)
    recs = [dict(r) for r in plants]
    others = [i for i, r in enumerate(recs) if r["label"] != CLASS]
    for i in rng.sample(others, 60):
        recs[i] = {**recs[i], "text": recs[i]["text"] + " - plant", "label": CLASS}
    res = TriggerMiner(neighbour_test=False).scan(glosses_dataset(tmp_path, recs))
    named = [
        f for f in res.findings if f.trigger is not None and f.trigger.text in ("plant", "- plant")
    ]
    assert named and all(f.severity is Severity.INFO for f in named)
    assert "label's own name" in named[0].explanation
    assert not res.record_flags.any()


def test_the_data_copy_rate_is_exact_while_it_fits_and_estimated_past_it():
    rng = np.random.default_rng(0)
    texts = rng.integers(0, 2**64, size=3000, dtype=np.uint64)
    hashes = np.concatenate([texts, texts[:600]])  # 1,200 of 3,600 records are copies
    exact = RepeatSample()
    sampled = RepeatSample(budget=500)
    for part in np.array_split(hashes, 9):
        exact.add(part)
        sampled.add(part)
    assert exact.level == 0 and exact.repeated_share() == pytest.approx(1200 / 3600)
    assert sampled.level > 0 and sampled._n <= 500
    assert sampled.repeated_share() == pytest.approx(1200 / 3600, abs=0.08)
    assert RepeatSample().repeated_share() == 0.0


def test_confinement_is_weighed_from_its_counts_not_cut():
    # 81 of the 82 records holding the word carry the target (one natural use elsewhere): the
    # counts favour a confined word, and the factor can raise the odds; 60 of 82 cannot
    assert confinement_ratio(81, 82) > 1 > confinement_ratio(60, 82)
    assert confinement_ratio(82, 82) > confinement_ratio(81, 82)
    assert confinement_ratio(0, 0) == 0.0
    near = clean_label_factor(0.0, False, records=81, confined_ratio=confinement_ratio(81, 82))
    assert near > 10
    far = clean_label_factor(0.0, False, records=81, confined_ratio=confinement_ratio(60, 82))
    assert far <= 1.0
    # a cohesive topic stays evidence against, confined or not
    assert (
        clean_label_factor(12.0, True, records=81, confined_ratio=confinement_ratio(82, 82)) < 0.01
    )
