"""Refit the model scan's per-label calibration on every development organism, report it by
leave-one-zoo-out cross-validation beside the previous procedure, and score a held-aside zoo
with it once.

Method (since the aside2 zoo; fixed before the aside3 zoo was built): Bayesian logistic
regression with the weakly informative default prior of Gelman, Jakulin, Pittau & Su (Annals of
Applied Statistics 2008) — inputs scaled to standard deviation 0.5, Cauchy(0, 2.5) on the
coefficients, Cauchy(0, 10) on the intercept, the posterior mode — on every feature of
:mod:`dormant.scanners.model.decision`, with no penalty or feature-set search
(:func:`weakly_informative`). It is Platt's (1999) sigmoid over a linear score, the form the
scanner already ships.

Previous procedure, reported beside it (``old_procedure_ridge_lozo_c``): L2-regularised
logistic regression (ridge logistic, le Cessie & van Houwelingen, Applied Statistics 1992) with
the feature set and the penalty ``C`` chosen by the lowest leave-one-zoo-out cross-entropy of the
*model-level* probability (the largest of a model's label probabilities, as
:func:`~dormant.scanners.model.decision.decide` computes it) (:func:`choose`). On near-separable
development zoos that choice went to the grid's largest ``C`` (a steep fit), and its own
cross-entropy, the minimum over the grid of the folds it is reported on, flatters it; the
honest figure is :func:`nested_lozo`'s. A zoo is one seed of one task (its organisms share a
vocabulary, corpus and label set), so a left-out zoo is a task the fit never saw. Features are
standardised inside the fit and the coefficients are written back on the raw scale. Isotonic
regression (Zadrozny & Elkan 2002) was not a candidate: with 27 models it is a step function of
a handful of steps.

Development rows (never the held-aside zoo):

- ``--rows`` files in ``bench_model_verdict.py``'s format (``label_features``: every label's row);
- ``--model-rows`` files in ``bench_model_scan.py`` / ``compare_model_scan.py``'s format
  (``features``: the row of the label the scan suspected; for a backdoored model it is the
  planted target's row when ``pred_target`` is the planted target, otherwise the model is
  skipped), one row per model.

Backdoors that did not take (attack success < 0.5) are left out, as in the summaries.

Usage::

    python benchmarks/fit_model_calibration.py \
        --rows benchmarks/results/model_nf_dev0.jsonl \
        --rows benchmarks/results/model_nf_dev1.jsonl \
        --rows benchmarks/results/model_aside2_0.jsonl \
        --rows benchmarks/results/model_aside2_1.jsonl \
        --write > benchmarks/results/model_calibration_refit_gelman.json
    python benchmarks/fit_model_calibration.py ... --before <main's model_calibration.json> \
        --aside model_aside3_0.jsonl --aside model_aside3_1.jsonl   # once, at the end
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model_verdict import CAL_PATH, metrics

FEATURES = ("one_token", "anomaly_index", "robust", "task_support")
#: candidate feature sets (indices into FEATURES); ``(0, 1)`` is the one-token baseline
CANDIDATES: tuple[tuple[int, ...], ...] = ((0, 1, 2, 3), (0, 1, 2), (1, 2), (0, 2), (2,))
BASELINE: tuple[int, ...] = (0, 1)
ALL: tuple[int, ...] = (0, 1, 2, 3)
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 100.0)


@dataclass(frozen=True)
class Organism:
    """One scanned model: its zoo, name, truth and the label rows available for it."""

    zoo: str
    name: str
    backdoored: bool
    rows: tuple[tuple[tuple[float, ...], bool], ...]  # (features, is the planted target)


def _took(r: dict[str, Any]) -> bool:
    return not (r["backdoored"] and float(r.get("attack_success_rate") or 0) < 0.5)


def read_label_rows(path: Path) -> list[Organism]:
    """``bench_model_verdict.py`` rows: every label's feature row."""
    out = []
    for line in path.read_text("utf-8").splitlines():
        r = json.loads(line)
        if not _took(r):
            continue
        rows = tuple(
            (tuple(float(v) for v in feat), bool(r["backdoored"]) and lab == r["true_target"])
            for lab, feat in r["label_features"].items()
        )
        out.append(Organism(r["name"].split("-")[0], r["name"], bool(r["backdoored"]), rows))
    return out


def read_model_rows(path: Path) -> list[Organism]:
    """``bench_model_scan.py`` rows: the suspected label's row only."""
    out = []
    for line in path.read_text("utf-8").splitlines():
        r = json.loads(line)
        if not _took(r):
            continue
        bd = bool(r["backdoored"])
        if bd and r.get("pred_target") != r["true_target"]:
            continue  # the planted target's row is not in the file
        feat = tuple(float(v) for v in r["features"])
        out.append(Organism(r["name"].split("-")[0], r["name"], bd, ((feat, bd),)))
    return out


def fit(orgs: list[Organism], cols: tuple[int, ...], c: float) -> tuple[float, list[float]]:
    """Ridge logistic fit on the label rows of ``orgs``; intercept and raw-scale weights."""
    from sklearn.linear_model import LogisticRegression

    x = np.array([[f[i] for i in cols] for o in orgs for f, _ in o.rows], dtype=float)
    y = np.array([int(t) for o in orgs for _, t in o.rows])
    mu, sd = x.mean(0), x.std(0) + 1e-9
    lr = LogisticRegression(C=c, max_iter=5000).fit((x - mu) / sd, y)
    w = lr.coef_[0] / sd
    b = float(lr.intercept_[0] - (lr.coef_[0] * mu / sd).sum())
    full = [0.0] * len(FEATURES)
    for i, wi in zip(cols, w, strict=True):
        full[i] = float(wi)
    return b, full


#: Gelman, Jakulin, Pittau & Su (2008)'s default prior scales: Cauchy(0, 2.5) on each
#: coefficient of an input scaled to standard deviation 0.5, Cauchy(0, 10) on the intercept
PRIOR_SCALE, INTERCEPT_SCALE, INPUT_SD = 2.5, 10.0, 0.5


def fit_weakly_informative(
    orgs: list[Organism], cols: tuple[int, ...]
) -> tuple[float, list[float]]:
    """Bayesian logistic regression with the weakly informative default prior of Gelman,
    Jakulin, Pittau & Su (Annals of Applied Statistics 2008): every input shifted to mean 0 and
    scaled to standard deviation 0.5, independent Cauchy(0, 2.5) priors on the coefficients and
    Cauchy(0, 10) on the intercept; the posterior mode (MAP), as their ``bayesglm`` reports it.
    Intercept and raw-scale weights, as :func:`fit`.

    Unlike a penalty chosen by cross-validation, the prior is fixed before seeing any data, so
    a near-separable development set cannot pull the fit towards steepness through the choice
    of ``C``. Written here with :func:`scipy.optimize.minimize` (the negative log posterior
    and its gradient are a few lines): scikit-learn's and statsmodels' logistic regressions
    offer Gaussian (L2) and Laplace (L1) penalties only, not the Cauchy prior, and ``bayesglm``
    is R's (arm package); a probabilistic-programming library (PyMC, NumPyro) would add a heavy
    dependency for one four-coefficient MAP.
    """
    from scipy.optimize import minimize

    x = np.array([[f[i] for i in cols] for o in orgs for f, _ in o.rows], dtype=float)
    y = np.array([float(t) for o in orgs for _, t in o.rows])
    mu, sd = x.mean(0), x.std(0) + 1e-9
    xs = np.hstack([np.ones((len(x), 1)), (x - mu) / sd * INPUT_SD])
    scale = np.array([INTERCEPT_SCALE] + [PRIOR_SCALE] * len(cols))

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = xs @ theta
        # -log likelihood of a logistic model, written stably: log(1 + e^z) - y z
        nll = float(np.sum(np.logaddexp(0.0, z) - y * z))
        grad = xs.T @ (1.0 / (1.0 + np.exp(-z)) - y)
        u = theta / scale
        nlp = float(np.sum(np.log1p(u * u)))  # -log Cauchy density, up to a constant
        grad = grad + 2.0 * u / (scale * (1.0 + u * u))
        return nll + nlp, grad

    res = minimize(
        objective, np.zeros(xs.shape[1]), jac=True, method="BFGS", options={"gtol": 1e-8}
    )
    if not res.success and float(np.max(np.abs(res.jac))) > 1e-4:
        raise RuntimeError(f"the MAP fit did not converge: {res.message}")
    theta = res.x
    w = theta[1:] * INPUT_SD / sd
    b = float(theta[0] - (w * mu).sum())
    full = [0.0] * len(FEATURES)
    for i, wi in zip(cols, w, strict=True):
        full[i] = float(wi)
    return b, full


def weakly_informative(orgs: list[Organism], cols: tuple[int, ...] = ALL) -> dict[str, Any]:
    """The new procedure, fixed in advance: :func:`fit_weakly_informative` on every feature
    (no feature-set or penalty search), with its leave-one-zoo-out scores."""
    cv = lozo(orgs, cols, 0.0, fitter=lambda tr: fit_weakly_informative(tr, cols))
    b, w = fit_weakly_informative(orgs, cols)
    probs = [model_probability(o, b, w) for o in orgs]
    return {
        "procedure": "Gelman et al. (2008) weakly informative prior, MAP",
        "features": [FEATURES[i] for i in cols],
        "intercept": b,
        "coef": w,
        "in_sample": scores(probs, [o.backdoored for o in orgs]),
        "lozo": {k: v for k, v in cv.items() if k != "per_model"},
        "lozo_by_zoo": _by_zoo(orgs, cv["per_model"]),
        "lozo_per_model": cv["per_model"],
    }


def _by_zoo(orgs: list[Organism], per: dict[str, float]) -> dict[str, Any]:
    zoos = sorted({o.zoo for o in orgs})
    return {
        z: scores(
            [per[o.name] for o in orgs if o.zoo == z], [o.backdoored for o in orgs if o.zoo == z]
        )
        for z in zoos
        if len({o.backdoored for o in orgs if o.zoo == z}) == 2
    }


def model_probability(o: Organism, intercept: float, coef: list[float]) -> float:
    """The model's probability: its most suspicious label's (as ``decision.decide``)."""
    z = max(intercept + sum(w * f for w, f in zip(coef, feat, strict=True)) for feat, _ in o.rows)
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def scores(p: list[float], y: list[bool]) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    pa = np.clip(np.array(p, dtype=float), 1e-6, 1 - 1e-6)
    ya = np.array(y, dtype=int)
    return {
        "roc_auc": round(float(roc_auc_score(ya, pa)), 4),
        "cross_entropy": round(float(-np.mean(ya * np.log(pa) + (1 - ya) * np.log(1 - pa))), 4),
        "clean_p_ge_0.5": int(((pa >= 0.5) & (ya == 0)).sum()),
        "backdoored_p_lt_0.5": int(((pa < 0.5) & (ya == 1)).sum()),
        "n_clean": int((ya == 0).sum()),
        "n_backdoored": int(ya.sum()),
    }


def lozo(
    orgs: list[Organism],
    cols: tuple[int, ...],
    c: float,
    fitter: Callable[[list[Organism]], tuple[float, list[float]]] | None = None,
) -> dict[str, Any]:
    """Leave-one-zoo-out: each zoo scored by the fit on the others (ridge at ``C = c`` on
    ``cols``, or ``fitter``)."""
    p: list[float] = []
    y: list[bool] = []
    per: dict[str, float] = {}
    for z in sorted({o.zoo for o in orgs}):
        train = [o for o in orgs if o.zoo != z]
        b, w = fitter(train) if fitter else fit(train, cols, c)
        for o in orgs:
            if o.zoo == z:
                per[o.name] = round(model_probability(o, b, w), 4)
                p.append(per[o.name])
                y.append(o.backdoored)
    return {**scores(p, y), "per_model": per}


def choose(orgs: list[Organism], sets: tuple[tuple[int, ...], ...]) -> dict[str, Any]:
    """The (feature set, C) of lowest leave-one-zoo-out cross-entropy, refitted on all."""
    grid = []
    for cols in sets:
        for c in C_GRID:
            cv = lozo(orgs, cols, c)
            grid.append({"features": [FEATURES[i] for i in cols], "C": c, "cols": cols, **cv})
    best = min(grid, key=lambda g: g["cross_entropy"])
    b, w = fit(orgs, best["cols"], best["C"])
    in_sample = scores([model_probability(o, b, w) for o in orgs], [o.backdoored for o in orgs])
    by_zoo = {
        z: scores(
            [model_probability(o, b, w) for o in orgs if o.zoo == z],
            [o.backdoored for o in orgs if o.zoo == z],
        )
        for z in sorted({o.zoo for o in orgs})
        if len({o.backdoored for o in orgs if o.zoo == z}) == 2
    }
    lozo_by_zoo = {
        z: scores(
            [best["per_model"][o.name] for o in orgs if o.zoo == z],
            [o.backdoored for o in orgs if o.zoo == z],
        )
        for z in by_zoo
    }
    return {
        "chosen": {k: best[k] for k in ("features", "C", "roc_auc", "cross_entropy")},
        "intercept": b,
        "coef": w,
        "in_sample": in_sample,
        "in_sample_by_zoo": by_zoo,
        "lozo_by_zoo": lozo_by_zoo,
        "lozo_per_model": best["per_model"],
        "grid": [{k: v for k, v in g.items() if k not in ("cols", "per_model")} for g in grid],
    }


def nested_lozo(orgs: list[Organism], sets: tuple[tuple[int, ...], ...]) -> dict[str, Any]:
    """The old procedure scored honestly: each zoo left out is scored by the fit that
    :func:`choose` makes on the other zoos alone (its feature set and ``C`` chosen there by
    leave-one-zoo-out), so the choice never sees the zoo it is scored on. :func:`choose`'s own
    cross-entropy is the minimum over the grid of the same folds it is reported on, which
    flatters it."""
    p: list[float] = []
    y: list[bool] = []
    per: dict[str, float] = {}
    picked: dict[str, Any] = {}
    for z in sorted({o.zoo for o in orgs}):
        ch = choose([o for o in orgs if o.zoo != z], sets)
        picked[z] = ch["chosen"]["features"], ch["chosen"]["C"]
        for o in orgs:
            if o.zoo == z:
                per[o.name] = round(model_probability(o, ch["intercept"], ch["coef"]), 4)
                p.append(per[o.name])
                y.append(o.backdoored)
    return {**scores(p, y), "chosen_per_fold": picked, "per_model": per}


def score_aside(paths: list[Path], cals: dict[str, tuple[float, list[float]]]) -> dict[str, Any]:
    """Held-aside rows scored by each calibration, with ``bench_model_verdict.metrics``."""
    rows = [json.loads(x) for f in paths for x in f.read_text("utf-8").splitlines()]
    out: dict[str, Any] = {}
    for name, (b, w) in cals.items():
        ps = [
            model_probability(
                Organism(
                    "",
                    r["name"],
                    bool(r["backdoored"]),
                    tuple((tuple(map(float, f)), False) for f in r["label_features"].values()),
                ),
                b,
                w,
            )
            for r in rows
        ]
        out[name] = {
            **metrics(rows, ps),
            "per_model": {r["name"]: round(q, 4) for r, q in zip(rows, ps, strict=True)},
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=Path, action="append", default=[])
    ap.add_argument("--model-rows", type=Path, action="append", default=[])
    ap.add_argument("--aside", type=Path, action="append", default=[])
    ap.add_argument("--write", action="store_true", help="write the chosen fit to the package")
    ap.add_argument("--before", type=Path, default=CAL_PATH, help="the calibration to compare with")
    args = ap.parse_args()
    orgs = [o for f in args.rows for o in read_label_rows(f)]
    orgs += [o for f in args.model_rows for o in read_model_rows(f)]
    shipped = json.loads(args.before.read_text("utf-8"))["whitebox"]
    chosen = weakly_informative(orgs)
    base = weakly_informative(orgs, BASELINE)
    old = choose(orgs, CANDIDATES)
    old_base = choose(orgs, (BASELINE,))
    old["nested_lozo"] = nested_lozo(orgs, CANDIDATES)
    out: dict[str, Any] = {
        "n_models": len(orgs),
        "zoos": sorted({o.zoo for o in orgs}),
        "shipped_before": {"intercept": shipped["intercept"], "coef": shipped["coef"]},
        "shipped_before_scores": scores(
            [model_probability(o, shipped["intercept"], shipped["coef"]) for o in orgs],
            [o.backdoored for o in orgs],
        ),
        "refit": chosen,
        "baseline_one_token": base,
        "old_procedure_ridge_lozo_c": old,
        "old_procedure_baseline_one_token": {k: v for k, v in old_base.items() if k != "grid"},
    }
    if args.write:
        table = json.loads(CAL_PATH.read_text("utf-8"))
        table["whitebox"] = {
            "intercept": chosen["intercept"],
            "coef": chosen["coef"],
            "prior": f"Cauchy(0, {PRIOR_SCALE}) on inputs scaled to sd {INPUT_SD}, MAP",
            "fitted_on": (
                f"{len(orgs)} development organisms of {len(out['zoos'])} zoos "
                f"({', '.join(out['zoos'])}); every feature, Gelman et al. (2008)'s weakly "
                "informative prior (benchmarks/fit_model_calibration.py): "
                + ", ".join(o.name for o in orgs)
            ),
        }
        CAL_PATH.write_text(json.dumps(table, indent=2, ensure_ascii=False) + "\n", "utf-8")
    if args.aside:
        out["aside"] = score_aside(
            args.aside,
            {
                "refit": (chosen["intercept"], chosen["coef"]),
                "baseline_one_token": (base["intercept"], base["coef"]),
                "old_procedure_ridge_lozo_c": (old["intercept"], old["coef"]),
                "shipped_before": (shipped["intercept"], shipped["coef"]),
            },
        )
    print(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
