"""Low-level readers shared by the dataset loaders: one JSON value, one JSON file, and the
check that a data file is not a compressed container."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import zlib
from pathlib import Path
from typing import IO, Any, cast

from ..errors import DataFormatError


def parse_json_line(text: str, where: str) -> Any:
    """``json.loads`` of one record; every way it can fail is a :class:`DataFormatError`.

    Besides syntax errors, the standard library raises ``RecursionError`` on deeply nested
    arrays / objects and ``ValueError`` on an integer of more than 4,300 digits
    (``sys.get_int_max_str_digits``); both name the place here instead of escaping.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            f"{where} is not valid JSON ({exc.msg} at column {exc.colno}); each line must "
            "hold one JSON object."
        ) from None
    except RecursionError:
        raise DataFormatError(
            f"{where} is nested too deeply to read (arrays or objects inside each other "
            "beyond Python's recursion limit); expected one flat JSON object."
        ) from None
    except ValueError as exc:  # e.g. "Exceeds the limit (4300 digits) for integer string"
        raise DataFormatError(
            f"{where} holds a value JSON cannot read safely ({short(str(exc))}); a number "
            "with thousands of digits is not a valid id or label."
        ) from None


#: Leading bytes of the compressed containers a dataset file is often shipped in.
_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"PK\x03\x04": "zip",
}
#: Suffixes of compressed files, stripped to find the format (``d.jsonl.gz`` is JSONL).
COMPRESSED_SUFFIXES = frozenset({".gz", ".gzip", ".zst", ".zstd", ".bz2", ".xz"})
#: Errors a damaged compressed stream raises while it is read.
STREAM_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error, lzma.LZMAError)


def compression_of(path: Path) -> str | None:
    """The compression of a data file, from its first bytes (``None``: not compressed).

    gzip, bzip2 and xz are read transparently (standard library), zstd when the
    ``zstandard`` package is installed; a zip archive (several files) is refused.

    Raises
    ------
    DataFormatError
        A zip archive, or zstd without ``zstandard``.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    kind = next((k for m, k in _MAGIC.items() if head.startswith(m)), None)
    if kind == "zip":
        raise DataFormatError(
            f"{path} is a zip archive; dormant reads one data file (JSONL, CSV, TSV or "
            "Parquet, optionally gzip/bzip2/xz/zstd-compressed) or a Hugging Face directory. "
            f"Extract it first (e.g. 'unzip {path.name}') and scan the data file."
        )
    if kind == "zstd":
        try:
            import zstandard  # noqa: F401
        except ImportError:
            raise DataFormatError(
                f"{path} is zstd-compressed and the 'zstandard' package is not installed; "
                f"install it (pip install zstandard) or decompress first ('zstd -d {path.name}')."
            ) from None
    return kind


def open_data(path: Path, compression: str | None) -> IO[bytes]:
    """Open a data file for binary reading, decompressing it on the fly."""
    if compression == "gzip":
        return cast(IO[bytes], gzip.open(path, "rb"))
    if compression == "bzip2":
        return bz2.open(path, "rb")
    if compression == "xz":
        return lzma.open(path, "rb")
    if compression == "zstd":
        import zstandard

        raw = open(path, "rb")  # noqa: SIM115 - closed with the reader below
        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.BufferedReader(reader)
    return open(path, "rb")


def short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_json_file(path: Path) -> Any:
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise DataFormatError(f"{path} is not valid UTF-8; expected a JSON file.") from None
    except OSError as exc:
        raise DataFormatError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    return parse_json_line(text, str(path))


def _label_kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__ if not isinstance(value, str) else "string"


def normalise_label(value: object) -> str:
    """The text of a label: ``1``, ``1.0`` and ``"1"`` give ``"1"``; strings are kept as is."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _bad_field(path: object, place: str, name: str, value: object, expected: str) -> None:
    if value is _MISSING:
        raise DataFormatError(f"{path}: {place}: field {name!r} is missing; expected {expected}.")
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise DataFormatError(
        f"{path}: {place}: field {name!r} must be {expected}; got {type(value).__name__} {shown}."
    )
