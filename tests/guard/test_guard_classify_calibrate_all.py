"""The classifier screen calibrated on every clean text (``calibrate_all=True``)."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import numpy as np
import pytest
from _two_topics import GAME, TRIGGER, skops_cli_files, with_trigger
from _two_topics import TwoTopics as _TwoTopics
from _two_topics import topic_texts as _texts

from dormant.errors import ConfigError
from dormant.guard._strip import transplant_evidence
from dormant.guard.classify import ClassifierScreen


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    cal = _texts(240, seed=1)
    clean = _texts(200, seed=2)
    triggered = with_trigger(clean)
    model = _TwoTopics()
    return {
        "cal": cal,
        "clean": clean,
        "triggered": triggered,
        "plain": ClassifierScreen(model, calibration=cal, fpr=0.01, seed=0, calibrate_all=False),
        "all": ClassifierScreen(model, calibration=cal, fpr=0.01, seed=0, calibrate_all=True),
    }


def test_every_clean_text_becomes_a_calibration_score(data: dict[str, Any]) -> None:
    """240 clean texts: 120 calibration scores by default, 240 with ``calibrate_all`` — the
    default's 120 among them unchanged, plus one per donor — so the p-value's step halves."""
    plain, every = data["plain"], data["all"]
    assert len(plain.calibration_scores_) == 120 and len(plain.donor_scores_) == 0
    assert len(every.calibration_scores_) == 240 and len(every.donor_scores_) == 120
    assert plain.p_resolution_ == pytest.approx(1 / 121)
    assert every.p_resolution_ == pytest.approx(1 / 241)
    rest = Counter(every.calibration_scores_.tolist()) - Counter(every.donor_scores_.tolist())
    assert sorted(rest.elements()) == plain.calibration_scores_.tolist()


def test_inputs_score_as_before_and_triggers_are_flagged(data: dict[str, Any]) -> None:
    """An input's score does not change (same donors, same support); only the calibration
    it is ranked in grows. The planted trigger is flagged and named."""
    before = data["plain"].screen_many(data["triggered"])
    after = data["all"].screen_many(data["triggered"])
    for b, a in zip(before, after, strict=True):
        assert a.score == b.score and a.span == b.span == TRIGGER
    assert all(d.flagged and d.label == "science" for d in after)
    assert any("against 240 clean texts" in r for r in after[0].reasons)


class _WithNaturalTrigger(_TwoTopics):
    """The same classifier, where one ordinary word, ``warp``, also moves anything to
    ``science`` as surely as the planted trigger (a clean word at the model's ceiling)."""

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return super().predict_proba([t.replace("warp", TRIGGER) for t in texts])


def test_one_saturating_clean_text_no_longer_blocks_every_trigger(data: dict[str, Any]) -> None:
    """One clean calibration text whose word saturates the model as the trigger does: by
    default it ties with every triggered input (p = 2/122 > 0.01, nothing flagged); with
    every clean text calibrated, one tie is allowed (p = 2/241 <= 0.01) and they are."""
    model = _WithNaturalTrigger()
    cal = [*data["cal"][:239], "the old warp of a fast one n999"]
    for seed in range(20):  # a seed that puts the saturating text in the calibration half
        plain = ClassifierScreen(model, calibration=cal, fpr=0.01, seed=seed, calibrate_all=False)
        if cal[-1] not in {d for d, _ in plain.donors_}:
            break
    every = ClassifierScreen(model, calibration=cal, fpr=0.01, seed=seed, calibrate_all=True)
    before = plain.screen_many(data["triggered"])
    after = every.screen_many(data["triggered"])
    assert all(b.p_value == pytest.approx(2 / 121) and not b.flagged for b in before)
    assert all(a.p_value == pytest.approx(2 / 241) and a.flagged for a in after)


def test_clean_inputs_pass_at_about_the_target_fpr_when_calibrated_on_all(
    data: dict[str, Any],
) -> None:
    every = ClassifierScreen(
        _TwoTopics(), calibration=data["cal"], fpr=0.05, seed=0, calibrate_all=True
    )
    ds = every.screen_many(data["clean"])
    assert np.mean([d.flagged for d in ds]) <= 0.10  # target 0.05; 200 inputs


def test_a_donor_is_never_its_own_donor() -> None:
    """Scored as a calibration text, a donor draws its donors from the others only."""
    model = _TwoTopics()
    me, other = "quark orbit of the small n1", "the old chess quest n2"
    # both offered as donors of the label 'games' (0), which 'me' is not predicted as
    donors = [(me, 0), (other, 0)]
    rng = random.Random(0)
    (_, ev), = transplant_evidence(
        [me], model.predict_proba, donors, rngs=[rng], exclude_self=True
    )  # fmt: skip
    # every transplant went into the other donor (its marker n2), none into 'me' itself
    assert ev and all("n2" in t for e in ev for t in e.texts)
    (_, ev), = transplant_evidence(
        [me], model.predict_proba, donors, rngs=[random.Random(0)]
    )  # fmt: skip
    assert any("n2" not in t for e in ev for t in e.texts)  # by default it may be


def test_calibrate_all_needs_the_transplant_test(data: dict[str, Any]) -> None:
    """On by default for the transplant test, off for the others; asked for with another
    test, a clear error."""
    assert ClassifierScreen(_TwoTopics(), calibration=data["cal"]).calibrate_all
    strip = ClassifierScreen(_TwoTopics(), calibration=data["cal"], method="strip")
    assert not strip.calibrate_all and len(strip.calibration_scores_) == 120
    with pytest.raises(ConfigError, match=r"calibrate_all=True .* needs method='transplant'"):
        ClassifierScreen(_TwoTopics(), calibration=data["cal"], method="strip", calibrate_all=True)


def _skops_files(tmp_path: Any, n_inputs: int = 5) -> tuple[Any, Any, Any, Any]:
    texts = _texts(120, seed=5)
    labels = ["games" if any(w in GAME for w in t.split()) else "science" for t in texts]
    return skops_cli_files(tmp_path, texts, labels, n_inputs)


def test_cli_calibrate_all_reports_the_p_value_resolution(tmp_path: Any, run_cli: Any) -> None:
    path, cal, inp, out = _skops_files(tmp_path)
    args = ("guard", "classify", "--model", path, "--calibration", cal, "--input", inp,
            "--out", out, "--fpr", "0.05")  # fmt: skip
    r = run_cli(*args, "--calibrate-all")
    assert r.code in (0, 1), r.err
    assert "calibrated on 120 clean text(s): p-values in steps of 1/121" in r.err
    assert "when at most 5 calibration score(s) reach its own" in r.err
    rows = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
    assert len(rows) == 5 and all(row["label"] in ("games", "science") for row in rows)


def test_cli_calibrate_all_with_another_method_is_a_clear_error(
    tmp_path: Any, run_cli: Any
) -> None:
    path, cal, inp, out = _skops_files(tmp_path, n_inputs=1)
    r = run_cli(
        "guard", "classify", "--model", path, "--calibration", cal, "--input", inp,
        "--out", out, "--method", "onion", "--calibrate-all",
    )  # fmt: skip
    assert r.code == 2
    assert "needs method='transplant'" in r.err and "Traceback" not in r.err
    assert not out.exists()
