"""The classifier screen's additive clean support (``additive_support=True``)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from _two_topics import GAME, TRIGGER, skops_cli_files, with_trigger
from _two_topics import TwoTopics as _TwoTopics
from _two_topics import topic_texts as _texts

from dormant.guard._strip import SpanSupport
from dormant.guard.classify import ClassifierScreen


def test_additive_support_sums_the_words_lifts() -> None:
    """A wide span of several ordinary topical words is explained by all of them together
    (``additive=True``); one word, an unseen trigger and function words are unchanged."""
    texts = [
        "the FileMaker database server",
        "a relational database engine",
        "database and server tools",
        "a server for mail",
        "an old English word",
        "a small English poem",
        "the word of a poem",
        "a poem for the people",
    ]
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    plain = SpanSupport(texts, labels, 2)
    summed = SpanSupport(texts, labels, 2, additive=True)
    span = "database server"
    assert summed(span, 0) == pytest.approx(plain("database", 0) + plain("server", 0))
    assert summed(span, 0) > plain(span, 0) > 0.0
    assert summed("database", 0) == plain("database", 0)
    assert summed("seq=7718", 0) == plain("seq=7718", 0) == 0.0
    # a word that speaks for the other label adds nothing (lifts below 0 are not summed)
    assert summed("database poem", 0) == pytest.approx(plain("database", 0))
    # the text itself is still left out of its own counts
    assert summed(span, 0, exclude=0) < summed(span, 0)


@pytest.fixture(scope="module")
def data() -> dict[str, list[str]]:
    cal = _texts(300, seed=1)
    clean = _texts(200, seed=2)
    triggered = with_trigger(clean)
    return {"cal": cal, "clean": clean, "triggered": triggered}


def test_additive_support_lowers_clean_scores_and_keeps_the_triggers(
    data: dict[str, list[str]],
) -> None:
    """Same donors and seeds: every calibration score is at most the default one (a span's
    summed support is at least its largest lift), the trigger's unseen span keeps its score,
    so its p-value can only fall; the triggered inputs are flagged and named."""
    model = _TwoTopics()
    assert (np.argmax(model.predict_proba(data["triggered"]), axis=1) == 1).all()
    plain = ClassifierScreen(model, calibration=data["cal"], fpr=0.01, seed=0)
    summed = ClassifierScreen(
        model, calibration=data["cal"], fpr=0.01, seed=0, additive_support=True
    )
    assert (summed.calibration_scores_ <= plain.calibration_scores_ + 1e-12).all()
    assert (summed.calibration_scores_ < plain.calibration_scores_ - 0.5).any()
    before = plain.screen_many(data["triggered"])
    after = summed.screen_many(data["triggered"])
    for b, a in zip(before, after, strict=True):
        assert a.span == b.span == TRIGGER and a.score == b.score
        assert a.p_value is not None and b.p_value is not None and a.p_value <= b.p_value
    assert all(d.flagged and d.label == "science" for d in after)
    assert any("'zq=7' decides it alone" in r for r in after[0].reasons)


def test_clean_inputs_pass_at_about_the_target_fpr_with_additive_support(
    data: dict[str, list[str]],
) -> None:
    summed = ClassifierScreen(
        _TwoTopics(), calibration=data["cal"], fpr=0.05, seed=0, additive_support=True
    )
    ds = summed.screen_many(data["clean"])
    assert np.mean([d.flagged for d in ds]) <= 0.10  # target 0.05; 200 inputs


def test_cli_additive_support_writes_decisions(tmp_path: Any, run_cli: Any) -> None:
    texts = _texts(120, seed=5)
    labels = ["games" if any(w in GAME for w in t.split()) else "science" for t in texts]
    path, cal, inp, out = skops_cli_files(tmp_path, texts, labels)
    r = run_cli(
        "guard", "classify", "--model", path, "--calibration", cal, "--input", inp,
        "--out", out, "--fpr", "0.05", "--additive-support",
    )  # fmt: skip
    assert r.code == 0, r.err
    rows = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
    assert len(rows) == 5 and all(row["label"] in ("games", "science") for row in rows)
