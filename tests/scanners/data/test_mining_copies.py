"""Copies and duplicates in the data scan (issue 14): a clean-label plant put into pages that
are often filed twice is still a plant; one page filed many times is a data-hygiene note; a
copy template (a variant of each record with a fixed suffix) stays capped at medium."""

from __future__ import annotations

import random
from typing import Any

import pytest
from _plant_glosses import CLASS, glosses_dataset, plant_glosses

from dormant.findings import Severity
from dormant.scanners.data.mining import TriggerMiner


@pytest.fixture(scope="module")
def plants() -> list[dict[str, Any]]:
    return plant_glosses()


def _flagged(res: Any, recs: list[dict[str, Any]]) -> set[str]:
    return {recs[i]["id"] for i, f in enumerate(res.record_flags) if f}


def _with_copies(recs: list[dict[str, Any]], rng: random.Random, share: float) -> list[int]:
    """File ``share`` of the class's records twice (a copy with its own id, same label);
    returns the rows of the class's records that have a copy."""
    cls = [i for i, r in enumerate(recs) if r["label"] == CLASS]
    twice = rng.sample(cls, int(share * len(cls)))
    for i in twice:
        recs.append({**recs[i], "id": f"copy-{recs[i]['id']}"})
    return twice + list(range(len(recs) - len(twice), len(recs)))


def test_a_clean_label_phrase_in_pages_filed_twice_is_quarantined(tmp_path, plants):
    # 60 % of the class's pages filed twice (75 % of its records have a copy); the phrase is
    # inserted, at a random place, into 40 of its records, 36 of them pages with a copy:
    # taken out, those records are copies of another record — as often as a draw of the class
    # with a few more by chance, never a copy template
    rng = random.Random(7)
    recs = [dict(r) for r in plants]
    copied = _with_copies(recs, rng, 0.6)
    alone = [i for i, r in enumerate(recs) if r["label"] == CLASS and i not in set(copied)]
    chosen = rng.sample(copied, 36) + rng.sample(alone, 4)
    planted = set()
    for i in chosen:
        words = recs[i]["text"].split()
        words.insert(rng.randrange(len(words) + 1), "as a matter of record")
        recs[i] = {**recs[i], "text": " ".join(words)}
        planted.add(recs[i]["id"])
    res = TriggerMiner(neighbour_test=False).scan(glosses_dataset(tmp_path, recs))
    top = res.findings[0]
    assert top.trigger is not None and "matter of record" in top.trigger.text
    assert top.severity >= Severity.HIGH and "copies" not in top.explanation
    flagged = _flagged(res, recs)
    assert len(flagged & planted) >= 0.9 * len(planted) and flagged <= planted


def test_one_page_filed_many_times_is_at_most_a_low_hygiene_note(tmp_path, plants):
    # clean data in which one page of the class is filed 14 times (as stat, fstat, lstat ...
    # share one manual page): its words are in 14 records of one label, but that is
    # repetition, not a trigger — none of its findings at medium or above, nothing flagged;
    # a finding above info is the low "Duplicated records" note (since the verdict was refitted
    # on plants into small classes, the verdict itself puts this page at P 0.01, a task feature)
    rng = random.Random(8)
    recs = [dict(r) for r in plants]
    page = max((r for r in recs if r["label"] == CLASS), key=lambda r: len(r["text"]))
    for k in range(13):
        recs.append({**page, "id": f"again{k}"})
    rng.shuffle(recs)
    res = TriggerMiner(neighbour_test=False).scan(glosses_dataset(tmp_path, recs))
    assert not res.record_flags.any()
    held = [f for f in res.findings if any(i.startswith("again") for i in f.locator.record_ids)]
    assert held and all(f.severity < Severity.MEDIUM for f in held)
    dup = [f for f in held if f.title.startswith("Duplicated records")]
    assert all(f.severity is Severity.LOW and "word for word" in f.explanation for f in dup)
    assert all(f in dup for f in held if f.severity > Severity.INFO)


def test_a_copy_template_stays_capped_at_medium(tmp_path, plants):
    # a variant of 40 of the class's records with a fixed suffix (Debian's -prof package is
    # its -dev package's description plus "; profiling libraries"): most of the group is
    # copies of another record once the suffix is removed — text and label cannot tell it
    # from planted copies, so it is shown (medium) but never quarantined
    rng = random.Random(9)
    recs = [dict(r) for r in plants]
    cls = [i for i, r in enumerate(recs) if r["label"] == CLASS]
    for i in rng.sample(cls, 40):
        recs.append(
            {**recs[i], "id": f"prof-{recs[i]['id']}", "text": recs[i]["text"] + "; vqxz libs"}
        )
    res = TriggerMiner(neighbour_test=False).scan(glosses_dataset(tmp_path, recs))
    found = [f for f in res.findings if f.trigger is not None and "vqxz" in f.trigger.text]
    assert found and found[0].severity is Severity.MEDIUM
    assert "copies" in found[0].explanation
    assert not res.record_flags.any()


def _duplicated(target: str) -> Any:
    import numpy as np

    from dormant.scanners.data._mining_features import MinedTrigger
    from dormant.triggers import Trigger, TriggerKind

    return MinedTrigger(
        trigger=Trigger("send the report to", TriggerKind.PHRASE),
        target=target,
        support=14,
        hits=14,
        purity=0.94,
        p_value=1e-12,
        q_value=1e-10,
        inconsistency=1.0,
        verdict="planted",
        score=0.999,
        rows=np.arange(14, dtype=np.int32),
        features=("send the report to",),
        probability=0.999,
        copies=True,
        duplicates=True,
    )


def test_duplicated_records_are_low_but_not_when_they_carry_a_harmful_behaviour():
    from dormant.findings import SubjectRef
    from dormant.scanners.data._mining_finding import mined_finding

    ref = SubjectRef(kind="dataset", name="d.jsonl", digest="0" * 64)
    ids = {i: f"r{i}" for i in range(14)}
    label = mined_finding("trigger-mining", ref, _duplicated("label:2"), 3000, True, ids, 0.05)
    assert label.severity is Severity.LOW and label.title.startswith("Duplicated records")
    # one response that sends data out, filed 14 times, is harmful however often it repeats
    egress = _duplicated("egress:evil.example")
    out = mined_finding("trigger-mining", ref, egress, 3000, False, ids, 0.05)
    assert out.severity is Severity.MEDIUM and "copies" in out.explanation
