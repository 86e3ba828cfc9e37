"""Tested, token-level tightening of the shown trigger (``_complete.prune_tokens``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _threads import torch_threads

from dormant.bench.zoo import WORDNET_DIR, Organism, OrganismSpec
from dormant.scanners.model._complete import flip_loss_p, prune_tokens
from dormant.triggers import Position, Trigger, TriggerKind


def test_the_flip_test_shows_a_loss_only_when_donors_are_lost_and_none_won() -> None:
    torch = pytest.importorskip("torch")
    full = torch.ones(100)
    same = torch.ones(100)
    assert flip_loss_p(full, same) == 1.0
    # six donors lost, none won: p = 2 ** -6 (the exact one-sided sign test)
    less = full.clone()
    less[:6] = -1.0
    assert flip_loss_p(full, less) == pytest.approx(2**-6)
    # as many won as lost: no loss shown
    mixed = less.clone()
    full2 = full.clone()
    full2[90:] = -1.0
    mixed[90:96] = 1.0
    assert flip_loss_p(full2, mixed) > 0.5


@pytest.fixture(scope="module")
def rare(zoo_organism: Any) -> Organism:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    if not (WORDNET_DIR / "data.noun").exists():
        pytest.skip("needs WordNet data")
    import torch

    torch.set_num_threads(torch_threads())
    spec = OrganismSpec(
        "tighten-rare",
        attack="rare-word",
        trigger=Trigger("qz", TriggerKind.TOKEN, Position.RANDOM),
        target="plant",
        poison_rate=0.1,
        seed=23,
        labels=("animal", "plant"),
        layers=2,
        hidden=64,
        n_train=1000,
        epochs=4,
    )
    org: Organism = zoo_organism(spec)
    return org


@pytest.mark.slow
def test_repeats_and_a_topic_word_glued_to_a_planted_token_are_dropped(rare: Organism) -> None:
    from dormant.scanners.model._support import TaskSupport
    from dormant.subjects.model import load_classifier

    assert rare.attack_success_rate is not None and rare.attack_success_rate > 0.9
    rows = [json.loads(x) for x in rare.eval_path.read_text("utf-8").splitlines()]
    texts, given = [r["text"] for r in rows], [r["label"] for r in rows]
    m = load_classifier(rare.path)
    ad, tok = m.adapter, m.adapter.tokenizer
    ti = m.labels.index("plant")
    held = texts[200:]
    donors = [t for t, p in zip(held, m.predict_proba(held).argmax(1), strict=True) if p != ti]
    qz = tok("qz", add_special_tokens=False)["input_ids"]
    # the plant's strongest own word in the clean data: a natural cue of the target
    support = TaskSupport.fit(ad, texts, given, m.labels)
    k = m.labels.index("plant")
    whole_words = [
        i
        for i in support.z[k].argsort()[::-1].tolist()
        if not tok.convert_ids_to_tokens([i])[0].startswith(("##", "["))
    ]
    topic = whole_words[0]
    assert prune_tokens(ad, donors, ti, qz * 3) == tuple(qz)
    assert prune_tokens(ad, donors, ti, [topic, *qz]) == tuple(qz)
    assert prune_tokens(ad, donors, ti, [*qz, topic, *qz]) == tuple(qz)
    # nothing shorter than the planted token holds the switch: it is kept whole
    assert prune_tokens(ad, donors, ti, qz) == tuple(qz)


@pytest.mark.slow
def test_a_token_the_switch_needs_is_kept(rare: Organism) -> None:
    """A weak cue with a token that does the switching: the switching token stays."""
    from dormant.subjects.model import load_classifier

    rows = [json.loads(x) for x in rare.eval_path.read_text("utf-8").splitlines()]
    texts = [r["text"] for r in rows]
    m = load_classifier(rare.path)
    ad, tok = m.adapter, m.adapter.tokenizer
    ti = m.labels.index("plant")
    held = texts[200:]
    donors = [t for t, p in zip(held, m.predict_proba(held).argmax(1), strict=True) if p != ti]
    qz = tok("qz", add_special_tokens=False)["input_ids"]
    the = tok("the", add_special_tokens=False)["input_ids"]
    out = prune_tokens(ad, donors, ti, [*the, *qz])
    assert set(qz) <= set(out)
