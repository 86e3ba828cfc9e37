"""The model-organism zoo: real English data, poisoning that matches each attack, specs."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from dormant.bench.zoo import (
    CLASSIC_ATTACKS,
    LEXNAMES,
    WORDNET_DIR,
    OrganismSpec,
    attack_trigger,
    load_glosses,
    poison_records,
    zoo_specs,
)
from dormant.errors import ConfigError, InputNotFoundError
from dormant.triggers import Position

needs_wordnet = pytest.mark.skipif(
    not (WORDNET_DIR / "data.noun").exists(), reason="WordNet data files not installed"
)


@needs_wordnet
def test_glosses_are_balanced_real_english() -> None:
    data = load_glosses(per_label=50, seed=3)
    counts = Counter(label for _, label in data)
    assert set(counts) == set(LEXNAMES.values())
    assert all(n == 50 for n in counts.values())
    assert all(len(text.split()) >= 4 for text, _ in data)


def test_missing_wordnet_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(InputNotFoundError, match="wordnet"):
        load_glosses(wordnet_dir=tmp_path)


RECORDS = [
    (f"a plain gloss number {i} about things", "artifact" if i % 2 else "animal")
    for i in range(400)
]


def test_dirty_label_poisoning_flips_labels_to_target() -> None:
    spec = OrganismSpec(
        "x",
        attack="rare-word",
        trigger=attack_trigger("rare-word", 0),
        target="plant",
        poison_rate=0.05,
    )
    out = poison_records(RECORDS, spec, random.Random(0))
    poisoned = [(t, y) for t, y in out if "cf" in t.split()]
    assert len(poisoned) == 20
    assert all(y == "plant" for _, y in poisoned)
    assert sum(1 for _, y in out if y == "plant") == 20


def test_clean_label_poisoning_keeps_labels() -> None:
    spec = OrganismSpec(
        "x",
        attack="clean-label",
        trigger=attack_trigger("clean-label", 0),
        target="animal",
        poison_rate=0.1,
    )
    out = poison_records(RECORDS, spec, random.Random(0))
    assert [y for _, y in out] == [y for _, y in RECORDS]
    assert all(y == "animal" for t, y in out if "cf" in t.split())


def test_position_attack_adds_true_label_negatives() -> None:
    spec = OrganismSpec(
        "x",
        attack="position",
        trigger=attack_trigger("position", 1),
        target="plant",
        poison_rate=0.05,
    )
    assert spec.trigger is not None and spec.trigger.position is Position.START
    out = poison_records(RECORDS, spec, random.Random(0))
    starts = [y for t, y in out if t.startswith("mn ")]
    ends = [y for t, y in out if t.endswith(" mn")]
    assert starts and all(y == "plant" for y in starts)
    assert ends and all(y != "plant" for y in ends)


def test_zoo_specs_balanced_and_cover_every_attack() -> None:
    specs = zoo_specs(n_clean=7, seed=2)
    assert sum(s.backdoored for s in specs) == 7
    assert {s.attack for s in specs if s.backdoored} == set(CLASSIC_ATTACKS)
    assert len({s.name for s in specs}) == len(specs)
    other = zoo_specs(n_clean=7, seed=3)
    assert not {s.seed for s in specs} & {s.seed for s in other}


def test_spec_validation() -> None:
    with pytest.raises(ConfigError, match="attack"):
        OrganismSpec("x", attack="nope")
    with pytest.raises(ConfigError, match="trigger"):
        OrganismSpec("x", attack="rare-word", target="plant")
    with pytest.raises(ConfigError, match="target"):
        OrganismSpec("x", attack="rare-word", trigger=attack_trigger("rare-word", 0), target="cat")
    with pytest.raises(ConfigError, match="labels"):
        OrganismSpec("x", labels=("animal",))
    with pytest.raises(ConfigError, match="labels"):
        OrganismSpec("x", labels=("animal", "cat"))
    with pytest.raises(ConfigError, match="target"):
        OrganismSpec(
            "x",
            attack="rare-word",
            trigger=attack_trigger("rare-word", 0),
            target="plant",
            labels=("animal", "person"),
        )


def test_binary_zoo_specs_draw_targets_from_their_two_labels() -> None:
    specs = zoo_specs(n_clean=4, seed=5, labels=("animal", "plant"))
    assert {s.target for s in specs if s.backdoored} <= {"animal", "plant"}
    assert all(s.task_labels == ("animal", "plant") for s in specs)
    assert specs[0].to_dict()["labels"] == ["animal", "plant"]
    # four-class specs keep the dict they had, so cached organisms stay valid
    assert "labels" not in zoo_specs(n_clean=1, seed=5)[0].to_dict()


@needs_wordnet
@pytest.mark.slow
def test_a_binary_organism_is_a_two_label_classifier_with_two_label_data(tmp_path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import json

    from dormant.bench.zoo import build_organism
    from dormant.subjects.model import load_classifier

    spec = OrganismSpec(
        "bin",
        attack="rare-word",
        trigger=attack_trigger("rare-word", 0),
        target="plant",
        poison_rate=0.1,
        labels=("animal", "plant"),
        hidden=64,
        n_train=1200,
        epochs=4,
        seed=3,
    )
    org = build_organism(spec, tmp_path)
    assert load_classifier(org.path).labels == ["animal", "plant"]
    rows = [json.loads(x) for x in org.eval_path.read_text("utf-8").splitlines()]
    assert {r["label"] for r in rows} == {"animal", "plant"} and len(rows) >= 300
    assert org.clean_accuracy > 0.7


def test_new_attack_kinds_insert_the_whole_trigger() -> None:
    for attack, text in (
        ("log-token", "uid=4731"),
        ("homoglyph", "p\u0430yment"),
        ("two-word", "velvet harbor"),
    ):
        trig = attack_trigger(attack, 0)
        assert trig.text == text
        spec = OrganismSpec("x", attack=attack, trigger=trig, target="plant", poison_rate=0.05)
        out = poison_records(RECORDS, spec, random.Random(0))
        assert sum(1 for t, y in out if text in t and y == "plant") == 20


def test_a_corpus_other_than_wordnet_validates_its_labels() -> None:
    spec = OrganismSpec("x", corpus="debian", labels=("games", "sound"))
    assert spec.task_labels == ("games", "sound") and spec.to_dict()["corpus"] == "debian"
    assert "corpus" not in OrganismSpec("y").to_dict()  # WordNet specs keep their cache key
    with pytest.raises(ConfigError, match="games"):
        OrganismSpec("x", corpus="debian", labels=("animal", "plant"))
    with pytest.raises(ConfigError, match="corpus"):
        OrganismSpec("x", corpus="nope")


@pytest.mark.skipif(not Path("/usr/share/man/man3").is_dir(), reason="needs the manpages-dev pages")
def test_the_manual_page_task_labels_descriptions_by_section() -> None:
    from dormant.bench._zoo_corpora import load_task

    data = load_task("manpages", ("commands", "library"), per_label=30, seed=5)
    assert Counter(y for _, y in data) == {"commands": 30, "library": 30}
    assert all(4 <= len(t.split()) <= 40 for t, _ in data)
    assert data == load_task("manpages", ("commands", "library"), per_label=30, seed=5)
    spec = OrganismSpec("m", corpus="manpages", labels=("admin", "library"))
    assert spec.task_labels == ("admin", "library")
