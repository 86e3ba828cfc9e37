"""ClassifierModel: a text classifier under scan, wrapping an adapter, plus its clean data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataValidationError, InputError, InputNotFoundError
from ..findings import SubjectRef
from .dataset import TextDataset
from .protocol import Gradients


@dataclass(frozen=True)
class CleanData:
    """Clean labelled examples handed to a model scan."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]


@dataclass
class ClassifierModel:
    """A text classifier subject.

    Parameters
    ----------
    adapter:
        A classifier adapter (see :mod:`dormant.adapters.classifier`).
    name:
        Shown in reports.
    clean:
        Clean labelled examples for the scan (see :func:`check_clean_data`), or ``None``.
    """

    adapter: Any
    name: str = "classifier"
    clean: CleanData | None = None

    kind = "classifier"

    @property
    def labels(self) -> list[str]:
        return list(self.adapter.labels)

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(self.adapter.capabilities)

    @property
    def gradients(self) -> Gradients:
        """The white-box capability (:class:`~dormant.subjects.protocol.Gradients`).

        Raises
        ------
        InputError
            The adapter does not offer gradients (a black-box or scikit-learn model).
        """
        if "gradients" not in self.adapter.capabilities or not isinstance(self.adapter, Gradients):
            raise InputError(
                f"The classifier {self.name!r} offers no gradients (a local transformers model "
                "does); use model-trigger-search for black-box models."
            )
        return self.adapter

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer, or ``None`` for a model that is not given tokens."""
        return getattr(self.adapter, "tokenizer", None)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.adapter.predict_proba(list(texts)))

    def ref(self) -> SubjectRef:
        return SubjectRef(kind="model", name=self.name, digest=self.adapter.digest())


def load_classifier(path: str | Path, *, device: str = "cpu") -> ClassifierModel:
    """Open a local classifier: a Hugging Face directory or a ``.skops`` file.

    Pickle/joblib files and pickle-only directories are refused with an explanation.
    """
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"Model not found: {p} (no such file or directory).")
    if p.is_dir():
        from ..adapters.hf_classifier import HFClassifier

        return ClassifierModel(HFClassifier(p, device=device), name=str(p))
    from ..adapters.sklearn_skops import SkopsClassifier

    return ClassifierModel(SkopsClassifier(p), name=str(p))


#: Fewest clean examples a model scan accepts (half optimise the trigger, half replay it).
MIN_CLEAN = 40


def load_clean_data(dataset: TextDataset, model: ClassifierModel) -> CleanData:
    """Read all records of a labelled dataset and check its labels against the model's."""
    if dataset.kind != "labelled":
        raise InputError("A model scan needs labelled clean data (text_field and label_field).")
    texts: list[str] = []
    labels: list[str] = []
    for b in dataset.batches():
        texts.extend(b.texts)
        labels.extend(b.labels or [])
    return check_clean_data(texts, labels, model, source=str(dataset.path))


def check_clean_data(
    texts: Sequence[str], labels: Sequence[str], model: ClassifierModel, *, source: str = "data"
) -> CleanData:
    """Validate clean examples: enough of them, and labels the model knows."""
    if len(texts) < MIN_CLEAN:
        raise DataValidationError(
            f"{source}: {len(texts)} clean examples are too few to decide; a model scan needs at "
            f"least {MIN_CLEAN} (200 or more gives a tighter flip-rate replay)."
        )
    known = set(model.labels)
    unknown = sorted({str(y) for y in labels} - known)
    if unknown:
        raise DataValidationError(
            f"{source}: labels {', '.join(map(repr, unknown[:5]))} are not labels of the model "
            f"({', '.join(map(repr, model.labels))}); pass data labelled with the model's "
            "label names."
        )
    return CleanData(tuple(texts), tuple(str(y) for y in labels))
