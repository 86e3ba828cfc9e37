"""Model formats beyond pickles: which reader handles a file, decided from its bytes and name.

The readers (each in its own module, none executes or deserializes anything) are Keras
``.keras`` archives and ``.h5`` files (:mod:`._fmt_keras`), TensorFlow SavedModel graphs and
``keras_metadata.pb`` (:mod:`._fmt_savedmodel`), GGUF metadata and chat templates
(:mod:`._fmt_gguf`), Hugging Face chat templates (``tokenizer_config.json``, ``*.jinja``;
:mod:`._fmt_chat_template`) and ONNX models (:mod:`._fmt_onnx`). :mod:`.serialization` asks
:func:`sniff_model_format` before its own sniffing and hands the file to
:data:`MODEL_READERS`; a ``.keras`` zip's ``config.json`` is checked by :func:`scan_keras_zip`.
"""

from __future__ import annotations

import lzma
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..findings import Severity
from ._fmt_chat_template import scan_jinja_file, scan_tokenizer_config
from ._fmt_gguf import GGUF_MAGIC, scan_gguf
from ._fmt_keras import HDF5_MAGIC, MAX_CONFIG_BYTES, scan_h5, scan_keras_config
from ._fmt_onnx import scan_onnx
from ._fmt_savedmodel import scan_keras_metadata, scan_saved_model

if TYPE_CHECKING:
    from ._scan_ctx import _Ctx

MODEL_READERS: dict[str, Callable[[_Ctx, Any, int, str], None]] = {
    "hdf5": scan_h5,
    "gguf": scan_gguf,
    "onnx": scan_onnx,
    "savedmodel": scan_saved_model,
    "keras-metadata": scan_keras_metadata,
    "tokenizer-config": scan_tokenizer_config,
    "jinja": scan_jinja_file,
    "keras-not-zip": lambda ctx, fh, size, member: ctx.add(
        "malformed", Severity.HIGH, "a .keras file must be a zip archive; this one is not", member
    ),
}
#: Suffixes whose archive members are worth reading for these formats.
MODEL_SUFFIXES = frozenset({".h5", ".hdf5", ".keras", ".gguf", ".onnx", ".pb"})


def sniff_model_format(head: bytes, name: str, other: str) -> str:
    """The format of a file from its first bytes and name.

    ``other`` is what the pickle/zip/npy/safetensors sniffer made of it. A magic number
    (GGUF, HDF5) wins; a name (``.onnx``, ``saved_model.pb`` ...) only picks a reader when
    the bytes are nothing else, so a pickle named ``model.h5`` is still read as a pickle.
    """
    base = Path(name).name.lower()
    suffix = Path(base).suffix
    if head.startswith(GGUF_MAGIC):
        return "gguf"
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if other not in ("unknown", "pickle?"):
        return other
    if suffix == ".gguf":
        return "gguf"
    if suffix == ".keras":
        return "keras-not-zip"
    if suffix in (".h5", ".hdf5"):
        return "hdf5"
    if suffix == ".onnx":
        return "onnx"
    if base == "keras_metadata.pb":
        return "keras-metadata"
    if base == "saved_model.pb":
        return "savedmodel"
    if base == "tokenizer_config.json":
        return "tokenizer-config"
    if suffix in (".jinja", ".j2"):
        return "jinja"
    return other


def is_keras_zip(names: list[str]) -> bool:
    """Whether a zip's member names are those of a Keras 3 ``.keras`` archive."""
    return "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names)


def scan_keras_zip(ctx: _Ctx, zf: zipfile.ZipFile, member: str) -> None:
    """Check the ``config.json`` of a ``.keras`` archive (read as bytes, never loaded)."""
    where = f"{member}!config.json" if member else "config.json"
    try:
        info = zf.getinfo("config.json")
        if info.file_size > MAX_CONFIG_BYTES:
            ctx.add("unreadable", Severity.HIGH, "Keras config.json larger than 64 MiB", where)
            return
        with zf.open(info) as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except (
        KeyError,
        zipfile.BadZipFile,
        OSError,
        ValueError,
        EOFError,
        NotImplementedError,
        zlib.error,
        lzma.LZMAError,
    ) as exc:
        ctx.add("unreadable", Severity.HIGH, f"Keras config.json cannot be read: {exc}", where)
        return
    scan_keras_config(ctx, raw, where, source="config.json")
