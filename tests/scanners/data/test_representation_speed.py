"""The representation scanners' cheaper statistics give the values of the definitions replaced."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import pairwise_distances, silhouette_score

from dormant.scanners.data import _representation_stats as st
from dormant.scanners.data.representation import ActivationClusteringScanner


def _blobs(seed: int, n: int = 400, d: int = 10, planted: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * np.linspace(2.0, 0.5, d)
    x[:planted] += 6.0
    return x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_shared_distance_silhouette_is_scikit_learns(seed: int) -> None:
    x = _blobs(seed, planted=30)
    d = pairwise_distances(x)
    rng = np.random.default_rng(seed)
    for labels in (
        (np.arange(len(x)) < 30).astype(np.int64),
        rng.integers(0, 2, len(x)),
        st.two_means(x, rng, n_init=1)[0],
    ):
        fast = st.silhouette(x, labels, distances=d)
        assert fast == pytest.approx(float(silhouette_score(x, labels)), abs=1e-12)
    one = np.zeros(len(x), dtype=np.int64)
    one[0] = 1
    assert st.silhouette(x, one, distances=d) == 0.0


@pytest.mark.parametrize(("n", "d"), [(500, 40), (30, 40)])
def test_top_axes_match_the_full_svd(n: int, d: int) -> None:
    x = np.random.default_rng(n).standard_normal((n, d)) * np.linspace(3.0, 0.2, d)
    scores, s = st.pca(x, 5)
    centred = x - x.mean(axis=0)
    _, full, vt = np.linalg.svd(centred, full_matrices=False)
    assert scores.shape == (n, 5)
    np.testing.assert_allclose(s, full[:5], rtol=1e-9)
    for j in range(5):  # the same axis, up to its sign
        ref = centred @ vt[j]
        sign = np.sign(ref @ scores[:, j])
        np.testing.assert_allclose(scores[:, j], sign * ref, atol=1e-8)
    # one sign convention (the largest loading of each axis positive): row order changes nothing
    perm = np.random.default_rng(0).permutation(n)
    np.testing.assert_allclose(st.pca(x[perm], 5)[0], scores[perm], atol=1e-8)


def test_a_planted_cluster_is_tested_and_a_balanced_split_is_not() -> None:
    scanner = ActivationClusteringScanner()
    planted = scanner.fit_class(_blobs(3, n=600, d=20, planted=30), np.random.default_rng(0))
    assert planted.p_value < 1e-3
    assert planted.flags.sum() == 30
    notes = {e.name: e.description for e in planted.evidence}
    assert notes["null_silhouette_sd"] == "over 30 draws"
    rng = np.random.default_rng(4)
    halves = np.vstack([rng.standard_normal((300, 20)), rng.standard_normal((300, 20)) + 5.0])
    balanced = scanner.fit_class(halves, np.random.default_rng(0))
    assert balanced.p_value == 1.0
    assert "not drawn" in {e.name: e.description for e in balanced.evidence}["null_silhouette_sd"]
