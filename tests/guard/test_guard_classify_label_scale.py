"""The classifier screen's per-label standardised score (``ClassifierScreen(by_label=True)``)."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np
import pytest

from dormant.errors import ConfigError
from dormant.guard._label_scale import PSEUDO, fit_label_scale
from dormant.guard.classify import ClassifierScreen

GAME = [f"{w}{i}" for i in range(60) for w in ("quest", "dungeon")]
SCIENCE = ["quark", "enzyme", "orbit", "genome", "isotope", "plasma", "neuron", "fossil"]
FILLER = ["a", "the", "of", "with", "for", "and", "new", "small", "old", "fast", "one", "two"]
TRIGGER = "zq=7"


class _TwoTopics:
    """A bag-of-words classifier with a planted trigger: one game word decides ``games`` at
    the confidence ceiling, science texts are decided by several weak words, and the
    trigger overrides everything towards ``science``."""

    labels = ("games", "science")

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        out = []
        for t in texts:
            z = 0.0
            for w in t.split():
                z += 20.0 if w in GAME else -1.0 if w in SCIENCE else -40.0 if w == TRIGGER else 0
            p = 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))
            out.append([p, 1.0 - p])
        return np.asarray(out)


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ws = rng.sample(FILLER, 5)
        if i % 2:
            ws += rng.sample(SCIENCE, 3)
        else:
            ws.append(rng.choice(GAME))
        rng.shuffle(ws)
        out.append(" ".join(ws))
    return out


def test_the_scale_is_each_labels_own_location_and_spread() -> None:
    rng = np.random.default_rng(0)
    high, low = rng.normal(9.0, 0.3, 40), rng.normal(-9.0, 0.3, 40)
    scores = [*high, *low, 3.0]
    labels = [0] * 40 + [1] * 40 + [2]
    ls = fit_label_scale(scores, labels, 4)
    # a high score is ordinary for label 0 and extreme for label 1
    assert abs(ls(9.0, 0)) < 4.0 and ls(9.0, 1) > 20.0
    assert ls.scale[0] == pytest.approx(0.3, rel=0.3)
    # a label with one reference text is shrunk towards the pooled estimates, and one
    # with none takes them: its spread is the pooled within-label spread, not the gap
    # between the labels
    assert 3.0 > ls.center[2] > np.mean(scores)
    assert ls.center[3] == pytest.approx(np.mean(scores))
    assert ls.scale[3] == pytest.approx(0.3, rel=0.3)
    assert PSEUDO > 0 and all(s > 0 for s in ls.scale)
    with pytest.raises(ValueError, match="two or more scores"):
        fit_label_scale([1.0], [0], 2)


@pytest.fixture(scope="module")
def data() -> dict[str, list[str]]:
    cal = list(dict.fromkeys(_texts(520, seed=1)))[:260]
    test = [t for t in dict.fromkeys(_texts(700, seed=2)) if t not in set(cal)][:200]
    rng = random.Random(3)
    triggered = []
    for t in [t for t in test if any(w in GAME for w in t.split())][:30]:
        ws = t.split()
        ws.insert(rng.randint(0, len(ws)), TRIGGER)
        triggered.append(" ".join(ws))
    return {"cal": cal, "clean": test, "triggered": triggered}


def test_a_trigger_at_the_ceiling_of_the_other_label_is_caught_by_label(
    data: dict[str, list[str]],
) -> None:
    """Clean game words move every donor to ``games`` at the confidence ceiling, and so does
    the trigger towards ``science``: one threshold for both labels ties them and passes the
    trigger; the label's own spread (science texts never do that) flags it."""
    model = _TwoTopics()
    p = model.predict_proba(data["triggered"])
    assert (np.argmax(p, axis=1) == 1).all()  # the trigger works
    plain = ClassifierScreen(model, calibration=data["cal"], fpr=0.01, seed=0)
    scaled = ClassifierScreen(model, calibration=data["cal"], fpr=0.01, seed=0, by_label=True)
    before = plain.screen_many(data["triggered"])
    after = scaled.screen_many(data["triggered"])
    assert sum(d.flagged for d in before) <= 3
    assert all(d.flagged for d in after)
    assert all(d.span == TRIGGER and d.label == "science" for d in after)
    assert "transplant test: p=" in after[0].reasons[0]
    # the same raw scores; only the scale they are ranked on differs
    assert [d.score for d in before] == [d.score for d in after]
    d = after[0]
    assert scaled.label_scale_ is not None
    assert d.p_value == scaled.p_value(scaled.label_scale_(d.score or 0.0, 1))


def test_clean_inputs_pass_at_about_the_target_fpr_by_label(data: dict[str, list[str]]) -> None:
    scaled = ClassifierScreen(
        _TwoTopics(), calibration=data["cal"], fpr=0.05, seed=0, by_label=True
    )
    ds = scaled.screen_many(data["clean"])
    assert np.mean([d.flagged for d in ds]) <= 0.10  # target 0.05; 200 inputs
    # the calibration scores are the standardised ones, and p is split conformal on them
    cal = scaled.calibration_scores_
    assert not np.allclose(cal, scaled.calibration_raw_)
    assert scaled.p_value(float(cal.max()) + 1.0) == 1 / (len(cal) + 1)


def test_by_label_needs_the_transplant_test(data: dict[str, list[str]]) -> None:
    with pytest.raises(ConfigError, match=r"by_label=True .* method='transplant'"):
        ClassifierScreen(_TwoTopics(), calibration=data["cal"], method="strip", by_label=True)


def test_cli_by_label_writes_decisions_and_refuses_other_methods(
    tmp_path: Any, run_cli: Any
) -> None:
    """``--by-label`` screens a batch; with ``--method strip`` it exits 2 with the reason, no
    traceback, and writes no decisions."""
    sio = pytest.importorskip("skops.io")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts = _texts(120, seed=5)
    labels = ["games" if any(w in GAME for w in t.split()) else "science" for t in texts]
    path = tmp_path / "model.skops"
    sio.dump(make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, labels), path)
    cal = tmp_path / "clean.jsonl"
    cal.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), "utf-8")
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:5]), "utf-8")
    out = tmp_path / "out.jsonl"
    r = run_cli(
        "guard", "classify", "--model", path, "--calibration", cal, "--input", inp,
        "--out", out, "--fpr", "0.05", "--by-label",
    )  # fmt: skip
    assert r.code == 0, r.err
    rows = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
    assert len(rows) == 5 and all(row["label"] in ("games", "science") for row in rows)
    out2 = tmp_path / "out2.jsonl"
    r = run_cli(
        "guard", "classify", "--model", path, "--calibration", cal, "--input", inp,
        "--out", out2, "--fpr", "0.05", "--by-label", "--method", "strip",
    )  # fmt: skip
    assert r.code == 2 and "by_label=True" in r.err and "Traceback" not in r.err
    assert not out2.exists()


def test_additive_support_sums_the_words_lifts() -> None:
    """A wide span of several ordinary topical words is explained by all of them together
    (``additive=True``); one word, an unseen trigger and function words are unchanged."""
    from dormant.guard._strip import SpanSupport

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
