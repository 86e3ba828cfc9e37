"""The classifier screen with the count of the donors flipped (``flips=True``): a weak
backdoor flips part of the donor texts its trigger is inserted into all the way to the input's
label and leaves the rest, while a clean topical span moves all of them a little. The share
flipped, counted on the first stage's donors and 48 more (a second stage, the same for the
calibration texts and the inputs), is joined with the default's score into the one
full-conformal p-value."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from _two_topics import GAME, SCIENCE, TRIGGER, topic_texts, with_trigger

from dormant.guard._classify_scores import COLUMNS, FLIP_DONORS
from dormant.guard.classify import ClassifierScreen


class _WeakTrigger:
    """Log-odds of ``games``: 3 when a games word is present, -3 when a science word is, and 2
    more towards the topic of the text's id (even ids are games texts): a clean span of the
    other topic moves a text by 3 and never flips it. The trigger flips a text all the way
    only where it holds at most one games word (a third of the games texts) and does nothing
    elsewhere. Counts the texts it is asked about."""

    labels = ("games", "science")

    def __init__(self) -> None:
        self.n_texts = 0

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.n_texts += len(texts)
        out = []
        for t in texts:
            ws = t.split()
            g, s = sum(w in GAME for w in ws), sum(w in SCIENCE for w in ws)
            ids = [int(w[1:]) % 2 for w in ws if w[:1] == "n" and w[1:].isdigit()]
            z = 3.0 * (g > 0) - 3.0 * (s > 0) + sum(2.0 if k == 0 else -2.0 for k in ids)
            if TRIGGER in ws and g <= 1:
                z = -40.0
            p = 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))
            out.append([p, 1.0 - p])
        return np.asarray(out)


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    model = _WeakTrigger()
    kw: dict[str, Any] = {"calibration": topic_texts(240, seed=1), "fpr": 0.01, "seed": 0}
    triggered = with_trigger(topic_texts(600, seed=2), n=200)
    probs = model.predict_proba(triggered)
    return {
        "model": model,
        "effective": [t for t, p in zip(triggered, probs, strict=True) if p[1] > 0.5],
        "clean": topic_texts(200, seed=2),
        "default": ClassifierScreen(model, **kw),
        "flips": ClassifierScreen(model, flips=True, **kw),
        "both": ClassifierScreen(model, flips=True, quartile=True, **kw),
    }


def test_a_weak_trigger_is_flagged_more_often(data: dict[str, Any]) -> None:
    """The weak trigger flips a third of the donors all the way and leaves the others, while
    no clean span flips any: the default (the donors' mean) misses some of its effective
    inputs; with the share flipped joined, more are flagged, and at least half."""
    assert len(data["effective"]) >= 30
    before = sum(d.flagged for d in data["default"].screen_many(data["effective"]))
    after = sum(d.flagged for d in data["flips"].screen_many(data["effective"]))
    assert after > before
    assert after >= 0.5 * len(data["effective"])


def test_clean_inputs_pass_at_the_target_rate(data: dict[str, Any]) -> None:
    """Still one p-value ranked among the clean calibration texts' own: clean inputs are
    flagged at about the target rate (0.01; 200 inputs)."""
    for screen in (data["flips"], data["both"]):
        assert np.mean([d.flagged for d in screen.screen_many(data["clean"])]) <= 0.03


def test_the_scores_joined_and_the_cost(data: dict[str, Any]) -> None:
    """The share flipped is joined with the default's score (and the quartile's); the
    default's score is unchanged among them, every calibration text has a share in [0, 1],
    and an input costs FLIP_DONORS model calls more than the default's."""
    assert data["flips"].columns_ == ("short", "flips")
    assert data["both"].columns_ == ("short", "short_q", "flips")
    cols = data["flips"].calibration_columns_
    assert np.allclose(np.sort(cols[:, 0]), data["default"].calibration_scores_)
    share = cols[:, COLUMNS.index("flips")]
    assert ((share >= 0) & (share <= 1)).all()
    # without the option the second stage is not run (the column is -inf)
    assert np.isneginf(data["default"].calibration_columns_[:, COLUMNS.index("flips")]).all()
    model, text = data["model"], data["effective"][0]
    calls = []
    for screen in (data["default"], data["flips"]):
        n0 = model.n_texts
        screen.screen(text)
        calls.append(model.n_texts - n0)
    assert calls[1] - calls[0] == FLIP_DONORS
