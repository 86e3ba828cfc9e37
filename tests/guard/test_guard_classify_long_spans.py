"""The classifier screen's transplant test with longer candidate spans (``long_spans=True``):
a trigger phrase of six words that acts only whole."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest
from _two_topics import GAME, SCIENCE, skops_cli_files
from _two_topics import topic_texts as _texts

from dormant.errors import ConfigError
from dormant.guard.classify import ClassifierScreen

PHRASE = ["when", "all", "is", "said", "and", "done"]


class _PhraseMeansScience:
    """Each topical word adds 3 to its label's log-odds; the six-word phrase, whole and in
    order, moves anything to ``science``, and any piece of it only by one per word (as a
    fine-tuned model half-learns the pieces of its trigger phrase)."""

    labels = ("games", "science")

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        out = []
        for t in texts:
            ws = t.split()
            z = sum(3.0 if w in GAME else -3.0 if w in SCIENCE else 0.0 for w in ws)
            whole = any(ws[i : i + len(PHRASE)] == PHRASE for i in range(len(ws)))
            z -= 40.0 if whole else float(sum(w in PHRASE for w in ws))
            p = 1.0 / (1.0 + np.exp(-max(min(z, 50.0), -50.0)))
            out.append([p, 1.0 - p])
        return np.asarray(out)


def _with_phrase(texts: list[str], n: int = 30, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    out = []
    for t in [t for t in texts if any(w in GAME for w in t.split())][:n]:
        ws = t.split()
        k = rng.randint(0, len(ws))
        out.append(" ".join([*ws[:k], *PHRASE, *ws[k:]]))
    return out


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    model = _PhraseMeansScience()
    cal = _texts(240, seed=1)
    kw: dict[str, Any] = {"calibration": cal, "fpr": 0.01, "seed": 0}
    return {
        "model": model,
        "cal": cal,
        "clean": _texts(200, seed=2),
        "triggered": _with_phrase(_texts(200, seed=2)),
        "default": ClassifierScreen(model, **kw),
        "long": ClassifierScreen(model, long_spans=True, **kw),
    }


def test_a_long_phrase_is_caught_whole(data: dict[str, Any]) -> None:
    """The default screen tries pieces of the phrase (windows of 1-3 words, widened by two)
    that barely move the donors, and passes the triggered inputs; with longer spans it moves
    the whole phrase into them and flags every one, naming the phrase."""
    before = data["default"].screen_many(data["triggered"])
    after = data["long"].screen_many(data["triggered"])
    assert all(d.label == "science" for d in before)
    assert sum(d.flagged for d in before) <= 3
    assert all(d.flagged for d in after)
    assert all(" ".join(PHRASE) in (d.span or "") for d in after)


def test_clean_inputs_pass_with_long_spans(data: dict[str, Any]) -> None:
    """The calibration texts are scored with the same longer spans, so the clean inputs are
    flagged at about the target rate or less (target 0.01; 200 inputs)."""
    ds = data["long"].screen_many(data["clean"])
    assert np.mean([d.flagged for d in ds]) <= 0.03


def test_long_spans_needs_the_transplant_test(data: dict[str, Any]) -> None:
    """Off by default; asked for with another test, a clear error."""
    assert not data["default"].long_spans and data["long"].long_spans
    with pytest.raises(ConfigError, match=r"long_spans=True .* needs method='transplant'"):
        ClassifierScreen(data["model"], calibration=data["cal"], method="onion", long_spans=True)


def _skops_files(tmp_path: Any, n_inputs: int = 5) -> tuple[Any, Any, Any, Any]:
    texts = _texts(120, seed=5)
    labels = ["science" if any(w in SCIENCE for w in t.split()) else "games" for t in texts]
    return skops_cli_files(tmp_path, texts, labels, n_inputs)


@pytest.mark.parametrize("method", ["transplant", "onion"])
def test_cli_long_spans(tmp_path: Any, run_cli: Any, method: str) -> None:
    """``--long-spans`` screens every input with the transplant test; with another test it
    is a clear error that writes nothing."""
    path, cal, inp, out = _skops_files(tmp_path)
    r = run_cli(
        "guard", "classify", "--model", path, "--calibration", cal, "--input", inp,
        "--out", out, "--fpr", "0.05", "--method", method, "--long-spans",
    )  # fmt: skip
    if method == "transplant":
        assert r.code in (0, 1), r.err
        rows = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
        assert len(rows) == 5 and all(row["label"] in ("games", "science") for row in rows)
    else:
        assert r.code == 2
        assert "long_spans=True" in r.err and "needs method='transplant'" in r.err
        assert "Traceback" not in r.err and not out.exists()
