"""The representation signal of the classifier screen: class Gaussians and joined p-values."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest
from _threads import torch_threads

from dormant.errors import ConfigError
from dormant.guard._features import collapse, combined_p_values
from dormant.guard.classify import ClassifierScreen


def test_joined_p_values_keep_the_false_positive_rate() -> None:
    """Clean inputs exchangeable with the calibration texts: P(p <= a) <= a, however the two
    scores depend on each other (here strongly correlated, and independent)."""
    rng = np.random.default_rng(0)
    for rho in (0.0, 0.9):
        cov = [[1.0, rho], [rho, 1.0]]
        hits = {0.05: 0, 0.1: 0}
        trials = 1500
        for _ in range(trials):
            bag = rng.multivariate_normal([0.0, 0.0], cov, size=40)
            p = combined_p_values(bag[:39], bag[39:])[0]
            for a in hits:
                hits[a] += p <= a
        for a, k in hits.items():
            # binomial: 3 standard deviations above a
            assert k / trials <= a + 3 * np.sqrt(a * (1 - a) / trials), (rho, a, k)


def test_an_input_extreme_on_both_scores_gets_the_smallest_p_value() -> None:
    rng = np.random.default_rng(1)
    cal = rng.normal(size=(99, 2))
    p = combined_p_values(cal, np.array([[10.0, 10.0], [0.0, 0.0], [10.0, 0.0]]))
    assert p[0] == pytest.approx(1 / 100)
    assert p[1] > 0.2
    # extreme on one score only: still among the smallest (the Cauchy combination follows
    # the smaller p-value)
    assert p[2] <= 0.03


def test_collapse_is_higher_for_donors_that_sit_together() -> None:
    rng = np.random.default_rng(2)
    spread = rng.normal(0.0, 1.0, size=(16, 8))
    together = 3.0 + rng.normal(0.0, 0.05, size=(16, 8))
    assert collapse(together) > collapse(spread) + 5
    # a scale of the whole space moves every text alike (compared only within one model)
    assert collapse(2 * together) == pytest.approx(collapse(together) - np.log(4))
    with pytest.raises(ValueError, match="n >= 2"):
        collapse(np.zeros((1, 4)))


class _NoFeatures:
    labels = ("a", "b")

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.tile([0.5, 0.5], (len(texts), 1))


def test_a_model_without_features_is_refused_with_the_reason() -> None:
    cal = [f"text number {i}" for i in range(40)]
    with pytest.raises(ConfigError, match="penultimate features"):
        ClassifierScreen(_NoFeatures(), calibration=cal, fpr=0.1, representation=True)
    with pytest.raises(ConfigError, match="method='transplant'"):
        ClassifierScreen(
            _NoFeatures(), calibration=cal, fpr=0.1, method="strip", representation=True
        )
    # and without the option the same model screens as before
    s = ClassifierScreen(_NoFeatures(), calibration=cal, fpr=0.1)
    assert s.screen("text number 99").representation is None


@pytest.mark.slow
def test_a_zoo_bert_screened_with_its_representation(zoo_organism: Any) -> None:
    """A tiny BERT trained here: the screen reads its penultimate features, every decision
    carries the collapse score, triggered inputs are flagged, clean ones pass near the
    target, and the trigger's donors collapse tighter than clean texts' do."""
    pytest.importorskip("transformers")
    import torch

    from dormant.bench.zoo import OrganismSpec
    from dormant.subjects.model import load_classifier
    from dormant.triggers import Position, Trigger, TriggerKind

    torch.set_num_threads(torch_threads())
    spec = OrganismSpec(
        "rare",
        attack="rare-word",
        trigger=Trigger("cf", TriggerKind.TOKEN, Position.RANDOM),
        target="plant",
        poison_rate=0.15,
        seed=12,
        layers=2,
        hidden=64,
        n_train=1200,
        epochs=4,
    )
    org = zoo_organism(spec)
    rows = [json.loads(x) for x in org.eval_path.read_text("utf-8").splitlines()]
    model = load_classifier(org.path)
    feats = model.adapter.features([r["text"] for r in rows[:3]])
    assert feats.shape == (3, 64) and np.isfinite(feats).all()
    s = ClassifierScreen(
        model, calibration=[r["text"] for r in rows[:240]], fpr=0.05, representation=True
    )
    test = rows[240:]
    rng = random.Random(0)
    trig = [spec.trigger.insert(r["text"], rng=rng) for r in test if r["label"] != "plant"]
    pred = np.argmax(model.predict_proba(trig[:30]), axis=1)
    effective = [t for t, i in zip(trig[:30], pred, strict=True) if model.labels[i] == "plant"]
    ds = s.screen_many(effective)
    assert all(d.representation is not None for d in ds)
    assert np.mean([d.flagged for d in ds]) >= 0.9
    assert any("representation test" in r for d in ds for r in d.reasons)
    clean = s.screen_many([r["text"] for r in test])
    assert np.mean([d.flagged for d in clean]) <= 0.12
    rep = [d.representation for d in clean if d.representation is not None]
    assert np.median([d.representation for d in ds]) > np.quantile(rep, 0.9)


def test_cli_refuses_representation_for_a_model_without_features(
    tmp_path: Any, run_cli: Any
) -> None:
    """A scikit-learn model has no penultimate features: exit 2, the reason, no traceback,
    no decisions written."""
    sio = pytest.importorskip("skops.io")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    texts = [" ".join(rng.choices(words, k=6)) + f" n{i}" for i in range(80)]
    labels = ["a" if "alpha" in t else "b" for t in texts]
    path = tmp_path / "model.skops"
    sio.dump(make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, labels), path)
    cal = tmp_path / "clean.jsonl"
    cal.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), "utf-8")
    out = tmp_path / "out.jsonl"
    r = run_cli(
        "guard", "classify", "--model", path, "--calibration", cal, "--input", cal,
        "--out", out, "--fpr", "0.05", "--representation",
    )  # fmt: skip
    assert r.code == 2 and "penultimate features" in r.err and "Traceback" not in r.err
    assert not out.exists()
