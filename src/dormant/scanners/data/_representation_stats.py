"""Numerical pieces of the representation scanners: robust scores, nulls, clustering, QUE.

Pure functions over numpy arrays; no I/O. See :mod:`dormant.scanners.data.representation`.
"""

from __future__ import annotations

import numpy as np

#: 1 / Phi^-1(3/4): makes the MAD a consistent estimate of the standard deviation
MAD_SCALE = 1.482602218505602


def robust_z(values: np.ndarray) -> np.ndarray:
    """Modified z-scores ``(x - median) / (1.4826 * MAD)`` (Iglewicz & Hoaglin 1993).

    Falls back to the mean absolute deviation (scaled to the standard deviation) when more than
    half of the values are equal, and to zeros when all are.
    """
    x = np.asarray(values, dtype=np.float64)
    med = float(np.median(x))
    dev = np.abs(x - med)
    scale = MAD_SCALE * float(np.median(dev))
    if scale <= 1e-12:
        scale = 1.2533141373155 * float(dev.mean())
    if scale <= 1e-12:
        return np.zeros_like(x)
    return (x - med) / scale


def squash(z: np.ndarray, cut: float) -> np.ndarray:
    """Record score ``z⁺ / (z⁺ + cut)``: 0 at or below the median, 0.5 at ``cut``, → 1 beyond."""
    zp = np.clip(np.asarray(z, dtype=np.float64), 0.0, None)
    return zp / (zp + cut)


def bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg (1995) adjusted p-values (q-values), in the input order.

    ``scipy.stats.false_discovery_control(p, method="bh")``.
    """
    p = np.asarray(p, dtype=np.float64)
    if len(p) == 0:
        return p
    from scipy.stats import false_discovery_control

    return np.asarray(false_discovery_control(p, method="bh"), dtype=np.float64)


def pca(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre ``x``; return its scores on the top ``k`` principal axes and their singular values.

    The callers use the top ``k`` axes only, so when the class has more rows than dimensions
    the axes come from the ``k`` largest eigenpairs of the ``d x d`` scatter matrix
    (``scipy.linalg.eigh(subset_by_index=...)``, LAPACK's ``syevr``), not from a thin SVD of
    the ``n x d`` matrix: the same axes and singular values up to rounding, at ``O(n d^2)``
    matrix-product cost instead of the SVD's iterations over every axis (Golub & Van Loan,
    *Matrix Computations*, 4th ed., §8.6: the singular values of ``X`` are the square roots
    of the eigenvalues of ``X'X``). A randomized SVD (Halko, Martinsson & Tropp 2011) would
    be faster still but approximate, and the nulls of the scanners compare its top axis with
    the next ones, so an exact method is kept. Axis signs follow one convention (the largest
    loading of each axis is positive, as ``sklearn.utils.extmath.svd_flip``), so the result
    does not depend on the LAPACK routine.
    """
    centred = x - x.mean(axis=0)
    n, d = centred.shape
    k = max(1, min(k, n, d))
    if n > d:
        from scipy.linalg import eigh

        w, v = eigh(centred.T @ centred, subset_by_index=[d - k, d - 1])
        w, vt = w[::-1], v[:, ::-1].T
        s = np.sqrt(np.clip(w, 0.0, None))
    else:
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        s, vt = s[:k], vt[:k]
    big = np.argmax(np.abs(vt), axis=1)
    vt = vt * np.sign(vt[np.arange(len(vt)), big])[:, None]
    return centred @ vt.T, s


def tail_counts(scores: np.ndarray, cut: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column: how many modified z-scores lie above ``cut`` and below ``-cut``."""
    z = np.column_stack([robust_z(scores[:, j]) for j in range(scores.shape[1])])
    return (z > cut).sum(axis=0), (z < -cut).sum(axis=0)


def two_means(
    x: np.ndarray, rng: np.random.Generator, *, n_init: int = 3, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's 2-means with k-means++ seeding; returns (labels, centres) of the best start.

    Written here rather than with ``sklearn.cluster.KMeans``: :func:`best_split` picks among
    the local optima of single starts by silhouette, and the KMeans-based split (greedy or
    one-trial k-means++ seeds) measured worse for activation clustering — the planted group
    found in 2 of 8 seeds instead of 4, mean F1 0.25 instead of 0.48, on the same embeddings
    in the same run (``benchmarks/bench_representation_libs.py``, BENCHMARKS.md).
    """
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


#: largest class sample whose pairwise distances :func:`best_split` keeps (8 bytes each: 32 MB)
MAX_SHARED_DISTANCES = 2048


def best_split(
    x: np.ndarray, rng: np.random.Generator, *, n_init: int = 8
) -> tuple[np.ndarray, np.ndarray, float]:
    """The 2-means local optimum (over ``n_init`` k-means++ starts) with the best silhouette.

    k-means' own objective favours balanced splits; among its local optima the silhouette
    (Rousseeuw 1987) picks the best separated one, which is where a small planted group shows.
    Returns ``(labels, centres, silhouette)``. The pairwise distances of ``x`` are computed
    once (``sklearn.metrics.pairwise_distances``) and shared by the starts' silhouettes when
    ``x`` has at most :data:`MAX_SHARED_DISTANCES` rows.
    """
    best: tuple[np.ndarray, np.ndarray, float] | None = None
    seen: set[bytes] = set()
    distances: np.ndarray | None = None
    for _ in range(n_init):
        labels, centres = two_means(x, rng, n_init=1)
        key = (labels if labels[0] == 0 else 1 - labels).astype(np.int8).tobytes()
        if key in seen:
            continue
        seen.add(key)
        if distances is None and len(x) <= MAX_SHARED_DISTANCES:
            from sklearn.metrics import pairwise_distances

            distances = pairwise_distances(x)
        sil = silhouette(x, labels, distances=distances)
        if best is None or sil > best[2]:
            best = (labels, centres, sil)
    assert best is not None
    return best


def silhouette(x: np.ndarray, labels: np.ndarray, *, distances: np.ndarray | None = None) -> float:
    """Mean silhouette (Rousseeuw 1987) of a 2-cluster labelling; 0 when a cluster is tiny.

    Without ``distances``: ``sklearn.metrics.silhouette_score``. With the precomputed
    ``(m, m)`` Euclidean ``distances`` of ``x``: the same definition — ``a`` the mean distance
    to the rest of the own cluster, ``b`` to the other cluster, ``s = (b - a) / max(a, b)`` —
    from one product of the distances with the two cluster indicators. Written here because
    scikit-learn's reduction (``_silhouette_reduce``) calls ``np.bincount`` once per row in a
    Python loop, which made it the largest cost of activation clustering (its 240 silhouettes
    per class); ``tests/scanners/data/test_representation_speed.py`` pins it to
    scikit-learn's value.
    """
    counts = np.bincount(labels, minlength=2)
    if counts.min() < 2:
        return 0.0
    if distances is None:
        from sklearn.metrics import silhouette_score

        return float(silhouette_score(x, labels))
    sums = distances @ np.eye(2)[labels]
    rows = np.arange(len(labels))
    a = sums[rows, labels] / (counts[labels] - 1)
    b = sums[rows, 1 - labels] / counts[1 - labels]
    top = np.maximum(a, b)
    s = np.divide(b - a, top, out=np.zeros_like(top), where=top > 0)
    return float(s.mean())


def trimmed_covariance(
    x: np.ndarray, trim: float, *, max_iter: int = 20
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and covariance of the ``1 - trim`` share of rows closest in Mahalanobis distance.

    Concentration steps (Rousseeuw & Van Driessen 1999) started from the full sample: fit,
    keep the least outlying rows, refit, until the kept set stops changing. Returns
    ``(mean, covariance, kept_mask)``.

    Written here rather than with ``sklearn.covariance.MinCovDet``: its FAST-MCD starts from
    random subsets, and its raw estimate gave SPECTRE one more finding on clean data (2 of 8
    seeds instead of 1) on the same embeddings in the same run
    (``benchmarks/bench_representation_libs.py``, BENCHMARKS.md); starting the concentration
    steps from the full sample is deterministic and is what SPECTRE's robust whitening needs.
    """
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


def que_scores(white: np.ndarray, alpha: float) -> np.ndarray:
    """Quantum-entropy (QUE) scores of whitened rows (Dong, Hopkins & Li, NeurIPS 2019).

    ``tau_i = y_i' Q y_i / tr Q`` with ``Q = exp(alpha (S - I) / (||S|| - 1))`` and ``S`` the
    covariance of the whitened rows, as used by SPECTRE (Hayase et al., ICML 2021).
    """
    from scipy.linalg import expm

    k = white.shape[1]
    s = np.atleast_2d(np.cov(white.T, bias=True))
    top = float(np.linalg.eigvalsh(s)[-1])
    q = expm(alpha * (s - np.eye(k)) / (top - 1.0)) if top > 1.0 + 1e-9 else np.eye(k)
    return np.einsum("ij,jk,ik->i", white, q, white) / float(np.trace(q))


def prediction_p(value: float, reference: np.ndarray) -> float:
    """One-sided p-value of ``value`` as a new draw from the distribution of ``reference``.

    Student-t prediction interval: ``t = (value - mean) / (sd * sqrt(1 + 1/m))`` with
    ``m - 1`` degrees of freedom (``m = len(reference)``), valid for normal reference values.
    """
    from scipy import stats

    ref = np.asarray(reference, dtype=np.float64)
    m = len(ref)
    sd = float(ref.std(ddof=1)) if m > 1 else 0.0
    if m < 3 or sd <= 1e-12:
        return 1.0
    t = (value - float(ref.mean())) / (sd * np.sqrt(1.0 + 1.0 / m))
    return float(stats.t.sf(t, m - 1))
