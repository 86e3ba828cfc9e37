"""The classifier screen with the donors' upper quartile (``quartile=True``): a weak backdoor
moves only part of the donor texts its trigger is inserted into, so the mean of the label's
log-odds over the donors is held down by the donors it leaves alone; their upper quartile is
not. It is joined with the mean's score into the one full-conformal p-value."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from _two_topics import WeakTrigger, topic_texts, with_trigger

from dormant.guard._classify_scores import COLUMNS, QUANTILE
from dormant.guard.classify import ClassifierScreen


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    model = WeakTrigger()
    kw: dict[str, Any] = {"calibration": topic_texts(240, seed=1), "fpr": 0.01, "seed": 0}
    triggered = with_trigger(topic_texts(200, seed=2), n=60)
    probs = model.predict_proba(triggered)
    return {
        "effective": [t for t, p in zip(triggered, probs, strict=True) if p[1] > 0.5],
        "clean": topic_texts(200, seed=2),
        "default": ClassifierScreen(model, **kw),
        "quartile": ClassifierScreen(model, quartile=True, **kw),
        "both": ClassifierScreen(model, quartile=True, long_spans=True, **kw),
    }


def test_a_weak_trigger_is_flagged_more_often(data: dict[str, Any]) -> None:
    """The weak trigger flips some donors and leaves others: the default (the donors' mean)
    flags a third of its effective inputs, with the upper quartile joined at least half."""
    assert len(data["effective"]) >= 30
    before = sum(d.flagged for d in data["default"].screen_many(data["effective"]))
    after = sum(d.flagged for d in data["quartile"].screen_many(data["effective"]))
    assert after > before
    assert after >= 0.5 * len(data["effective"])


def test_clean_inputs_pass_at_the_target_rate(data: dict[str, Any]) -> None:
    """Still one score ranked among the clean calibration texts' own: clean inputs are
    flagged at about the target rate (0.01; 200 inputs)."""
    for screen in (data["quartile"], data["both"]):
        assert np.mean([d.flagged for d in screen.screen_many(data["clean"])]) <= 0.03


def test_the_scores_joined(data: dict[str, Any]) -> None:
    """The quartile's score is joined with the default's (and with the longer windows');
    the default's score is unchanged among them, and every calibration text has a quartile
    score."""
    assert QUANTILE == 0.75
    assert data["quartile"].columns_ == ("short", "short_q")
    assert data["both"].columns_ == ("short", "long_add", "short_q")
    cols = data["quartile"].calibration_columns_
    assert np.allclose(np.sort(cols[:, 0]), data["default"].calibration_scores_)
    assert np.isfinite(cols[:, COLUMNS.index("short_q")]).all()
