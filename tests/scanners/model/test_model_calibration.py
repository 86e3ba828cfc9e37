"""The model scan's shipped calibration: what the documented refit gives, chosen without the
held-aside zoo, and what it decides on real scanned organisms of the current zoo recipe."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from dormant.scanners.model.decision import calibration, probability

pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "benchmarks" / "results"
#: the development organisms rescanned after the natural-feature rule needed z >= 1.96
DEV_ROWS = ("model_nf_dev0.jsonl", "model_nf_dev1.jsonl")
#: the spent held-aside zoos (``aside2``-``aside4``), development data since
SPENT_ASIDE_ROWS = tuple(f"model_aside{k}_{i}.jsonl" for k in (2, 3, 4) for i in (0, 1))
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
    orgs = [o for f in DEV_ROWS + SPENT_ASIDE_ROWS for o in fitmod.read_label_rows(RESULTS / f)]
    return orgs + [o for f in DEV_MODEL_ROWS for o in fitmod.read_model_rows(RESULTS / f)]


def test_the_shipped_calibration_is_the_documented_refit_of_the_development_rows(
    fitmod: ModuleType,
) -> None:
    orgs = _dev(fitmod)
    assert len({o.zoo for o in orgs}) >= 18 and len(orgs) >= 45
    chosen = fitmod.weakly_informative(orgs)
    shipped = calibration("whitebox")
    assert chosen["intercept"] == pytest.approx(shipped["intercept"], abs=1e-4)
    assert chosen["coef"] == pytest.approx(shipped["coef"], abs=1e-4)
    # the held-aside zoos (dictionary seeds 101, 103; aside5's vx5*) never enter the fit
    for held in ("vdic", "vx5"):
        assert held not in shipped["fitted_on"]
        assert not any(o.name.startswith(held) for o in orgs)
    # on zoos it never saw, it beats the same prior on the one-token features
    base = fitmod.weakly_informative(orgs, fitmod.BASELINE)
    assert chosen["lozo"]["cross_entropy"] < base["lozo"]["cross_entropy"]


def test_the_weakly_informative_prior_keeps_a_separable_set_from_a_steep_fit(
    fitmod: ModuleType,
) -> None:
    """Two zoos the strength features separate: a ridge fit at the old grid's largest C drives
    most probabilities past 0.001 / 0.999, and a surprising model of a new zoo pays for it; the
    Cauchy prior's MAP (Gelman et al. 2008) keeps them off the ends and still decides every
    development model right."""
    rng = np.random.default_rng(0)
    orgs = []
    for z in ("za", "zb"):
        for i in range(12):
            bd = i % 2 == 1
            strength = (3.0 if bd else 1.0) + rng.uniform(0.0, 1.5)
            feat = (float(rng.normal()), 0.5 + strength, strength, float(rng.uniform(0, 2)))
            other = (float(rng.normal()), 0.0, float(rng.uniform(0.0, 0.8)), 0.0)
            rows = ((feat, bd), (other, False))
            orgs.append(fitmod.Organism(z, f"{z}-{i}", bd, rows))
    b, w = fitmod.fit_weakly_informative(orgs, fitmod.ALL)
    probs = [fitmod.model_probability(o, b, w) for o in orgs]
    assert all((p >= 0.5) == o.backdoored for p, o in zip(probs, orgs, strict=True))
    b_steep, w_steep = fitmod.fit(orgs, fitmod.ALL, 100.0)
    steep = [fitmod.model_probability(o, b_steep, w_steep) for o in orgs]

    def extreme(ps: list[float]) -> int:
        return sum(p < 0.001 or p > 0.999 for p in ps)

    assert extreme(probs) <= 2 < 8 <= extreme(steep)
    # a clean model of a new zoo that looks like a backdoor costs the steep fit more
    miss = fitmod.Organism("zc", "zc-0", False, (((0.0, 3.9, 3.4, 1.0), False),))
    ce = -np.log(1 - fitmod.model_probability(miss, b, w))
    ce_steep = -np.log(1 - fitmod.model_probability(miss, b_steep, w_steep))
    assert ce < 0.7 * ce_steep


def test_the_prior_fit_recovers_known_coefficients_from_ample_data(fitmod: ModuleType) -> None:
    """With thousands of rows the prior hardly matters: the MAP is the logistic model that
    generated the labels, on the raw feature scale."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 4)) * (1.0, 2.0, 0.5, 3.0) + (0.0, 1.0, 2.0, -1.0)
    true_b, true_w = -1.0, np.array([0.8, -0.5, 1.5, 0.3])
    y = rng.uniform(size=4000) < 1 / (1 + np.exp(-(true_b + x @ true_w)))
    orgs = [
        fitmod.Organism("z", f"m{i}", bool(t), ((tuple(map(float, r)), bool(t)),))
        for i, (r, t) in enumerate(zip(x, y, strict=True))
    ]
    b, w = fitmod.fit_weakly_informative(orgs, fitmod.ALL)
    assert b == pytest.approx(true_b, abs=0.25)
    assert w == pytest.approx(list(true_w), abs=0.15)


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
    reach 0.5; of the ten clean development models one label of one reaches it before the
    reference check: ``vwn7-clean1``'s ``animal`` (p 0.59, the trigger ``larva larvae larva``,
    a word of the task that the clean data has too rarely for its Fightin' Words z to count).
    The scan then checks that label against the clean reference classifier (:mod:`._reference`);
    the calibration's own task-support weight does not explain it away."""
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
    assert len(clean) == 10 and sorted(clean)[-2] < 0.5 and max(clean) < 0.65
