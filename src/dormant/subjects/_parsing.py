"""Low-level readers shared by the dataset loaders: one JSON value, one JSON file, and the
check that a data file is not a compressed container."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
_COMPRESSED = {
    b"\x1f\x8b": ("gzip", "gunzip -k"),
    b"\x28\xb5\x2f\xfd": ("zstd", "zstd -d"),
    b"BZh": ("bzip2", "bunzip2 -k"),
    b"\xfd7zXZ\x00": ("xz", "unxz -k"),
    b"PK\x03\x04": ("zip", "unzip"),
}


def refuse_compressed(path: Path) -> None:
    """A compressed file is named as such, not reported as "not UTF-8" on its first line."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return
    for magic, (kind, tool) in _COMPRESSED.items():
        if head.startswith(magic):
            raise DataFormatError(
                f"{path} is {kind}-compressed; dormant reads uncompressed JSONL, CSV, TSV, "
                f"Parquet (compressed inside) or Hugging Face directories. Decompress it "
                f"first (e.g. '{tool} {path.name}') and scan the result."
            )


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
