"""scikit-learn text pipelines saved with ``skops`` (black-box: probabilities only).

``skops.io`` does not unpickle: it rebuilds objects from a schema and refuses types that are not
trusted. dormant trusts only scikit-learn, NumPy and SciPy types (plus a few builtins); a file
that needs anything else is refused with the list of untrusted types. Raw pickle/joblib files are
refused outright: loading one runs code from the artifact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, InputNotFoundError, require
from .classifier import check_proba

TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".dill")


class SkopsClassifier:
    """A scikit-learn pipeline (``texts -> predict_proba``) stored as a ``.skops`` file.

    Parameters
    ----------
    path:
        The ``.skops`` file.
    """

    capabilities = frozenset({"proba"})

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputNotFoundError(f"Model not found: {self.path} (no such file).")
        if self.path.suffix.lower() in PICKLE_SUFFIXES:
            raise InputError(
                f"{self.path} is a pickle/joblib file; loading it would execute code from the "
                "artifact, so dormant refuses. Re-save the pipeline with skops "
                "(skops.io.dump(pipe, 'model.skops')) from a trusted environment and scan that."
            )
        if self.path.suffix.lower() != ".skops":
            raise InputError(f"{self.path}: expected a .skops file. Got {self.path.suffix!r}.")
        sio = require("skops.io", "sklearn")
        try:
            untrusted = sio.get_untrusted_types(file=str(self.path))  # type: ignore[attr-defined]
        except Exception as exc:  # skops raises many types for a corrupt file
            raise InputError(f"{self.path} is not a readable skops file: {exc}") from None
        bad = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
        if bad:
            raise InputError(
                f"{self.path} needs types dormant does not trust: {', '.join(sorted(bad))}. "
                "Only scikit-learn, NumPy and SciPy types are loaded."
            )
        try:
            self.pipeline: Any = sio.load(  # type: ignore[attr-defined]
                str(self.path), trusted=list(untrusted)
            )
        except Exception as exc:
            raise InputError(f"{self.path} does not load: {exc}") from None
        if not hasattr(self.pipeline, "predict_proba") or not hasattr(self.pipeline, "classes_"):
            raise InputError(
                f"{self.path} holds a {type(self.pipeline).__name__}, not a classifier with "
                "predict_proba and classes_."
            )
        self.labels = [str(c) for c in self.pipeline.classes_]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        p = self.pipeline.predict_proba(list(texts))
        return check_proba(p, len(texts), len(self.labels), source=str(self.path))

    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.path.read_bytes()).hexdigest()
