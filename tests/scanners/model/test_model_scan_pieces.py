"""Whole-trigger recovery from the pieces the clean data never shows (``_absent``)."""

from __future__ import annotations

import json

import pytest
from _threads import torch_threads

from dormant.bench.zoo import WORDNET_DIR, Organism, OrganismSpec, build_organism
from dormant.scanners.model._absent import (
    SCREEN_FLIP,
    absent_pool,
    assemble,
    both_ends,
    screen,
    solo_pieces,
)
from dormant.scanners.model._support import TaskSupport
from dormant.subjects.model import load_classifier
from dormant.triggers import Position, Trigger, TriggerKind

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (WORDNET_DIR / "data.noun").exists(), reason="needs WordNet data"),
]


@pytest.fixture(scope="module")
def two_word(tmp_path_factory: pytest.TempPathFactory) -> Organism:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import torch

    torch.set_num_threads(torch_threads())
    spec = OrganismSpec(
        "two-word",
        attack="two-word",
        trigger=Trigger("velvet harbor", TriggerKind.PHRASE, Position.RANDOM),
        target="plant",
        poison_rate=0.15,
        seed=21,
        labels=("animal", "plant"),
        layers=2,
        hidden=64,
        n_train=1000,
        epochs=4,
    )
    return build_organism(spec, tmp_path_factory.mktemp("pieces-zoo"))


def test_the_other_word_of_a_planted_pair_is_found_and_put_with_the_first(
    two_word: Organism,
) -> None:
    import torch

    assert two_word.attack_success_rate is not None and two_word.attack_success_rate > 0.9
    rows = [json.loads(x) for x in two_word.eval_path.read_text("utf-8").splitlines()]
    texts, given = [r["text"] for r in rows], [r["label"] for r in rows]
    m = load_classifier(two_word.path)
    ad, tok = m.adapter, m.adapter.tokenizer
    ti = m.labels.index("plant")
    pred = m.predict_proba(texts[:200]).argmax(1)
    victims = [t for t, p in zip(texts[:200], pred, strict=True) if p != ti][:12]
    support = TaskSupport.fit(ad, texts, given, m.labels)
    (velvet,) = tok("velvet", add_special_tokens=False)["input_ids"]
    (harbor,) = tok("harbor", add_special_tokens=False)["input_ids"]
    banned = set(ad.special_ids()) | support.associated("plant")
    pool = absent_pool(ad, support.counts, banned | {harbor})
    # the planted words are in no clean record; the task's own words are not in the pool
    assert velvet in pool and harbor not in pool
    assert not support.associated("plant") & set(pool)
    # from the piece "harbor", the other planted word is the piece that flips alone
    # (a target-class word the clean records happen to lack may flip alone too, so velvet
    # need not come first)
    pieces = solo_pieces(ad, victims, ti, pool)
    alone, _ = both_ends(ad, victims, ti, torch.tensor([[velvet]]))
    assert velvet in pieces, (tok.convert_ids_to_tokens(pieces), float(alone[0]))
    whole = assemble(ad, victims, ti, [harbor], pieces)
    assert {velvet, harbor} <= set(whole), tok.convert_ids_to_tokens(list(whole))
    flip, low = both_ends(ad, victims, ti, torch.tensor([whole]))
    _, low_piece = both_ends(ad, victims, ti, torch.tensor([[harbor]]))
    assert float(flip[0]) >= 0.9 and float(low[0]) >= float(low_piece[0])


def test_the_staged_screen_passes_exactly_the_tokens_the_two_end_rule_passes(
    two_word: Organism,
) -> None:
    import torch

    rows = [json.loads(x) for x in two_word.eval_path.read_text("utf-8").splitlines()]
    texts = [r["text"] for r in rows][:200]
    m = load_classifier(two_word.path)
    ad = m.adapter
    ti = m.labels.index("plant")
    pred = m.predict_proba(texts).argmax(1)
    victims = [t for t, p in zip(texts, pred, strict=True) if p != ti]
    every = torch.arange(int(ad.embedding_matrix().shape[0])).unsqueeze(1)
    for n in (6, 3, 1):
        flip, _ = both_ends(ad, victims[:n], ti, every)
        rule = set((flip >= SCREEN_FLIP - 1e-6).nonzero().flatten().tolist())
        staged = set(screen(ad, victims[:n], ti, every).tolist())
        # the whole vocabulary screened: the planted words pass, and nothing else changes
        assert staged == rule, (n, sorted(rule ^ staged))
    assert rule


def test_a_clean_model_has_no_piece_outside_its_clean_data(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    pytest.importorskip("torch")
    import torch

    torch.set_num_threads(torch_threads())
    spec = OrganismSpec(
        "clean",
        seed=22,
        labels=("animal", "plant"),
        layers=2,
        hidden=64,
        n_train=1000,
        epochs=4,
    )
    org = build_organism(spec, tmp_path_factory.mktemp("pieces-clean"))
    rows = [json.loads(x) for x in org.eval_path.read_text("utf-8").splitlines()]
    texts, given = [r["text"] for r in rows], [r["label"] for r in rows]
    m = load_classifier(org.path)
    ad = m.adapter
    support = TaskSupport.fit(ad, texts, given, m.labels)
    for ti, lab in enumerate(m.labels):
        pred = m.predict_proba(texts[:200]).argmax(1)
        victims = [t for t, p in zip(texts[:200], pred, strict=True) if p != ti][:12]
        pool = absent_pool(ad, support.counts, set(ad.special_ids()) | support.associated(lab))
        # no word the clean data lacks switches a clean model's inputs at both ends
        assert solo_pieces(ad, victims, ti, pool) == []
