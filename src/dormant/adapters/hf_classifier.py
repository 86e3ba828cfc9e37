"""Hugging Face transformers sequence classifier from a local directory (white-box).

Safety: weights are read only from ``*.safetensors`` files (``use_safetensors=True``);
``trust_remote_code`` is never set; nothing is downloaded (``local_files_only=True``). A
directory that holds only pickle weights (``pytorch_model.bin``, ``*.pt``, ``*.ckpt``) is refused
with the command that converts it, since loading a pickle runs code from the artifact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, InputNotFoundError, require


@contextmanager
def quiet_loading(*, load_report: bool = True) -> Iterator[None]:
    """Load or save weights without transformers' progress bars ("Loading weights", "Writing
    model shards") on stderr: the library does not print, and the CLI draws its own progress.

    ``load_report=False`` also holds back transformers' warnings for the block, e.g. the
    "MISSING classifier.weight" report when a new head is put on a pretrained encoder on
    purpose; scans keep it on, since there a missing head is news.
    """
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    if not load_report:
        hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(verbosity)


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def load_local(
    path: Path, cfg: dict[str, Any], auto_class: str, *, device: str, use: str, what: str
) -> tuple[Any, Any]:
    """The tokenizer and model (``transformers.<auto_class>``, on ``device``) of a local folder.

    Never runs code from the folder: a config with ``auto_map`` (custom code) is refused,
    ``trust_remote_code`` stays off, weights load from safetensors only, nothing is fetched.
    ``use`` ("scan", "probe") and ``what`` ("a classifier") word the errors.

    Raises
    ------
    InputError
        The folder needs custom code, or does not load (corrupt files surface as many
        library-specific types: all are reported with the library's message).
    """
    if cfg.get("auto_map"):
        raise InputError(
            f"{path} needs custom code (config.json has auto_map); dormant never runs "
            f"code from a model under {use} (trust_remote_code is never set)."
        )
    require("torch", "embed")
    require("transformers", "embed")
    import transformers

    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(path), local_files_only=True, trust_remote_code=False
        )
        with quiet_loading():
            model = getattr(transformers, auto_class).from_pretrained(
                str(path),
                local_files_only=True,
                trust_remote_code=False,
                use_safetensors=True,
            )
        return tokenizer, model.to(device)
    except Exception as exc:  # corrupt files surface as many library-specific types
        raise InputError(f"{path} does not load as {what} ({type(exc).__name__}: {exc})") from None


def refuse_reason(
    path: Path, auto_class: str = "AutoModelForSequenceClassification", verb: str = "scan"
) -> str | None:
    """Why ``path`` is no safe model directory (``None`` when it is or does not exist); the
    conversion command for pickle-only weights uses ``auto_class``."""
    if not path.exists():
        return None
    if not path.is_dir():
        return f"{path} is a file; expected a Hugging Face model directory (with config.json)."
    if not (path / "config.json").exists():
        return f"{path} has no config.json; expected a Hugging Face model directory."
    if not list(path.glob("*.safetensors")):
        pickles = [p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
        if pickles:
            return (
                f"{path} holds only pickle weights ({', '.join(sorted(pickles))}); loading them "
                "would execute code from the artifact, so dormant refuses. Convert them once, in "
                'a sandbox you trust, with: python -c "from transformers import '
                f"{auto_class} as M; M.from_pretrained('DIR')"
                f".save_pretrained('DIR-safe', safe_serialization=True)\" and {verb} DIR-safe."
            )
        return f"{path} has no *.safetensors weights."
    return None


def model_dir_digest(path: Path) -> str:
    """``sha256:`` over the safetensors weights and ``config.json`` of a model directory."""
    h = hashlib.sha256()
    for f in [*sorted(path.glob("*.safetensors")), path / "config.json"]:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return "sha256:" + h.hexdigest()


class HFClassifier:
    """A local transformers ``*ForSequenceClassification`` model.

    Parameters
    ----------
    path:
        Directory with ``config.json``, ``*.safetensors`` and tokenizer files.
    device:
        Torch device.
    max_length:
        Tokens per text (longer texts are truncated).
    batch_size:
        Texts per forward pass.
    """

    capabilities = frozenset({"proba", "gradients", "embeddings"})

    def __init__(
        self, path: str | Path, *, device: str = "cpu", max_length: int = 128, batch_size: int = 64
    ) -> None:
        self.path = Path(path)
        self.device = device
        self.max_length = max_length
        self.batch_size = batch_size
        if not self.path.exists():
            raise InputNotFoundError(f"Model not found: {self.path} (no such directory).")
        reason = refuse_reason(self.path)
        if reason:
            raise InputError(reason)
        try:
            cfg = json.loads((self.path / "config.json").read_text("utf-8"))
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            raise InputError(
                f"{self.path}/config.json is not valid JSON ({type(exc).__name__}: "
                f"{str(exc)[:120]}); expected the config.json written by save_pretrained."
            ) from None
        if not isinstance(cfg, dict):
            raise InputError(
                f"{self.path}/config.json holds a JSON {type(cfg).__name__}; expected an object "
                "(the config.json written by save_pretrained)."
            )
        archs = cfg.get("architectures") or []
        if not isinstance(archs, list):
            archs = [archs]
        if not any(str(a).endswith("ForSequenceClassification") for a in archs):
            raise InputError(
                f"{self.path} is not a sequence classifier (architectures={archs!r}); "
                "'dormant scan model' needs a *ForSequenceClassification model with a trained "
                "classification head."
            )
        self.tokenizer, self.model = load_local(
            self.path,
            cfg,
            "AutoModelForSequenceClassification",
            device=device,
            use="scan",
            what="a classifier",
        )
        self.model.eval()
        self.model.requires_grad_(False)  # gradients flow to input embeddings only
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if isinstance(limit, int) and limit > 8:
            self.max_length = min(self.max_length, limit)
        id2label = self.model.config.id2label
        self.labels = [str(id2label[i]) for i in range(self.model.config.num_labels)]

    # -- black-box surface ----------------------------------------------------------------

    def encode(self, texts: Sequence[str]) -> Any:
        return self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(texts), self.batch_size):
                logits = self.model(**self.encode(texts[i : i + self.batch_size])).logits
                out.append(torch.softmax(logits.float(), -1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)))

    def digest(self) -> str:
        return model_dir_digest(self.path)

    def features(self, texts: Sequence[str]) -> np.ndarray:
        """The penultimate representation: what the classification layer reads, per text.

        The input of the model's last linear layer with one output per label (for BERT, the
        pooled ``[CLS]`` vector), read by a forward hook in eval mode — the features of the
        Mahalanobis detector of Lee et al. (NeurIPS 2018). Shape ``(len(texts), d)``.
        """
        import torch

        head = None
        for module in self.model.modules():
            if isinstance(module, torch.nn.Linear) and module.out_features == len(self.labels):
                head = module
        if head is None:
            raise InputError(f"{self.path}: no linear classification layer found to read.")
        got: list[np.ndarray] = []

        def hook(_m: Any, inputs: Any, _out: Any) -> None:
            got.append(inputs[0].detach().float().cpu().numpy())

        handle = head.register_forward_hook(hook)
        try:
            with torch.no_grad():
                for i in range(0, len(texts), self.batch_size):
                    self.model(**self.encode(texts[i : i + self.batch_size]))
        finally:
            handle.remove()
        return np.concatenate(got) if got else np.zeros((0, head.in_features))

    # -- white-box surface -----------------------------------------------------------------

    def embedding_matrix(self) -> Any:
        """The input word-embedding weight (``vocab x dim`` tensor)."""
        return self.model.get_input_embeddings().weight

    def logits_from_embeds(self, embeds: Any, attention_mask: Any) -> Any:
        """Logits for given input embeddings (gradients flow to ``embeds``)."""
        return self.model(inputs_embeds=embeds, attention_mask=attention_mask).logits

    def embed_ids(self, input_ids: Any) -> Any:
        """Input embeddings of token ids (the model's word-embedding layer)."""
        return self.model.get_input_embeddings()(input_ids)

    def logits_from_ids(self, input_ids: Any, attention_mask: Any) -> Any:
        """Logits for token ids."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def n_parameters(self) -> int:
        """Number of weights of the model."""
        return sum(int(p.numel()) for p in self.model.parameters())

    def special_ids(self) -> set[int]:
        return {int(i) for i in self.tokenizer.all_special_ids}

    def input_gradients(self, embeds: Any, attention_mask: Any, target: int) -> Any:
        """Gradient of the cross-entropy loss towards label ``target`` w.r.t. ``embeds``.

        The first-order signal of HotFlip (Ebrahimi et al. 2018) and universal triggers
        (Wallace et al. 2019): one backward pass; the model's own weights get no gradient.
        """
        import torch

        leaf = embeds.detach().requires_grad_(True)
        logits = self.logits_from_embeds(leaf, attention_mask)
        targets = torch.full((logits.shape[0],), int(target), device=logits.device)
        loss = torch.nn.functional.cross_entropy(logits.float(), targets)
        (grad,) = torch.autograd.grad(loss, leaf)
        return grad
