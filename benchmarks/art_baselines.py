"""IBM ART's poison detectors run on the same embeddings as dormant's representation scanners.

Baselines for ``benchmarks``: the Adversarial Robustness Toolbox (Nicolae et al., 2018; ART
1.20) implements Tran, Li & Madry's spectral signatures (NeurIPS 2018) as
``SpectralSignatureDefense`` and Chen et al.'s activation clustering (AAAI SafeAI workshop 2019)
as ``ActivationDefence``. Both read "activations" from a wrapped classifier: they take the output
of the classifier's last named layer (``layer_names[-1]``). We wrap a tiny PyTorch module whose
only named layer is an ``nn.Identity`` over the input, so the activations ART reads are exactly
the embeddings we pass in; its output head is a plain parameter matrix (not a named layer), so
the classifier still has ``nb_classes`` outputs. Nothing is trained: neither defence calls
``predict`` or ``fit`` with the settings used here (no exclusionary reclassification).

ART's flags are returned unchanged. Its decision rules are the baseline: spectral signatures
remove the top ``eps_multiplier * expected_pp_poison`` share of *every* class, and activation
clustering marks the smaller of two clusters of *every* class as poison.

Requires the ``bench`` and ``embed`` extras (``adversarial-robustness-toolbox``, ``torch``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dormant.errors import ConfigError, require


def _labels_to_int(labels: Any, n: int) -> tuple[np.ndarray, int]:
    arr = np.asarray(labels)
    if arr.ndim != 1 or len(arr) != n:
        raise ConfigError(
            f"The 'labels' parameter must be a 1-D sequence with one label per embedding row "
            f"({n}). Got shape {arr.shape} instead."
        )
    classes, codes = np.unique(arr.astype(str), return_inverse=True)
    if len(classes) < 1:
        raise ConfigError("The 'labels' parameter is empty.")
    return codes.astype(np.int64), len(classes)


def _check_embeddings(embeddings: Any) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ConfigError(
            f"The 'embeddings' parameter must be a 2-D array (records x dims) with at least two "
            f"rows. Got shape {x.shape} instead."
        )
    if not np.all(np.isfinite(x)):
        raise ConfigError("The 'embeddings' parameter holds NaN or infinite values.")
    return np.ascontiguousarray(x)


def _identity_classifier(dim: int, nb_classes: int) -> Any:
    """An ART ``PyTorchClassifier`` whose last (only) named layer returns its input."""
    torch: Any = require("torch", "embed")
    require("art", "bench")
    from art.estimators.classification import PyTorchClassifier

    class EmbeddingHead(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Identity()  # the one named layer ART reads
            gen = torch.Generator().manual_seed(0)
            self.weight = torch.nn.Parameter(torch.randn(nb_classes, dim, generator=gen) * 0.01)

        def forward(self, x: Any) -> Any:
            return self.embedding(x) @ self.weight.T

    return PyTorchClassifier(
        model=EmbeddingHead(),
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(dim,),
        nb_classes=nb_classes,
        device_type="cpu",
    )


class _NumpySeed:
    """Seed numpy's global generator for ART (which draws from it) and restore it after."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __enter__(self) -> None:
        self._state = np.random.get_state()
        np.random.seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        np.random.set_state(self._state)


def art_spectral_signature(
    embeddings: Any,
    labels: Any,
    *,
    expected_pp_poison: float,
    eps_multiplier: float = 1.5,
    batch_size: int = 1024,
) -> np.ndarray:
    """ART ``SpectralSignatureDefense`` on ``embeddings``; ``True`` where ART flags poison.

    Parameters
    ----------
    embeddings:
        ``(n, d)`` representation matrix (e.g. from :class:`dormant.adapters.TextEncoder`).
    labels:
        One label per row; classes are the distinct values.
    expected_pp_poison:
        ART's expected poison share per class, in ``[0, 1]``; ART removes the top
        ``eps_multiplier * expected_pp_poison`` share of every class.
    """
    x = _check_embeddings(embeddings)
    y, k = _labels_to_int(labels, len(x))
    if not 0.0 <= float(expected_pp_poison) <= 1.0:
        raise ConfigError(
            f"The 'expected_pp_poison' parameter must be in [0, 1]. Got {expected_pp_poison!r}."
        )
    from art.defences.detector.poison import SpectralSignatureDefense

    classifier = _identity_classifier(x.shape[1], k)
    defence = SpectralSignatureDefense(
        classifier,
        x,
        y,
        expected_pp_poison=float(expected_pp_poison),
        batch_size=batch_size,
        eps_multiplier=eps_multiplier,
    )
    _, is_clean = defence.detect_poison()
    return np.asarray(is_clean) == 0


def art_activation_defence(
    embeddings: Any,
    labels: Any,
    *,
    nb_dims: int = 10,
    reduce: str = "PCA",
    cluster_analysis: str = "smaller",
    seed: int = 0,
) -> np.ndarray:
    """ART ``ActivationDefence`` on ``embeddings``; ``True`` where ART flags poison.

    ART's defaults: per class, reduce to ``nb_dims`` with ``reduce`` (``PCA``, ``FastICA``),
    2-means, and ``cluster_analysis`` (``smaller``: the smaller cluster of every class is
    poison; also ``relative-size``, ``distance``, ``silhouette-scores``). ART draws k-means
    seeds from numpy's global generator; it is seeded with ``seed`` for the call and restored
    afterwards.
    """
    x = _check_embeddings(embeddings)
    y, k = _labels_to_int(labels, len(x))
    from art.defences.detector.poison import ActivationDefence

    classifier = _identity_classifier(x.shape[1], k)
    defence = ActivationDefence(classifier, x, y)
    with _NumpySeed(seed):
        _, is_clean = defence.detect_poison(
            nb_clusters=2, nb_dims=nb_dims, reduce=reduce, cluster_analysis=cluster_analysis
        )
    return np.asarray(is_clean) == 0
