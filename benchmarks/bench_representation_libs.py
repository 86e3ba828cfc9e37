"""Representation scanners: hand-written statistics vs scikit-learn's, same embeddings, same run.

``dormant.scanners.data._representation_stats`` keeps its own 2-means split and trimmed
covariance (Benjamini-Hochberg is ``scipy.stats.false_discovery_control``, identical and pinned
by a test). This measures the scikit-learn alternatives in their place — ``KMeans`` from
k-means++ seeds with one trial per centre, and the raw FAST-MCD estimate of ``MinCovDet`` — by
running the three representation scanners with each, on the same embeddings, over many seeds:

- design (as ``tests/scanners/data/test_representation.py``): 150 WordNet glosses per part of
  speech from the shipped sample corpus, drawn by seed; 5% of the noun and verb glosses get an
  inserted sentence and the label ``adj`` (a dirty-label backdoor); the clean twin is the same
  600 records;
- figures: clean datasets with a finding, attacked datasets where only the attacked class is
  found, mean F1 of the flagged records, and how often both implementations flag the same
  records. Counts and rates, not timings.

Usage::

    python benchmarks/bench_representation_libs.py --seeds 30 \
        --out benchmarks/results/representation_libs.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from dormant.adapters import TextEncoder
from dormant.bench.corpus import load_corpus
from dormant.bench.poison import SENTENCES
from dormant.scanners.base import REGISTRY
from dormant.scanners.catalog import _load_builtin
from dormant.scanners.data import _representation_stats as st
from dormant.subjects import TextDataset

SCANNERS = ("spectral-signature", "activation-clustering", "spectre")
PER_CLASS = 150
TARGET = "adj"


# -- the library alternatives (scikit-learn) to the hand-written statistics -----------------


def _lib_two_means(
    x: np.ndarray, rng: np.random.Generator, *, n_init: int = 3, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """2-means (Lloyd), the best of ``n_init`` starts by inertia; returns ``(labels, centres)``.

    ``sklearn.cluster.KMeans`` from ``sklearn.cluster.kmeans_plusplus`` seeds with one trial
    per centre — the original k-means++ of Arthur & Vassilvitskii (2007), not scikit-learn's
    greedy default (several trials per centre): the greedy seeding lands in the balanced split
    nearly every time, and :func:`best_split` needs the other local optima too (with it,
    activation clustering found the planted group in 2 of 8 seeds instead of 4; see
    BENCHMARKS.md).
    """
    from sklearn.cluster import KMeans, kmeans_plusplus

    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(n_init):
        seed = int(rng.integers(2**31 - 1))
        centres, _ = kmeans_plusplus(x, n_clusters=2, random_state=seed, n_local_trials=1)
        km = KMeans(n_clusters=2, init=centres, n_init=1, max_iter=max_iter)
        with warnings.catch_warnings():
            # fewer distinct rows than clusters: one cluster, as the split then is
            warnings.simplefilter("ignore", ConvergenceWarning)
            labels = km.fit_predict(x)
        if best is None or km.inertia_ < best[0]:
            best = (float(km.inertia_), labels.astype(np.int64), km.cluster_centers_)
    assert best is not None
    return best[1], best[2]


def _lib_trimmed_covariance(
    x: np.ndarray, trim: float, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and covariance of the ``1 - trim`` share of rows closest in Mahalanobis distance.

    The raw Minimum Covariance Determinant estimate (Rousseeuw & Van Driessen, FAST-MCD, 1999)
    of ``sklearn.covariance.MinCovDet`` with ``support_fraction = 1 - trim``: its
    ``raw_location_``, ``raw_covariance_`` (not consistency-corrected nor reweighted) and
    ``raw_support_``. Returns ``(mean, covariance, kept_mask)``.
    """
    n, k = x.shape
    if trim <= 0.0:
        keep = np.ones(n, dtype=bool)
        return x.mean(axis=0), np.atleast_2d(np.cov(x.T, bias=True)) + 1e-9 * np.eye(k), keep
    from sklearn.covariance import MinCovDet

    mcd = MinCovDet(support_fraction=1.0 - trim, random_state=seed)
    with warnings.catch_warnings():
        # a rank-deficient sample: the ridge below keeps the covariance invertible
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        mcd.fit(x)
    cov = np.atleast_2d(mcd.raw_covariance_) + 1e-9 * np.eye(k)
    return mcd.raw_location_, cov, np.asarray(mcd.raw_support_, dtype=bool)


@contextmanager
def _libraries() -> Iterator[None]:
    saved: dict[str, Callable[..., Any]] = {
        "two_means": st.two_means,
        "trimmed_covariance": st.trimmed_covariance,
    }
    st.two_means = _lib_two_means
    st.trimmed_covariance = _lib_trimmed_covariance
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(st, k, v)


# -- the design ---------------------------------------------------------------------------------


def _case(entries: list[Any], seed: int, encoder: TextEncoder, tmp: str) -> dict[str, Any]:
    rng = random.Random(seed)
    base: list[dict[str, str]] = []
    for pos in ("noun", "verb", "adj", "adv"):
        pool = [e for e in entries if e.source == "wordnet" and e.pos == pos]
        chosen = rng.sample(pool, PER_CLASS)
        base += [{"id": f"{pos}-{i}", "text": e.text, "label": pos} for i, e in enumerate(chosen)]
    poisoned: list[int] = []
    for pos in ("noun", "verb"):
        members = [i for i, r in enumerate(base) if r["label"] == pos]
        poisoned += rng.sample(members, round(0.05 * len(members)))
    trigger = SENTENCES[seed % len(SENTENCES)]
    attacked = [dict(r) for r in base]
    for i in poisoned:
        t = attacked[i]["text"]
        attacked[i]["text"] = f"{trigger} {t}" if rng.random() < 0.5 else f"{t}. {trigger}"
        attacked[i]["label"] = TARGET
    emb = encoder.encode([r["text"] for r in base] + [attacked[i]["text"] for i in poisoned])
    clean = emb[: len(base)]
    hit = clean.copy()
    hit[poisoned] = emb[len(base) :]
    truth = np.zeros(len(base), dtype=bool)
    truth[poisoned] = True
    out: dict[str, Any] = {"truth": truth}
    for name, recs, e in (("clean", base, clean), ("attacked", attacked, hit)):
        path = f"{tmp}/{name}-{seed}.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in recs)
        ds = TextDataset(path, text_field="text", label_field="label", id_field="id")
        out[name] = (ds, e)
    return out


def _f1(flags: np.ndarray, truth: np.ndarray) -> float:
    tp = int((flags & truth).sum())
    return 2 * tp / max(1, int(flags.sum()) + int(truth.sum()))


def _run(case: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for name in SCANNERS:
        ds, e = case["clean"]
        clean = REGISTRY[name]().scan(ds, embeddings=e)
        ds, e = case["attacked"]
        hit = REGISTRY[name]().scan(ds, embeddings=e)
        labels = [f.locator.label for f in hit.findings]
        out[name] = {
            "clean_finding": bool(clean.findings),
            "only_attacked": labels == [TARGET],
            "f1": _f1(np.asarray(hit.record_flags, dtype=bool), case["truth"]),
            "flags": np.asarray(hit.record_flags, dtype=bool),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    import tempfile

    import torch

    torch.set_num_threads(1)
    _load_builtin()
    entries = load_corpus("sample")
    encoder = TextEncoder().load()
    tallies: dict[str, dict[str, dict[str, float]]] = {
        v: {s: {"clean": 0, "only": 0, "f1": 0.0} for s in SCANNERS} for v in ("library", "hand")
    }
    same = {s: 0 for s in SCANNERS}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            case = _case(entries, seed, encoder, tmp)
            hand = _run(case)
            with _libraries():
                lib = _run(case)
            for variant, res in (("library", lib), ("hand", hand)):
                for s in SCANNERS:
                    t = tallies[variant][s]
                    t["clean"] += res[s]["clean_finding"]
                    t["only"] += res[s]["only_attacked"]
                    t["f1"] += res[s]["f1"] / args.seeds
            for s in SCANNERS:
                same[s] += bool(np.array_equal(lib[s]["flags"], hand[s]["flags"]))
            print(f"seed {seed} done", file=sys.stderr, flush=True)
    n = args.seeds
    print(f"{n} seeds; machine: {platform.machine()} {platform.python_version()}")
    print("| scanner | statistics | clean: with a finding | 5%: only the attacked class | F1 |")
    print("|---|---|---|---|---|")
    for s in SCANNERS:
        for variant, label in (("hand", "hand-written (kept)"), ("library", "scikit-learn")):
            t = tallies[variant][s]
            print(f"| {s} | {label} | {t['clean']:.0f}/{n} | {t['only']:.0f}/{n} | {t['f1']:.2f} |")
    print("same flagged records, both implementations:")
    for s in SCANNERS:
        print(f"  {s}: {same[s]}/{n}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump({"seeds": n, "tallies": tallies, "same_flags": same}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
