"""Unsafe-serialization checks for one file: pickles, zip checkpoints, ``.npy`` and safetensors.

Nothing is loaded: pickles are parsed opcode by opcode (:mod:`dormant.provenance.pickles`),
archives are listed and their pickle members read as bytes, ``.npy`` headers are parsed with
:func:`ast.literal_eval`, safetensors headers with :mod:`json`. The format is decided by the
file's leading bytes, not its name, and a file is examined under *every* reading a loader
might use: a pickle with a zip archive appended (``torch.load`` reads the pickle, a scanner
that trusts :func:`zipfile.is_zipfile` reads the zip) is checked both ways.

Fail closed: an archive that cannot be opened, a member that cannot be read (bad CRC,
encrypted, a local name that differs from the central directory), nesting deeper than
``max_depth``, a pickle that cannot be parsed to its ``STOP`` and a safetensors header whose
sizes and offsets do not add up are all reported, ``high`` at least.

Format references: PyTorch ``torch.save`` zip layout (``<name>/data.pkl`` plus raw storages
under ``<name>/data/``) and its legacy five-pickle stream; NumPy NEP 1 (``.npy`` format,
versions 1-3); the safetensors format specification (Hugging Face), whose own parser rejects
headers over 100 MB, overlapping or gapped offsets and buffers whose size disagrees.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..findings import Severity
from ._scan_ctx import (
    FileScan,
    _Ctx,
    _scan_pickle_stream,
    unsafe_member_name,
)
from .formats import scan_npy, scan_safetensors
from .modelformats import (
    MODEL_READERS,
    MODEL_SUFFIXES,
    is_keras_zip,
    scan_keras_zip,
    sniff_model_format,
)

#: Extensions that are pickles, or pickle-based containers, by convention.
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib", ".jbl"})
#: Extensions used both for pickles and for raw binary data: read as a pickle only when the
#: bytes look like one (a clean parse, or a named import before the parse breaks).
MAYBE_PICKLE_SUFFIXES = frozenset({".bin", ".dat", ".data", ".model", ".sav", ""})
ZIP_MAGIC = b"PK\x03\x04"
NPY_MAGIC = b"\x93NUMPY"
_TORCH_STORAGE = re.compile(r"(^|/)(data|\.data)/[^/]+$")
_PROTO0_GLOBAL = re.compile(rb"^c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n")
_COMPRESSED: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x78\x01", "zlib"),
    (b"\x78\x5e", "zlib"),
    (b"\x78\x9c", "zlib"),
    (b"\x78\xda", "zlib"),
)


def scan_file(path: str | Path, *, max_depth: int = 4, max_member_bytes: int = 4 << 30) -> FileScan:
    """Check one file for code that would run when it is loaded.

    Parameters
    ----------
    path:
        The file.
    max_depth:
        Archives nested deeper than this are reported as unreadable (fail closed).
    max_member_bytes:
        Largest archive member or decompressed stream read into memory for a pickle scan.
    """
    p = Path(path)
    scan = FileScan(path=p)
    ctx = _Ctx(scan, max_depth, max_member_bytes)
    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(64)
        fh.seek(0)
        _dispatch(ctx, fh, size, head, p.name, "", depth=0, top=True)
    return scan


def _dispatch(
    ctx: _Ctx,
    fh: Any,
    size: int,
    head: bytes,
    name: str,
    member: str,
    *,
    depth: int,
    top: bool = False,
    persistent: bool = False,
) -> None:
    suffix = Path(name).suffix.lower()
    fmt = sniff_model_format(head, name, _sniff(head, suffix, size))
    if top:
        ctx.scan.format = fmt
    if fmt == "zip" or (fmt in ("pickle", "pickle?", "unknown") and _has_zip_directory(fh, size)):
        if fmt != "zip":
            ctx.add(
                "polyglot",
                Severity.HIGH,
                f"a zip archive is appended to a {fmt} file: loaders and scanners disagree on "
                "what this file is",
                member,
            )
            if top:
                ctx.scan.format = f"{fmt}+zip"
        _scan_zip(ctx, fh, member, depth)
    if fmt == "pickle":
        fh.seek(0)
        _scan_pickle_stream(ctx, fh, size, member, torch_zip=persistent)
    elif fmt == "pickle?":
        fh.seek(0)
        trial = _Ctx(FileScan(path=ctx.scan.path), ctx.max_depth, ctx.max_member_bytes)
        _scan_pickle_stream(trial, fh, size, member, torch_zip=persistent)
        if trial.scan.complete or any(i.kind == "global" for i in trial.scan.issues):
            ctx.scan.issues.extend(trial.scan.issues)
            ctx.scan.pickles += trial.scan.pickles
            if top:
                ctx.scan.format = "pickle"
        elif top:
            ctx.scan.format = "unknown"
    elif fmt == "npy":
        fh.seek(0)
        scan_npy(ctx, fh, size, member)
    elif fmt == "safetensors":
        fh.seek(0)
        scan_safetensors(ctx, fh, size, member)
    elif fmt.startswith("compressed:"):
        fh.seek(0)
        _scan_compressed(ctx, fh, fmt.split(":", 1)[1], name, member, depth)
    elif fmt in MODEL_READERS:
        fh.seek(0)
        MODEL_READERS[fmt](ctx, fh, size, member)


def _sniff(head: bytes, suffix: str, size: int) -> str:
    if head.startswith(ZIP_MAGIC) or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if len(head) >= 10 and head[8:9] == b"{" and suffix not in PICKLE_SUFFIXES:
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n <= size - 8:
            return "safetensors"
    if suffix == ".safetensors":
        return "safetensors"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return "pickle"
    for magic, kind in _COMPRESSED:
        if head.startswith(magic) and (suffix in PICKLE_SUFFIXES or suffix in (".gz", ".z")):
            return "compressed:" + kind
    if (suffix in PICKLE_SUFFIXES and size > 0) or _PROTO0_GLOBAL.match(head):
        return "pickle"
    if suffix in MAYBE_PICKLE_SUFFIXES and size > 0 and head[:1] in b"(]}cl":
        return "pickle?"
    return "unknown"


def _has_zip_directory(fh: Any, size: int) -> bool:
    if size < 22:
        return False
    try:
        fh.seek(0)
        return zipfile.is_zipfile(fh)
    finally:
        fh.seek(0)


def _scan_zip(ctx: _Ctx, fh: Any, member: str, depth: int) -> None:
    if depth >= ctx.max_depth:
        ctx.add(
            "too-deep",
            Severity.HIGH,
            f"archives nested more than {ctx.max_depth} deep; the innermost were not examined",
            member,
        )
        return
    fh.seek(0)
    try:
        zf = zipfile.ZipFile(fh)
        infos = zf.infolist()
    except (
        zipfile.BadZipFile,
        OSError,
        ValueError,
        EOFError,
        struct.error,
        NotImplementedError,  # "zip file version 23.7": an unknown format version
    ) as exc:
        ctx.add("unreadable", Severity.HIGH, f"zip archive cannot be opened: {exc}", member)
        return
    names = [i.filename for i in infos]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        ctx.add(
            "unreadable",
            Severity.HIGH,
            f"zip archive holds several members named {', '.join(dupes)}; loaders may pick "
            "different ones",
            member,
        )
    first = min((i.header_offset for i in infos), default=0)
    if first > 0:
        ctx.add(
            "polyglot",
            Severity.HIGH,
            f"{first} bytes precede the first zip member (data prepended to the archive)",
            member,
        )
    for name in names:
        why = unsafe_member_name(name)
        if why:
            ctx.add(
                "path-traversal",
                Severity.HIGH,
                f"archive member name {name[:120]!r} {why}; extracting the archive writes "
                "outside its folder (zip-slip)",
                f"{member}!{name}" if member else name,
            )
    if is_keras_zip(names):
        scan_keras_zip(ctx, zf, member)
    roots = {n.split("/", 1)[0] for n in names if "/" in n}
    torch_like = any(n.endswith("/data.pkl") or n == "data.pkl" for n in names)
    for info in infos:
        ctx.scan.members += 1
        sub = f"{member}!{info.filename}" if member else info.filename
        if not info.filename:  # zipfile cuts a name at its first NUL byte
            ctx.add(
                "unreadable",
                Severity.HIGH,
                "archive member with an empty name (cut at a NUL byte, or none); extractors "
                "and loaders disagree on what it is",
                f"{member}!" if member else "",
            )
            continue
        if info.filename.endswith("/"):  # ZipInfo.is_dir() fails on an empty name
            continue
        if torch_like and _TORCH_STORAGE.search(info.filename) and len(roots) <= 1:
            continue  # raw tensor bytes, read by torch's persistent_load, never unpickled
        if info.flag_bits & 0x1:
            ctx.add("unreadable", Severity.HIGH, "encrypted archive member", sub)
            continue
        if info.filename.endswith(".py") and "/code/" in f"/{info.filename}":
            ctx.add(
                "torchscript",
                Severity.MEDIUM,
                "TorchScript archive: loading it runs serialized TorchScript code",
                sub,
            )
            continue
        if info.file_size > ctx.max_member_bytes:
            ctx.add(
                "unreadable",
                Severity.HIGH,
                f"member of {info.file_size} bytes is larger than max_member_bytes",
                sub,
            )
            continue
        try:
            with zf.open(info) as mf:
                head = mf.read(64)
            if not _worth_reading(head, info.filename, torch_like):
                continue
            data = zf.read(info)  # reads to the end, so the CRC-32 is checked
        except (
            zipfile.BadZipFile,
            OSError,
            ValueError,
            EOFError,
            NotImplementedError,
            zlib.error,  # a damaged deflate stream (found by the fuzz harness)
            lzma.LZMAError,
        ) as exc:
            ctx.add("unreadable", Severity.HIGH, f"member cannot be read: {exc}", sub)
            continue
        _dispatch(
            ctx,
            io.BytesIO(data),
            len(data),
            data[:64],
            info.filename,
            sub,
            depth=depth + 1,
            persistent=torch_like and info.filename.endswith(".pkl"),
        )


def _worth_reading(head: bytes, name: str, torch_like: bool) -> bool:
    suffix = Path(name).suffix.lower()
    if torch_like and name.rsplit("/", 1)[-1] in (
        "version",
        "byteorder",
        ".format_version",
        ".storage_alignment",
        "serialization_id",
    ):
        return False
    return (
        _sniff(head, suffix, len(head) + 1) != "unknown"
        or sniff_model_format(head, name, "unknown") != "unknown"
        or suffix in MODEL_SUFFIXES
        or suffix in PICKLE_SUFFIXES
        or suffix in (".npy", ".npz", ".zip", ".safetensors")
    )


_OPENERS: dict[str, Callable[[Any], Any]] = {
    "gzip": lambda f: gzip.GzipFile(fileobj=f),
    "bz2": lambda f: bz2.BZ2File(f),
    "xz": lambda f: lzma.LZMAFile(f),  # noqa: SIM115 - closed by the caller's with
    "lzma": lambda f: lzma.LZMAFile(f),  # noqa: SIM115
}


def _scan_compressed(ctx: _Ctx, fh: Any, kind: str, name: str, member: str, depth: int) -> None:
    limit = ctx.max_member_bytes
    try:
        if kind == "zlib":
            d = zlib.decompressobj()
            data = d.decompress(fh.read(), limit + 1)
            if not d.eof and len(data) <= limit:
                raise EOFError("compressed stream ends early")
        else:
            with _OPENERS[kind](fh) as zf:
                data = zf.read(limit + 1)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        ctx.add("unreadable", Severity.HIGH, f"{kind} stream cannot be decompressed: {exc}", member)
        return
    if len(data) > limit:
        ctx.add(
            "unreadable",
            Severity.HIGH,
            f"{kind} stream decompresses to more than max_member_bytes",
            member,
        )
        return
    inner = Path(name).stem if Path(name).suffix.lower() in (".gz", ".z") else name
    head = data[:64]
    fmt = _sniff(head, Path(inner).suffix.lower() or ".pkl", len(data))
    if fmt == "unknown":
        fmt = "pickle"  # a compressed stream named like a pickle is read as one by joblib
    if fmt == "pickle":
        _scan_pickle_stream(ctx, io.BytesIO(data), len(data), member, torch_zip=False)
    else:
        _dispatch(ctx, io.BytesIO(data), len(data), head, inner, member, depth=depth + 1)
