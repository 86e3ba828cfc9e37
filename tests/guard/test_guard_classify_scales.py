"""The classifier screen's longer windows calibrated on their own (``long_spans=True``): the
default's spans and the longer windows are two scores of one input, each ranked among the
clean calibration texts' scores of the same kind and joined into one full-conformal p-value,
so the longer windows neither hide a short trigger nor add false positives of their own."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from _two_topics import WeakTrigger, topic_texts, with_trigger

from dormant.guard._classify_scores import COLUMNS
from dormant.guard.classify import ClassifierScreen


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    model = WeakTrigger()
    kw: dict[str, Any] = {"calibration": topic_texts(240, seed=1), "fpr": 0.01, "seed": 0}
    triggered = with_trigger(topic_texts(200, seed=2))
    probs = model.predict_proba(triggered)
    effective = [t for t, p in zip(triggered, probs, strict=True) if p[1] > 0.5]
    return {
        "effective": effective,
        "clean": topic_texts(200, seed=2),
        "default": ClassifierScreen(model, **kw),
        "long": ClassifierScreen(model, long_spans=True, **kw),
    }


def test_a_weak_short_trigger_is_not_lost_to_the_longer_windows(data: dict[str, Any]) -> None:
    """Clean texts' windows of several topical words move donors far, but the longer windows
    are ranked only among the clean texts' longer windows (with the additive clean support),
    so the weak trigger the default flags stays flagged with them, and more of it is."""
    assert len(data["effective"]) >= 15
    before = sum(d.flagged for d in data["default"].screen_many(data["effective"]))
    after = sum(d.flagged for d in data["long"].screen_many(data["effective"]))
    assert after >= before
    assert after >= 0.8 * len(data["effective"])


def test_clean_inputs_pass_at_the_target_rate(data: dict[str, Any]) -> None:
    """One p-value for both scales: clean inputs are flagged at about the target rate
    (0.01; 200 inputs), as with the default's one score."""
    ds = data["long"].screen_many(data["clean"])
    assert np.mean([d.flagged for d in ds]) <= 0.03


def test_the_scales_the_p_value_joins(data: dict[str, Any]) -> None:
    """The default screen ranks one score; with longer windows the p-value joins the
    default's spans and the longer windows, and every calibration text has every score."""
    assert data["default"].columns_ == ("max",)
    assert data["long"].columns_ == ("short", "long_add")
    cols = data["long"].calibration_columns_
    assert cols.shape == (len(data["long"].calibration_scores_), len(COLUMNS))
    # the default's spans come first, with the same donors: its scores are the short column
    assert np.allclose(np.sort(cols[:, 0]), data["default"].calibration_scores_)
