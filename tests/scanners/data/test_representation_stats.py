"""The numerical pieces of the representation scanners, pinned on fixed inputs.

Benjamini-Hochberg comes from scipy (the values of the hand-written version it replaced are
pinned); the 2-means split and the trimmed covariance stay hand-written, because scikit-learn's
KMeans and MinCovDet measured worse in their place (benchmarks/bench_representation_libs.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from dormant.scanners.data import _representation_stats as st


def test_bh_adjust_values_on_a_fixed_input() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.5, 0.001, 0.04, 0.2, 1.0])
    expected = [0.04, 0.064, 0.064, 0.5714285714285714, 0.008, 0.064, 0.26666666666666666, 1.0]
    assert st.bh_adjust(p) == pytest.approx(expected, abs=1e-15)
    assert st.bh_adjust(np.array([])).shape == (0,)


def _blobs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    big = rng.normal(0.0, 1.0, size=(60, 5))
    small = rng.normal(6.0, 0.5, size=(8, 5))
    x = np.vstack([big, small])
    truth = np.r_[np.zeros(60, dtype=int), np.ones(8, dtype=int)]
    return x, truth


def test_two_means_finds_a_small_planted_group() -> None:
    x, truth = _blobs()
    labels, centres = st.two_means(x, np.random.default_rng(0), n_init=3)
    if labels[0] != 0:  # cluster numbering is arbitrary
        labels, centres = 1 - labels, centres[::-1]
    assert labels.tolist() == truth.tolist()
    assert centres[0] == pytest.approx(x[:60].mean(axis=0))
    assert centres[1] == pytest.approx(x[60:].mean(axis=0))


def test_best_split_is_the_planted_split_with_a_high_silhouette() -> None:
    x, truth = _blobs()
    labels, _, sil = st.best_split(x, np.random.default_rng(0))
    labels = labels if labels[0] == 0 else 1 - labels
    assert labels.tolist() == truth.tolist()
    assert sil == pytest.approx(st.silhouette(x, truth))
    assert sil > 0.6


def test_trimmed_covariance_leaves_the_outliers_out() -> None:
    rng = np.random.default_rng(3)
    inliers = rng.normal(0.0, 1.0, size=(200, 3)) * np.array([1.0, 2.0, 3.0])
    outliers = rng.normal(20.0, 1.0, size=(10, 3))
    x = np.vstack([inliers, outliers])
    mean, cov, keep = st.trimmed_covariance(x, 0.1)
    assert keep.sum() == len(x) - int(np.floor(0.1 * len(x)))
    assert not keep[200:].any()
    kept = x[keep]
    assert mean == pytest.approx(kept.mean(axis=0))
    assert cov == pytest.approx(np.cov(kept.T, bias=True), abs=1e-6)
    assert np.sqrt(np.diag(cov)) == pytest.approx([1.0, 2.0, 3.0], rel=0.25)


def test_trimmed_covariance_without_trimming_is_the_sample_covariance() -> None:
    x = np.random.default_rng(4).normal(size=(50, 2))
    mean, cov, keep = st.trimmed_covariance(x, 0.0)
    assert keep.all()
    assert mean == pytest.approx(x.mean(axis=0))
    assert cov == pytest.approx(np.cov(x.T, bias=True), abs=1e-6)
