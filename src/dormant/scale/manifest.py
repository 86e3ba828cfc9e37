"""The fleet manifest: which models to scan, each with its clean labelled data.

A manifest is YAML (``.yaml``/``.yml``: a list, or a mapping with a ``models`` list), JSON (the
same shapes) or JSONL (one entry per line). Each entry is a mapping::

    - model: models/sentiment-v3        # a Hugging Face directory or a .skops file
      data: data/sentiment-clean.jsonl  # clean labelled examples for the model scan
      name: sentiment-v3                # optional; default: the model's folder or file name
      text_field: text                  # optional (default text)
      label_field: label                # optional (default label)

Relative paths are resolved against the manifest's folder, so a manifest travels with its
models. Names must be unique (they name the per-model result folders).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataFormatError, InputNotFoundError

_KEYS = {"model", "data", "name", "text_field", "label_field"}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ModelEntry:
    """One model of a fleet manifest.

    Attributes
    ----------
    name:
        Unique name of the model in this fleet (also its result folder, made filesystem-safe).
    model:
        Path of the model directory or ``.skops`` file.
    data:
        Path of its clean labelled examples.
    text_field, label_field:
        Fields of the clean data.
    """

    name: str
    model: str
    data: str
    text_field: str = "text"
    label_field: str = "label"

    @property
    def slug(self) -> str:
        """The name as a folder name (letters, digits, ``._-``)."""
        return _SAFE_NAME.sub("_", self.name).strip("._") or "model"


def read_manifest(path: str | os.PathLike[str]) -> list[ModelEntry]:
    """Read and check a fleet manifest (YAML, JSON or JSONL; see the module docstring).

    Raises
    ------
    InputNotFoundError
        The manifest does not exist.
    DataFormatError
        It cannot be parsed, an entry lacks ``model`` or ``data``, has an unknown key, or two
        entries share a name.
    """
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"Manifest not found: {p} (expected a YAML, JSON or JSONL file).")
    try:
        text = p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"Cannot read the manifest {p}: {exc}.") from None
    raw = _parse(p, text)
    if isinstance(raw, dict) and "models" in raw:
        raw = raw["models"]
    if not isinstance(raw, list) or not raw:
        raise DataFormatError(
            f"{p}: expected a non-empty list of models (or a mapping with a 'models' list); "
            f"got {type(raw).__name__}{' (empty)' if raw == [] else ''}."
        )
    base = p.parent
    entries: list[ModelEntry] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw, start=1):
        entry = _entry(p, i, item, base)
        if entry.slug in seen:
            raise DataFormatError(
                f"{p}: entries {seen[entry.slug]} and {i} have the same name {entry.name!r}; "
                "give each model a unique 'name'."
            )
        seen[entry.slug] = i
        entries.append(entry)
    return entries


def _parse(p: Path, text: str) -> Any:
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml"):
        from ..errors import require

        yaml: Any = require("yaml", "fleet")
        try:
            return yaml.safe_load(text)  # safe_load: no Python objects from a manifest
        except yaml.YAMLError as exc:
            raise DataFormatError(f"{p}: not valid YAML: {exc}") from None
    if suffix in (".jsonl", ".ndjson"):
        out = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataFormatError(f"{p}: line {n} is not valid JSON: {exc.msg}.") from None
        return out
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{p}: not valid JSON at line {exc.lineno}: {exc.msg}.") from None
    raise DataFormatError(
        f"Cannot tell the manifest format of {p.name!r}; expected .yaml, .yml, .json or .jsonl."
    )


def _entry(p: Path, i: int, item: Any, base: Path) -> ModelEntry:
    where = f"{p}: entry {i}"
    if not isinstance(item, dict):
        raise DataFormatError(
            f"{where} is a {type(item).__name__}; expected a mapping with 'model' and 'data'."
        )
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise DataFormatError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(_KEYS))}."
        )
    for key in ("model", "data"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise DataFormatError(f"{where}: '{key}' must be a path (a non-empty string).")
    for key in ("name", "text_field", "label_field"):
        if key in item and (not isinstance(item[key], str) or not item[key].strip()):
            raise DataFormatError(f"{where}: '{key}' must be a non-empty string.")
    model = _resolve(base, item["model"])
    name = item.get("name") or Path(model).name
    return ModelEntry(
        name=name,
        model=model,
        data=_resolve(base, item["data"]),
        text_field=item.get("text_field", "text"),
        label_field=item.get("label_field", "label"),
    )


def _resolve(base: Path, value: str) -> str:
    q = Path(os.path.expanduser(value))
    return str(q if q.is_absolute() else base / q)
