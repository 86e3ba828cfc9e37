"""Representation scanners with library statistics vs the hand-written ones they replaced.

The 2-means split (``sklearn.cluster.KMeans``), the trimmed covariance (the raw FAST-MCD
estimate of ``sklearn.covariance.MinCovDet``) and Benjamini-Hochberg
(``scipy.stats.false_discovery_control``) replaced hand-written versions in
``dormant.scanners.data._representation_stats``. This runs the three representation scanners
on the same embeddings with each implementation, in the same run, over many seeds:

- design (as ``tests/test_representation.py``): 150 WordNet glosses per part of speech from the
  shipped sample corpus, drawn by seed; 5% of the noun and verb glosses get an inserted sentence
  and the label ``adj`` (a dirty-label backdoor); the clean twin is the same 600 records;
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

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


# -- the hand-written versions the libraries replaced (the baseline) ----------------------------


def _hand_two_means(
    x: np.ndarray, rng: np.random.Generator, *, n_init: int = 3, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    n = len(x)
    for _ in range(n_init):
        c0 = x[rng.integers(n)]
        d = ((x - c0) ** 2).sum(axis=1)
        c1 = x[rng.choice(n, p=d / d.sum())] if d.sum() > 0 else x[rng.integers(n)]
        centres = np.stack([c0, c1])
        labels = np.zeros(n, dtype=np.int64)
        for _ in range(max_iter):
            dist = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
            labels = dist.argmin(axis=1)
            if labels.min() == labels.max():
                break
            new = np.stack([x[labels == j].mean(axis=0) for j in (0, 1)])
            if np.allclose(new, centres):
                break
            centres = new
        dist = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        labels = dist.argmin(axis=1)
        inertia = float(dist[np.arange(n), labels].sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels, centres)
    assert best is not None
    return best[1], best[2]


def _hand_trimmed_covariance(
    x: np.ndarray, trim: float, *, max_iter: int = 20
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, k = x.shape
    drop = int(np.floor(trim * n))
    keep = np.ones(n, dtype=bool)
    mean = x.mean(axis=0)
    cov = np.atleast_2d(np.cov(x.T, bias=True)) + 1e-9 * np.eye(k)
    for _ in range(max_iter):
        mean = x[keep].mean(axis=0)
        cov = np.atleast_2d(np.cov(x[keep].T, bias=True)) + 1e-9 * np.eye(k)
        diff = x - mean
        d2 = np.einsum("ij,jk,ik->i", diff, np.linalg.inv(cov), diff)
        new = np.zeros(n, dtype=bool)
        new[np.argsort(d2, kind="stable")[: n - drop]] = True
        if np.array_equal(new, keep):
            break
        keep = new
    return mean, cov, keep


def _hand_bh(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.clip(q, 0.0, 1.0)
    return out


@contextmanager
def _hand_written() -> Iterator[None]:
    saved: dict[str, Callable[..., Any]] = {
        "two_means": st.two_means,
        "trimmed_covariance": st.trimmed_covariance,
        "bh_adjust": st.bh_adjust,
    }
    st.two_means = _hand_two_means  # type: ignore[assignment]
    st.trimmed_covariance = _hand_trimmed_covariance  # type: ignore[assignment]
    st.bh_adjust = _hand_bh
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
            lib = _run(case)
            with _hand_written():
                hand = _run(case)
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
        for variant, label in (("hand", "hand-written (before)"), ("library", "library (after)")):
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
