"""Where a dataset's records come from: a file, a folder of shards, a glob, an fsspec URL, a Hub id.

:func:`resolve_sources` turns what a user passes as the dataset path into the list of data
files to read, in order:

- a local file, or a Hugging Face ``save_to_disk`` directory: ``None`` (read as before);
- a local folder of shards: every data file under it (``*.jsonl``, ``*.parquet``, ``*.csv`` …,
  compressed JSONL/CSV too), sorted by path; hidden files and folders are skipped;
- a glob pattern (``data/part-*.parquet``, ``**`` recursive): the matching files, sorted;
- an fsspec URL (``file://``, ``memory://``, or any protocol whose fsspec package is
  installed): a file, a folder or a glob on that filesystem, read through ``fsspec.open``;
- a Hugging Face Hub dataset id (``owner/name`` or ``hf://datasets/owner/name``): the snapshot
  in the **local** Hugging Face cache (``huggingface_hub.snapshot_download`` with
  ``local_files_only=True``); nothing is downloaded — when the id is not cached the error says
  so and names the id and the cache directory.

fsspec (https://filesystem-spec.readthedocs.io) and huggingface_hub are imported only when such
a path is given.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import io
import lzma
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from ..adapters._hub import _HUB_ID, hub_snapshot
from ..errors import DataFormatError, InputNotFoundError, MissingDependencyError

#: suffixes of data files picked up in a folder of shards (before any compression suffix);
#: ``.json`` is left out: in a folder (a Hub snapshot) it is metadata, not JSON lines
DATA_SUFFIXES = (".jsonl", ".ndjson", ".csv", ".tsv", ".parquet", ".pq")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class RemoteFile:
    """One file on an fsspec filesystem."""

    fs: Any
    path: str
    url: str

    def open(self) -> IO[bytes]:
        return cast(IO[bytes], self.fs.open(self.path, "rb"))


def is_data_file(name: str) -> bool:
    low = name.lower()
    for c in COMPRESSION_SUFFIXES:
        low = low.removesuffix(c)
    return low.endswith(DATA_SUFFIXES)


def resolve_sources(spec: str | os.PathLike[str]) -> list[str] | RemoteFile | None:
    """The data files behind ``spec`` (see the module docstring); ``None``: read ``spec`` as is."""
    text = os.fspath(spec)
    if text.startswith("file://"):
        return _local(text.removeprefix("file://"), text)
    if text.startswith("hf://datasets/"):
        return _local_dir(hub_snapshot(text.removeprefix("hf://datasets/"), "dataset"), text)
    if _URL.match(text):
        return _remote(text)
    p = Path(text)
    if p.exists():
        return _local(text, text)
    if _GLOB.search(text):
        return _local(text, text)
    if _HUB_ID.match(text) and not text.startswith((".", "/")) and not is_data_file(text):
        return _local_dir(hub_snapshot(text, "dataset", bare=True), text)
    return None  # not found: the caller says so


def _local(path: str, shown: str) -> list[str] | None:
    p = Path(path)
    if p.exists() and not p.is_dir():  # a file, or something that is neither (said later)
        return None if path == shown else [str(p)]
    if p.is_dir():
        if (p / "state.json").exists() or (p / "dataset_dict.json").exists():
            return None if path == shown else [str(p)]
        return _local_dir(p, shown)
    if _GLOB.search(path):
        found = sorted(f for f in glob.glob(path, recursive=True) if Path(f).is_file())
        if not found:
            raise InputNotFoundError(f"No file matches the pattern {shown!r}.")
        return found
    raise InputNotFoundError(f"Dataset not found: {shown} (no such file or directory).")


def _local_dir(p: Path, shown: str) -> list[str]:
    if (p / "state.json").exists() or (p / "dataset_dict.json").exists():
        return [str(p)]
    files = sorted(
        str(f)
        for f in p.rglob("*")
        if f.is_file()
        and is_data_file(f.name)
        and not any(part.startswith(".") for part in f.relative_to(p).parts)
    )
    if not files:
        raise DataFormatError(
            f"{shown} is a directory but not a Hugging Face dataset saved with save_to_disk "
            "(no state.json or dataset_dict.json), and the folder holds no data files to read "
            f"as shards (files ending in {', '.join(DATA_SUFFIXES)}, optionally compressed)."
        )
    return files


def _remote(url: str) -> list[str] | RemoteFile:
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with the base install
        raise MissingDependencyError(
            f"Reading {url!r} needs fsspec: pip install 'dormant[scale]' (and the fsspec "
            "package of its protocol)."
        ) from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise MissingDependencyError(
            f"Cannot open {url!r}: {exc} (install the fsspec package for this protocol)."
        ) from None
    if _GLOB.search(path):
        found = sorted(str(f) for f in fs.glob(path) if fs.isfile(f))
        if not found:
            raise InputNotFoundError(f"No file matches the pattern {url!r}.")
        return [fs.unstrip_protocol(f) for f in found]
    if fs.isdir(path):
        found = sorted(str(f) for f in fs.find(path) if is_data_file(str(f).rsplit("/", 1)[-1]))
        if not found:
            raise DataFormatError(f"{url}: the folder holds no data files.")
        return [fs.unstrip_protocol(f) for f in found]
    if not fs.isfile(path):
        raise InputNotFoundError(f"Dataset not found: {url} (no such file on {fs.protocol}).")
    return RemoteFile(fs=fs, path=path, url=url)


def compression_of_stream(head: bytes) -> str | None:
    """The compression named by a file's first bytes (gzip, bzip2, xz, zstd) or ``None``."""
    for magic, kind in (
        (b"\x1f\x8b", "gzip"),
        (b"BZh", "bzip2"),
        (b"\xfd7zXZ\x00", "xz"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
    ):
        if head.startswith(magic):
            return kind
    if head.startswith(b"PK\x03\x04"):
        raise DataFormatError("a zip archive cannot be read as one data file; extract it first.")
    return None


def decompress(raw: IO[bytes], compression: str | None) -> IO[bytes]:
    """Wrap an open binary stream in the decompressor of ``compression``."""
    if compression == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    if compression == "bzip2":
        return cast(IO[bytes], bz2.BZ2File(raw, "rb"))
    if compression == "xz":
        return cast(IO[bytes], lzma.LZMAFile(raw, "rb"))
    if compression == "zstd":
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    return raw
