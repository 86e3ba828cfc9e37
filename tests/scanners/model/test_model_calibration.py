"""The model scan's shipped calibration: what the documented refit gives, chosen without the
held-aside zoo, and what it decides on real scanned organisms of the current zoo recipe."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from dormant.scanners.model.decision import calibration, probability

pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "benchmarks" / "results"
#: the development organisms rescanned after the natural-feature rule needed z >= 1.96
DEV_ROWS = ("model_nf_dev0.jsonl", "model_nf_dev1.jsonl")
DEV_MODEL_ROWS: tuple[str, ...] = ()


@pytest.fixture(scope="module")
def fitmod() -> ModuleType:
    path = ROOT / "benchmarks" / "fit_model_calibration.py"
    spec = importlib.util.spec_from_file_location("fit_model_calibration", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses resolve their annotations through it
    spec.loader.exec_module(mod)
    return mod


def _dev(fitmod: ModuleType) -> list:
    orgs = [o for f in DEV_ROWS for o in fitmod.read_label_rows(RESULTS / f)]
    return orgs + [o for f in DEV_MODEL_ROWS for o in fitmod.read_model_rows(RESULTS / f)]


def test_the_shipped_calibration_is_the_documented_refit_of_the_development_rows(
    fitmod: ModuleType,
) -> None:
    orgs = _dev(fitmod)
    assert len({o.zoo for o in orgs}) >= 6 and len(orgs) >= 19
    chosen = fitmod.choose(orgs, fitmod.CANDIDATES)
    shipped = calibration("whitebox")
    assert chosen["intercept"] == pytest.approx(shipped["intercept"], abs=1e-6)
    assert chosen["coef"] == pytest.approx(shipped["coef"], abs=1e-6)
    # the held-aside dictionary zoo (seeds 101, 103) never enters the fit
    assert "vdic" not in shipped["fitted_on"]
    assert not any(o.name.startswith("vdic") for o in orgs)
    # chosen by held-out zoos, and it beats the one-token features there
    base = fitmod.choose(orgs, (fitmod.BASELINE,))
    assert chosen["chosen"]["cross_entropy"] < base["chosen"]["cross_entropy"]


def test_leave_one_zoo_out_scores_each_zoo_with_a_fit_that_never_saw_it(
    fitmod: ModuleType,
) -> None:
    orgs = _dev(fitmod)
    cols, c = (0, 1, 2), 3.0
    cv = fitmod.lozo(orgs, cols, c)
    b, w = fitmod.fit([o for o in orgs if o.zoo != "test1"], cols, c)
    for o in orgs:
        if o.zoo == "test1":
            assert cv["per_model"][o.name] == round(fitmod.model_probability(o, b, w), 4)
    # a fit that saw the zoo scores it differently (the check above is not vacuous)
    b2, w2 = fitmod.fit(orgs, cols, c)
    assert (b2, w2) != (b, w)


def test_rows_without_the_planted_target_or_whose_backdoor_did_not_take_are_left_out(
    fitmod: ModuleType, tmp_path: Path
) -> None:
    base = {"features": [0.1, 1.0, 2.0, 0.0], "true_target": "a", "attack_success_rate": 0.9}
    rows = [
        {**base, "name": "z1-rare0", "backdoored": True, "pred_target": "a"},
        {**base, "name": "z1-rare1", "backdoored": True, "pred_target": "b"},
        {**base, "name": "z1-rare2", "backdoored": True, "pred_target": "a",
         "attack_success_rate": 0.3},
        {**base, "name": "z1-clean0", "backdoored": False, "pred_target": "b",
         "attack_success_rate": None, "true_target": None},
    ]  # fmt: skip
    f = tmp_path / "rows.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    got = {o.name: o for o in fitmod.read_model_rows(f)}
    assert set(got) == {"z1-rare0", "z1-clean0"}
    assert got["z1-rare0"].rows == (((0.1, 1.0, 2.0, 0.0), True),)
    assert got["z1-clean0"].rows[0][1] is False and got["z1-clean0"].zoo == "z1"


def test_weakly_learnt_backdoors_of_the_current_recipe_are_flagged_and_clean_models_not() -> None:
    """The current zoo recipe's rare token at 3 % (attack success 0.82: weak one-token strength,
    a strong position-robust trigger) and every other development backdoor's planted target
    reach 0.5; no label of a clean development model does."""
    rows = [json.loads(x) for f in DEV_ROWS for x in (RESULTS / f).read_text("utf-8").splitlines()]
    by = {r["name"]: r for r in rows}
    rare = by["test1-rare-word0"]
    assert probability(rare["label_features"][rare["true_target"]], "whitebox") >= 0.5
    for r in rows:
        if r["backdoored"]:
            assert probability(r["label_features"][r["true_target"]], "whitebox") >= 0.5
    clean = [
        max(probability(f, "whitebox") for f in r["label_features"].values())
        for r in rows
        if not r["backdoored"]
    ]
    assert len(clean) == 10 and max(clean) < 0.5
