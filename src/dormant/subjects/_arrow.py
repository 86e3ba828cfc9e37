"""Hugging Face ``save_to_disk`` datasets: the Arrow files of a split, and how to open one.

Read with pyarrow's IPC readers (stream or file format); ``state.json`` and
``dataset_dict.json`` are parsed as JSON, never executed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataFormatError
from ._parsing import read_json_file


def _hf_arrow_files(p: Path, split: str | None) -> list[Path]:
    if (p / "dataset_dict.json").exists():
        meta = read_json_file(p / "dataset_dict.json")
        splits = meta.get("splits", []) if isinstance(meta, dict) else None
        if not isinstance(splits, list) or not all(isinstance(x, str) for x in splits):
            raise DataFormatError(
                f"{p / 'dataset_dict.json'} is not a datasets DatasetDict file: expected an "
                "object with a 'splits' list of names."
            )
        if split is None:
            if len(splits) == 1:
                split = splits[0]
            else:
                raise ConfigError(
                    f"{p} holds several splits ({', '.join(splits)}); choose one with "
                    "split= (--split)."
                )
        if split not in splits:
            raise ConfigError(f"Split {split!r} not found in {p}; available: {', '.join(splits)}.")
        p = p / split
    state = p / "state.json"
    if not state.exists():
        raise DataFormatError(f"{p} has no state.json; save the dataset with save_to_disk.")
    try:
        files = [p / d["filename"] for d in read_json_file(state)["_data_files"]]
    except (KeyError, TypeError) as exc:
        raise DataFormatError(
            f"{state} is not a datasets state file (expected '_data_files' with file names; "
            f"{type(exc).__name__}: {exc})."
        ) from None
    for f in files:
        if Path(os.path.normpath(f)).parent != Path(os.path.normpath(p)):
            raise DataFormatError(
                f"{state} names a data file outside its directory ({f.name!r}); refused."
            )
        if not f.exists():
            raise DataFormatError(f"{p}: data file {f.name} listed in state.json is missing.")
    return files


def _open_arrow(f: Path) -> Any:
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(pa.memory_map(str(f), "r"))
    except pa.ArrowInvalid:
        return pa.ipc.open_file(pa.memory_map(str(f), "r"))
