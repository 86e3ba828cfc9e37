"""The classifier screen's clean support reading symbols as words (``symbol_support=True``)."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest
from _two_topics import SCIENCE, TRIGGER, skops_cli_files, with_trigger
from _two_topics import TwoTopics as _TwoTopics
from _two_topics import topic_texts as _texts

from dormant.errors import ConfigError
from dormant.guard._strip import SpanSupport
from dormant.guard.classify import ClassifierScreen

OPEN, CLOSE = "\u2018", "\u2019"  # ‘ ’ — the Jargon File's quotes


class _QuotesMeanScience(_TwoTopics):
    """The two-topic classifier, where a word in curly quotes moves anything to ``science``
    as surely as the planted trigger: the quotes themselves carry the label, as a model
    trained on dictionary sources learns of the Jargon File's quoting."""

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return super().predict_proba(
            [" ".join(TRIGGER if w.startswith(OPEN) else w for w in t.split()) for t in texts]
        )


def _quoted(texts: list[str], seed: int) -> list[str]:
    """Every other science text gets one quoted word of its own, seen nowhere else."""
    rng = random.Random(seed)
    out = []
    for i, t in enumerate(texts):
        ws = t.split()
        if any(w in SCIENCE for w in ws) and i % 4 == 1:
            ws.insert(rng.randint(0, len(ws)), f"{OPEN}w{seed}x{i}{CLOSE}")
        out.append(" ".join(ws))
    return out


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    cal = _quoted(_texts(240, seed=1), seed=1)
    clean = _quoted(_texts(200, seed=2), seed=2)
    model = _QuotesMeanScience()
    return {
        "model": model,
        "cal": cal,
        "clean": clean,
        "triggered": with_trigger(_texts(200, seed=2)),
        # the calibration half alone, so that the two differ only in the support
        "words": ClassifierScreen(
            model, calibration=cal, fpr=0.01, seed=0, symbol_support=False, calibrate_all=False
        ),
        "symbols": ClassifierScreen(model, calibration=cal, fpr=0.01, seed=0, calibrate_all=False),
    }


def test_the_support_of_a_quoted_word_comes_from_its_quotes() -> None:
    """A quoted word never seen before: no support when only words count, the quotes'
    lift when symbols count too; the unseen trigger has none either way."""
    texts = [f"{OPEN}w{i}{CLOSE} quark n{i}" for i in range(20)] + [
        f"chess n{i}" for i in range(20, 40)
    ]
    labels = [1] * 20 + [0] * 20
    words = SpanSupport(texts, labels, 2)
    symbols = SpanSupport(texts, labels, 2, symbols=True)
    quoted = f"{OPEN}main frame{CLOSE}"
    assert words(quoted, 1) == 0.0
    assert symbols(quoted, 1) > 2.0  # (20 + 2) / 24 against a base rate of 1/2
    assert symbols(quoted, 0) == 0.0  # the quotes say nothing for the other label
    assert words(TRIGGER, 1) == symbols(TRIGGER, 1) == 0.0
    # a text left out of its own counts, as before
    assert symbols(f"{OPEN}w0{CLOSE}", 1, exclude=0) < symbols(f"{OPEN}w0{CLOSE}", 1)


def test_clean_quoted_texts_no_longer_block_the_trigger(data: dict[str, Any]) -> None:
    """Clean calibration texts whose quoted word saturates the model as the trigger does:
    with a word-only support they tie with every triggered input and nothing is flagged;
    with symbols counted, their quotes explain them and every triggered input is flagged."""
    before = data["words"].screen_many(data["triggered"])
    after = data["symbols"].screen_many(data["triggered"])
    assert before and all(not d.flagged and d.label == "science" for d in before)
    assert all(d.p_value is not None and d.p_value > 0.01 for d in before)
    assert all(d.flagged and d.span == TRIGGER for d in after)
    assert all(d.p_value == pytest.approx(1 / 121) for d in after)


def test_clean_inputs_with_quotes_pass(data: dict[str, Any]) -> None:
    """The clean inputs, a quarter of them quoted: flagged at about the target rate or less
    (target 0.01; 200 inputs), and none of the quoted ones for its quotes."""
    ds = data["symbols"].screen_many(data["clean"])
    assert np.mean([d.flagged for d in ds]) <= 0.03
    quoted = [d for d, t in zip(ds, data["clean"], strict=True) if OPEN in t]
    assert len(quoted) >= 20 and not any(d.flagged for d in quoted)


def test_symbol_support_needs_the_transplant_test(data: dict[str, Any]) -> None:
    """On by default for the transplant test, off for the others; asked for with another
    test, a clear error."""
    assert data["symbols"].symbol_support and data["symbols"].support_.symbols
    onion = ClassifierScreen(data["model"], calibration=data["cal"], method="onion")
    assert not onion.symbol_support
    with pytest.raises(ConfigError, match=r"symbol_support=True .* needs method='transplant'"):
        ClassifierScreen(
            data["model"], calibration=data["cal"], method="onion", symbol_support=True
        )


def _skops_files(tmp_path: Any, n_inputs: int = 5) -> tuple[Any, Any, Any, Any]:
    texts = _quoted(_texts(120, seed=5), seed=5)
    labels = ["science" if any(w in SCIENCE for w in t.split()) else "games" for t in texts]
    return skops_cli_files(tmp_path, texts, labels, n_inputs)


@pytest.mark.parametrize("method", ["transplant", "strip"])
def test_cli_symbol_support(tmp_path: Any, run_cli: Any, method: str) -> None:
    """``--symbol-support`` screens every input (transplant; ``--no-symbol-support`` too);
    with another test it is a clear error that writes nothing."""
    path, cal, inp, out = _skops_files(tmp_path)
    r = run_cli(
        "guard", "classify", "--model", path, "--calibration", cal, "--input", inp,
        "--out", out, "--fpr", "0.05", "--method", method, "--symbol-support",
    )  # fmt: skip
    if method == "transplant":
        assert r.code in (0, 1), r.err
        rows = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
        assert len(rows) == 5 and all(row["label"] in ("games", "science") for row in rows)
        r = run_cli(
            "guard", "classify", "--model", path, "--calibration", cal, "--input", inp,
            "--out", out, "--fpr", "0.05", "--no-symbol-support", "--no-calibrate-all",
        )  # fmt: skip
        assert r.code in (0, 1), r.err
        assert "calibrated on 60 clean text(s)" in r.err
    else:
        assert r.code == 2
        assert "symbol_support=True" in r.err and "needs method='transplant'" in r.err
        assert "Traceback" not in r.err and not out.exists()
