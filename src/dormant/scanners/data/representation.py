"""Representation scanners: spectral signatures, activation clustering and SPECTRE on embeddings.

Each scanner embeds the records (:class:`~dormant.adapters.TextEncoder`, or embeddings given by
the caller), splits them by outcome (the label, or a per-record outcome of instruction data) and
asks of every class whether a small group of its records sits apart in a shared direction — what
poisoned records look like when they carry the same planted pattern.

**Which class is attacked.** The published methods score records *within* each class and
remove a fixed share of every class. Here every scanner first tests each class against a null
built from that class itself and gets a per-class p-value; Benjamini–Hochberg (1995) across the
classes at ``fdr`` selects the attacked classes. Only those yield flags and a finding, so a clean
dataset gives none. The three tests differ (see each class).

**Record scores.** Each scanner gives every record of a class a modified z-score (median and
MAD, Iglewicz & Hoaglin 1993) of its outlier statistic, oriented so that high means "towards the
suspicious group". The record score is ``z⁺ / (z⁺ + z_cut)``: 0 at or below the class median,
0.5 at the cut ``z_cut`` (3.5, Iglewicz & Hoaglin's outlier cut), towards 1 far beyond it. Records
of classes that are not attacked score 0: their ranking within a clean class carries no evidence.

**Frozen encoder.** The methods were designed for the poisoned model's own activations. Here the
encoder is a general-purpose sentence encoder that never saw the poison, so a pattern is visible
only as far as it moves the embedding: inserted sentences, phrases and style changes do; a
single rare token or invisible characters barely do (use trigger mining for those).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError
from ...findings import Evidence
from ..base import register
from . import _representation_stats as st
from ._representation_base import (
    LIMITS_COMMON,
    ClassFit,
    ClassTest,
    RepresentationScanner,
)

__all__ = [
    "ActivationClusteringScanner",
    "ClassTest",
    "RepresentationScanner",
    "SpectralSignatureScanner",
    "SpectreScanner",
]


def _top(z: np.ndarray, m: int) -> np.ndarray:
    """Boolean mask of the ``m`` largest entries of ``z``."""
    flags = np.zeros(len(z), dtype=bool)
    if m > 0:
        flags[np.argsort(-z, kind="stable")[:m]] = True
    return flags


def _check_int(obj: object, name: str, low: int) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"The {name!r} parameter must be an int >= {low}. Got {value!r}.")


def _check_float(obj: object, name: str, low: float, high: float) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, float | int) or not low < value <= high:
        raise ConfigError(f"The {name!r} parameter must be in ({low}, {high}]. Got {value!r}.")


@register
@dataclass(kw_only=True, eq=False, repr=False)
class SpectralSignatureScanner(RepresentationScanner):
    """Spectral signatures (Tran, Li & Madry, NeurIPS 2018) on text embeddings.

    Per class: centre the embeddings and take the top right-singular vector ``v``; Tran et al.'s
    outlier score is the squared projection ``((x - mean) · v)²``. Records that share a planted
    pattern sit together at one end of ``v``.

    **Attacked-class test.** ``T`` = records whose modified z-score along ``v`` exceeds
    ``z_cut`` on the heavier side. Without a planted group the top direction's tails are no
    heavier than those of the class's own next ``n_null_directions`` principal directions, whose
    pooled tail rate ``r`` gives ``T ~ Binomial(n, r)``; ``p = 2 P(T' >= T)`` (both sides were
    tried) and a group needs ``min_group`` records. Record score: the modified z-score along
    ``v`` oriented towards the group (monotone in Tran et al.'s score on that side). Flags: the
    ``ceil(removal_factor * T)`` highest (1.5 reproduces Tran et al.'s removal of 1.5 × the
    poison share).
    """

    name = "spectral-signature"
    paper = "Tran, Li & Madry, 'Spectral Signatures in Backdoor Attacks', NeurIPS 2018"
    limits = (
        LIMITS_COMMON + " Sees one direction per class: when a natural split of the class "
        "has more variance than the poisoned group, the group is missed."
    )
    statistic_name = "tail_count"

    n_null_directions: int = 20
    removal_factor: float = 1.0

    def fit_class(self, x: np.ndarray, rng: np.random.Generator) -> ClassFit:
        from scipy import stats

        _check_int(self, "min_group", 1)
        _check_int(self, "n_null_directions", 2)
        _check_float(self, "removal_factor", 0.0, 10.0)
        n = len(x)
        k = max(2, min(self.n_null_directions, n - 2, x.shape[1] - 1))
        scores, s = st.pca(x, k + 1)
        up, lo = st.tail_counts(scores, self.z_cut)
        side = 1.0 if up[0] >= lo[0] else -1.0
        t = int(max(up[0], lo[0]))
        rate = (float(up[1:].sum() + lo[1:].sum()) + 1.0) / (2.0 * k * n + 1.0)
        p = min(1.0, 2.0 * float(stats.binom.sf(t - 1, n, rate))) if t >= self.min_group else 1.0
        z = side * st.robust_z(scores[:, 0])
        ratio = float(s[0] ** 2 / max(s[1] ** 2, 1e-30)) if len(s) > 1 else 1.0
        return ClassFit(
            p_value=p,
            statistic=float(t),
            estimated_fraction=t / n,
            z=z,
            flags=_top(z, int(np.ceil(self.removal_factor * t))),
            evidence=(
                Evidence("eigenvalue_ratio", round(ratio, 6), "top / second eigenvalue"),
                Evidence("tail_count", t, f"records beyond modified z {self.z_cut}"),
                Evidence(
                    "expected_tail_count",
                    round(rate * n, 4),
                    f"from the class's next {k} principal directions",
                ),
            ),
            explanation=(
                f"Along the top singular direction of this class's embeddings, {t} records lie "
                f"beyond modified z {self.z_cut} on one side, where the class's next {k} "
                f"directions predict {rate * n:.2f}. Records that share an inserted sentence, "
                "phrase or style form such a group; read the flagged records for a common "
                "pattern (trigger mining can name it)."
            ),
        )


@register
@dataclass(kw_only=True, eq=False, repr=False)
class ActivationClusteringScanner(RepresentationScanner):
    """Activation clustering (Chen et al., AAAI SafeAI workshop 2019) on text embeddings.

    Per class: reduce to ``n_components`` dimensions (``reduce="pca"``, or ``"ica"`` — FastICA
    as in the paper), split in two with k-means (the best separated of several k-means optima,
    by silhouette), and call the smaller cluster suspicious.

    **Attacked-class test.** Is the split real? The silhouette of the 2-means split is compared
    with its distribution under a single Gaussian with the reduced class's variances (SigClust,
    Liu, Hayes, Nobel & Marron, JASA 2008): ``n_null`` simulated classes of the same size give
    the null mean and sd, and ``p`` is the normal tail. As Chen et al. note, a poisoned cluster
    is the small one: a smaller cluster above ``max_cluster_fraction`` of the class (a natural
    sub-topic) or below ``min_group`` records is not reported (p = 1, and its null is not
    drawn: the null is the test's main cost). Record score: position on the
    line from the large cluster's centre to the small one's (modified z). Flags: the smaller
    cluster. Fitting uses at most ``max_fit_records`` records of a class (sampled with the
    context's seed); every record is then assigned to the nearer centre.
    """

    name = "activation-clustering"
    paper = (
        "Chen, Carvalho, Baracaldo, Ludwig, Edwards, Lee, Molloy & Srivastava, 'Detecting "
        "Backdoor Attacks on Deep Neural Networks by Activation Clustering', AAAI SafeAI "
        "workshop 2019 (arXiv:1811.03728)"
    )
    limits = (
        LIMITS_COMMON + " Two clusters per class: a poisoned group larger than "
        "max_cluster_fraction of its class is not reported, and several distinct triggers in "
        "one class may merge with natural sub-topics."
    )
    statistic_name = "silhouette"

    n_components: int = 10
    reduce: str = "pca"
    n_null: int = 30
    max_cluster_fraction: float = 0.15
    max_fit_records: int = 1000

    def _reduce(self, x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        k = max(2, min(self.n_components, len(x) - 1, x.shape[1]))
        if self.reduce == "pca":
            return st.pca(x, k)[0], ""
        import warnings

        from sklearn.decomposition import FastICA

        ica = FastICA(
            n_components=k,
            whiten="unit-variance",
            max_iter=1000,
            tol=0.005,
            random_state=int(rng.integers(2**31 - 1)),
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reduced = ica.fit_transform(x - x.mean(axis=0))
        note = " FastICA did not converge; its components are approximate." if caught else ""
        return reduced, note

    def fit_class(self, x: np.ndarray, rng: np.random.Generator) -> ClassFit:
        from scipy import stats

        _check_int(self, "min_group", 1)
        _check_int(self, "n_components", 2)
        _check_int(self, "n_null", 5)
        _check_int(self, "max_fit_records", 50)
        _check_float(self, "max_cluster_fraction", 0.0, 0.5)
        if self.reduce not in ("pca", "ica"):
            raise ConfigError(
                f"The 'reduce' parameter must be 'pca' or 'ica'. Got {self.reduce!r} instead."
            )
        n = len(x)
        r, note = self._reduce(x, rng)
        sub = np.arange(n)
        if n > self.max_fit_records:
            sub = np.sort(rng.choice(n, self.max_fit_records, replace=False))
        _, centres, sil = st.best_split(r[sub], rng)
        labels = ((r[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
        sizes = np.bincount(labels, minlength=2)
        small = int(np.argmin(sizes))
        frac = float(sizes[small] / n)
        # a split whose smaller cluster is too large or too small is never reported (p = 1), so
        # its null is not drawn: the null is this test's whole cost, and nothing after it in
        # this class draws from ``rng``, so every other result is unchanged
        gated = frac > self.max_cluster_fraction or sizes[small] < self.min_group
        p, null_mean, null_sd = 1.0, 0.0, 0.0
        null_note = "not drawn: the smaller cluster is outside the reported sizes"
        if not gated:
            sd = r[sub].std(axis=0, ddof=1)
            null = np.empty(self.n_null)
            for b in range(self.n_null):
                g = rng.standard_normal((len(sub), r.shape[1])) * sd
                null[b] = st.best_split(g, rng)[2]
            null_mean = float(null.mean())
            null_sd = max(float(null.std(ddof=1)), 1e-9)
            p = float(stats.norm.sf((sil - null_mean) / null_sd))
            null_note = f"over {self.n_null} draws"
        axis = centres[small] - centres[1 - small]
        z = st.robust_z((r - centres[1 - small]) @ axis / max(np.linalg.norm(axis), 1e-12))
        return ClassFit(
            p_value=p,
            statistic=sil,
            estimated_fraction=frac,
            z=z,
            flags=labels == small,
            evidence=(
                Evidence("silhouette", round(sil, 6), "2-means split of the reduced class"),
                Evidence("null_silhouette", round(null_mean, 6), "Gaussian null mean"),
                Evidence("null_silhouette_sd", round(null_sd, 6), null_note),
                Evidence("smaller_cluster_fraction", round(frac, 6), "share of the class"),
            ),
            explanation=(
                f"Reduced to {r.shape[1]} dimensions ({self.reduce}), this class splits into "
                f"two clusters with silhouette {sil:.3f}, above the {null_mean:.3f} "
                f"a single Gaussian of its shape gives; the smaller cluster holds "
                f"{sizes[small]} records ({frac:.1%}). A small, well separated cluster is what "
                "records sharing a planted pattern form." + note
            ),
        )


@register
@dataclass(kw_only=True, eq=False, repr=False)
class SpectreScanner(RepresentationScanner):
    """SPECTRE (Hayase, Kong, Somani & Oh, ICML 2021) on text embeddings.

    Per class: project on the top ``n_components`` principal directions, estimate the clean
    mean and covariance robustly (trimmed: the ``2 * poison_fraction`` most outlying records
    are left out, as SPECTRE's filter removes up to twice the poison share), whiten with it,
    and score records with quantum-entropy (QUE) scores, ``alpha = que_alpha``.

    **Attacked-class test.** Robust statistics see poison as the gap between a classical and a
    robust estimate: along the class's top principal direction, ``log(variance / MAD²)``
    measures how far the plain variance exceeds the robust one. Without contamination that gap
    is no larger than along the class's own next ``n_null_directions`` directions; ``p`` is the
    Student-t prediction tail of the top direction's gap among theirs. The group (records whose
    QUE score is beyond modified z ``z_cut``) needs ``min_group`` records. Record score: the
    modified z of the square-rooted QUE score. Flags: the ``ceil(removal_factor * group)``
    highest (SPECTRE removes 1.5 × the poison share: ``removal_factor=1.5``).
    """

    name = "spectre"
    paper = (
        "Hayase, Kong, Somani & Oh, 'SPECTRE: Defending Against Backdoor Attacks Using Robust "
        "Statistics', ICML 2021"
    )
    limits = (
        LIMITS_COMMON + " Robust whitening assumes the poisoned group is under "
        "poison_fraction of its class; QUE scores also rise for natural outliers of a class "
        "that the test selected."
    )
    statistic_name = "spread_excess"

    n_components: int = 4
    poison_fraction: float = 0.1
    que_alpha: float = 4.0
    n_null_directions: int = 20
    removal_factor: float = 1.0

    def fit_class(self, x: np.ndarray, rng: np.random.Generator) -> ClassFit:
        _check_int(self, "min_group", 1)
        _check_int(self, "n_components", 1)
        _check_int(self, "n_null_directions", 3)
        _check_float(self, "poison_fraction", 0.0, 0.25)
        _check_float(self, "que_alpha", 0.0, 100.0)
        _check_float(self, "removal_factor", 0.0, 10.0)
        n = len(x)
        k = max(3, min(self.n_null_directions, n - 2, x.shape[1] - 1))
        scores, _ = st.pca(x, max(k + 1, self.n_components))
        med = np.median(scores, axis=0)
        mad = st.MAD_SCALE * np.median(np.abs(scores - med), axis=0)
        gap = np.log(scores.var(axis=0) / np.maximum(mad, 1e-12) ** 2)
        p = st.prediction_p(float(gap[0]), gap[1 : k + 1])
        r = scores[:, : self.n_components]
        mean, cov, keep = st.trimmed_covariance(r, 2.0 * self.poison_fraction)
        w, v = np.linalg.eigh(cov)
        white = (r - mean) @ v / np.sqrt(np.maximum(w, 1e-12))
        z = st.robust_z(np.sqrt(st.que_scores(white, self.que_alpha)))
        group = int((z > self.z_cut).sum())
        if group < self.min_group:
            p = 1.0
        ref = gap[1 : k + 1]
        return ClassFit(
            p_value=p,
            statistic=float(gap[0]),
            estimated_fraction=group / n,
            z=z,
            flags=_top(z, int(np.ceil(self.removal_factor * group))),
            evidence=(
                Evidence("spread_excess", round(float(gap[0]), 6), "log(variance / MAD^2), top"),
                Evidence(
                    "null_spread_excess",
                    round(float(ref.mean()), 6),
                    f"mean over the next {k} directions",
                ),
                Evidence("robust_components", r.shape[1], "dimensions of the robust fit"),
                Evidence("trimmed_records", int((~keep).sum()), "left out of the robust fit"),
            ),
            explanation=(
                f"Along this class's top principal direction the plain variance exceeds the "
                f"robust (MAD) one by {float(gap[0]):.2f} in log units, against "
                f"{float(ref.mean()):.2f} ± {float(ref.std(ddof=1)):.2f} along the next {k} "
                f"directions: a contaminating group. After robust whitening, {group} records "
                "have outlying QUE scores; read them for a common inserted pattern."
            ),
        )
