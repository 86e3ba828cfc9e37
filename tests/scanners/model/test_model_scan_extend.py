"""Extension of the shown trigger after pruning (``_extend.extend``) and its sign test."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dormant.bench.zoo import WORDNET_DIR, Organism, OrganismSpec
from dormant.scanners._signtest import sign_test
from dormant.triggers import Position, Trigger, TriggerKind


def test_the_sign_test_leaves_ties_out_and_counts_only_gains_of_the_margin() -> None:
    # eight inputs gain a nat or more, two gain less, ten are ties (both texts saturated)
    k, n, p = sign_test([1.5] * 8 + [0.2, -0.3] + [0.0] * 10, 1.0)
    assert (k, n) == (8, 10)
    assert p == pytest.approx(56 / 1024)  # P(X >= 8), X ~ Binomial(10, 1/2)
    # nothing but ties: no evidence
    assert sign_test([0.0] * 5, 1.0) == (0, 0, 1.0)
    # small gains everywhere are no gain of a nat
    assert sign_test([0.5] * 30, 1.0)[2] == 1.0


@pytest.fixture(scope="module")
def log_organism(zoo_organism: Any) -> Organism:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    if not (WORDNET_DIR / "data.noun").exists():
        pytest.skip("needs WordNet data")
    import torch

    torch.set_num_threads(2)
    # the verdict tests' key=value organism (the same spec: built once per session)
    spec = OrganismSpec(
        "log",
        attack="log-token",
        trigger=Trigger("uid=4731", TriggerKind.TOKEN, Position.RANDOM),
        target="plant",
        poison_rate=0.15,
        seed=12,
        layers=2,
        hidden=64,
        n_train=1200,
        epochs=4,
    )
    org: Organism = zoo_organism(spec)
    return org


@pytest.mark.slow
def test_a_piece_of_a_key_value_token_grows_only_by_the_token_s_own_pieces(
    log_organism: Organism,
) -> None:
    from dormant.scanners.model._extend import extend
    from dormant.scanners.model._recover import render
    from dormant.scanners.model._support import TaskSupport
    from dormant.scanners.model._words import word_pieces
    from dormant.scanners.model.whitebox import split_clean
    from dormant.subjects.model import check_clean_data, load_classifier
    from dormant.subjects.protocol import gradients_of

    rows = [json.loads(x) for x in log_organism.eval_path.read_text("utf-8").splitlines()]
    m = load_classifier(log_organism.path)
    m.clean = check_clean_data([r["text"] for r in rows], [r["label"] for r in rows], m)
    opt, held = split_clean(m, 0)
    ad = gradients_of(m)
    ti = m.labels.index("plant")
    pred, hpred = m.predict_proba(opt).argmax(1), m.predict_proba(held).argmax(1)
    victims = [t for t, p in zip(opt, pred, strict=True) if p != ti][:16]
    donors = [t for t, p in zip(held, hpred, strict=True) if p != ti]
    support = TaskSupport.fit(ad, m.clean.texts, m.clean.labels, m.labels)
    pool = word_pieces(ad, ad.special_ids() | support.associated("plant"))
    piece = tuple(ad.tokenizer("4731", add_special_tokens=False)["input_ids"])
    out = extend(ad, victims, donors, ti, piece, pool)
    text = render(ad, out).replace(" ", "")
    # the piece stays, and whatever is added is the planted token's own, never a plant word
    assert "4731" in text
    assert text in "uid=4731", text
