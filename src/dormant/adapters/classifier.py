"""Black-box classifier adapters: any Python callable, and an HTTP classifier endpoint.

Every classifier adapter exposes ``labels`` (class names in output order), ``capabilities``
(a frozenset of ``proba``, ``gradients``, ``embeddings``), ``predict_proba(texts)`` returning an
``(n, n_labels)`` float array whose rows sum to 1, and ``digest()`` (``sha256:...`` of what was
loaded, or of the endpoint/callable identity when there are no bytes to hash).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigError, InputError, ScanError


@runtime_checkable
class ClassifierAdapter(Protocol):
    """What the model scanners need from a text classifier."""

    labels: list[str]
    capabilities: frozenset[str]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def digest(self) -> str: ...


def check_proba(p: Any, n: int, n_labels: int, *, source: str) -> np.ndarray:
    """Validate a probability matrix from an adapter; raise :class:`ScanError` if malformed."""
    arr = np.asarray(p, dtype=np.float64)
    if arr.shape != (n, n_labels):
        raise ScanError(
            f"{source} returned probabilities of shape {arr.shape}; expected ({n}, {n_labels}) "
            "(one row per text, one column per label)."
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < -1e-6):
        raise ScanError(f"{source} returned non-finite or negative probabilities.")
    sums = arr.sum(axis=1, keepdims=True)
    if np.any(np.abs(sums - 1.0) > 1e-3):
        raise ScanError(
            f"{source} returned rows that do not sum to 1 (e.g. {float(sums.ravel()[0]):.4f}); "
            "return probabilities (softmax), not logits."
        )
    return np.clip(arr, 0.0, 1.0)


def _check_labels(labels: Sequence[str], param: str) -> list[str]:
    out = [str(x) for x in labels]
    if len(out) < 2 or len(set(out)) != len(out):
        raise ConfigError(
            f"The '{param}' parameter must list at least two distinct labels. Got {labels!r}."
        )
    return out


class CallableClassifier:
    """A Python callable ``texts -> probabilities`` (black-box: queries only).

    Parameters
    ----------
    fn:
        Called with a list of strings; returns an ``(n, n_labels)`` array-like of probabilities.
    labels:
        Class names in the column order of ``fn``'s output.
    name:
        Identity used in the report's subject digest.
    batch_size:
        Texts per call.
    """

    capabilities = frozenset({"proba"})

    def __init__(
        self,
        fn: Callable[[list[str]], Any],
        *,
        labels: Sequence[str],
        name: str = "callable",
        batch_size: int = 64,
    ) -> None:
        if not callable(fn):
            raise ConfigError(f"The 'fn' parameter must be callable. Got {type(fn).__name__}.")
        self.fn = fn
        self.labels = _check_labels(labels, "labels")
        self.name = name
        self.batch_size = batch_size

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        parts = []
        for i in range(0, len(texts), self.batch_size):
            chunk = list(texts[i : i + self.batch_size])
            parts.append(
                check_proba(self.fn(chunk), len(chunk), len(self.labels), source=self.name)
            )
        return np.concatenate(parts) if parts else np.zeros((0, len(self.labels)))

    def digest(self) -> str:
        ident = f"{self.name}:{getattr(self.fn, '__qualname__', type(self.fn).__name__)}"
        return "sha256:" + hashlib.sha256(ident.encode()).hexdigest()


class HTTPClassifier:
    """A classifier behind an HTTP endpoint, queried in the OpenAI style (black-box).

    Request: ``POST {url}`` with JSON ``{"model": model, "input": [texts...]}``. Response:
    ``{"data": [{"index": i, "probabilities": {label: p, ...}} ...]}`` (the shape of the
    OpenAI embeddings/moderation APIs, with probabilities in place of vectors); a list of
    floats in ``labels`` order is accepted too.

    Parameters
    ----------
    url:
        Endpoint URL (``http://`` or ``https://``).
    labels:
        Class names; the column order of the returned probabilities.
    model:
        Value of the ``model`` field.
    api_key:
        Sent as ``Authorization: Bearer``; never written to reports.
    timeout:
        Seconds per request.
    batch_size:
        Texts per request.
    """

    capabilities = frozenset({"proba"})

    def __init__(
        self,
        url: str,
        *,
        labels: Sequence[str],
        model: str = "classifier",
        api_key: str | None = None,
        timeout: float = 30.0,
        batch_size: int = 32,
    ) -> None:
        if not str(url).startswith(("http://", "https://")):
            raise ConfigError(f"The 'url' parameter must be an http(s) URL. Got {url!r}.")
        self.url = url
        self.labels = _check_labels(labels, "labels")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.batch_size = batch_size

    def _post(self, texts: list[str]) -> Any:
        import urllib.error
        import urllib.request

        body = json.dumps({"model": self.model, "input": texts}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.URLError as exc:
            raise InputError(f"Classifier endpoint {self.url} failed: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ScanError(
                f"Classifier endpoint {self.url} returned invalid JSON: {exc}"
            ) from None

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        parts = []
        for i in range(0, len(texts), self.batch_size):
            chunk = list(texts[i : i + self.batch_size])
            data = self._post(chunk)
            try:
                rows = sorted(data["data"], key=lambda r: r.get("index", 0))
                mat = []
                for r in rows:
                    p = r["probabilities"]
                    mat.append([p[lab] for lab in self.labels] if isinstance(p, dict) else p)
            except (KeyError, TypeError) as exc:
                raise ScanError(
                    f"Classifier endpoint {self.url} returned an unexpected body (missing "
                    f"{exc}); expected {{'data': [{{'probabilities': ...}}]}}."
                ) from None
            parts.append(check_proba(mat, len(chunk), len(self.labels), source=self.url))
        return np.concatenate(parts) if parts else np.zeros((0, len(self.labels)))

    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(f"{self.url}|{self.model}".encode()).hexdigest()
