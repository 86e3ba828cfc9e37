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

import ast
import bz2
import gzip
import io
import json
import lzma
import math
import pickle
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..findings import Severity
from .pickles import PickleIssue, scan_pickle

#: Extensions that are pickles, or pickle-based containers, by convention.
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib", ".jbl"})
#: Extensions used both for pickles and for raw binary data: read as a pickle only when the
#: bytes look like one (a clean parse, or a named import before the parse breaks).
MAYBE_PICKLE_SUFFIXES = frozenset({".bin", ".dat", ".data", ".model", ".sav", ""})
ZIP_MAGIC = b"PK\x03\x04"
NPY_MAGIC = b"\x93NUMPY"
#: ``pickle.dumps(LEGACY_MAGIC_NUMBER, protocol=2)``: the first of torch's legacy pickles.
TORCH_LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
SAFETENSORS_MAX_HEADER = 100_000_000
#: bits per element of the safetensors dtypes.
SAFETENSORS_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}
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


@dataclass(frozen=True)
class Issue:
    """One problem found in a file (or in a member of an archive inside it)."""

    kind: str
    severity: Severity
    title: str
    member: str = ""
    offset: int | None = None
    opcode: str = ""
    name: str = ""


@dataclass
class FileScan:
    """What :func:`scan_file` found in one file."""

    path: Path
    format: str = "unknown"
    issues: list[Issue] = field(default_factory=list)
    pickles: int = 0
    members: int = 0

    @property
    def complete(self) -> bool:
        """Whether every part of the file could be read."""
        return not any(i.kind in ("unreadable", "malformed", "too-deep") for i in self.issues)


class _Ctx:
    def __init__(self, scan: FileScan, max_depth: int, max_member_bytes: int) -> None:
        self.scan = scan
        self.max_depth = max_depth
        self.max_member_bytes = max_member_bytes

    def add(self, kind: str, severity: Severity, title: str, member: str, **kw: Any) -> None:
        self.scan.issues.append(Issue(kind, severity, title, member, **kw))


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
    fmt = _sniff(head, suffix, size)
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
        _scan_npy(ctx, fh, size, member)
    elif fmt == "safetensors":
        fh.seek(0)
        _scan_safetensors(ctx, fh, size, member)
    elif fmt.startswith("compressed:"):
        fh.seek(0)
        _scan_compressed(ctx, fh, fmt.split(":", 1)[1], name, member, depth)


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


def _scan_pickle_stream(ctx: _Ctx, fh: Any, size: int, member: str, *, torch_zip: bool) -> None:
    """Scan consecutive pickles: torch's legacy format holds five, then raw storage bytes."""
    start = fh.tell()
    head = fh.read(len(TORCH_LEGACY_MAGIC))
    fh.seek(start)
    legacy = head == TORCH_LEGACY_MAGIC
    count = 0
    while True:
        pos = fh.tell()
        result = scan_pickle(fh, limit=size - pos, allow_persistent=torch_zip or legacy)
        ctx.scan.pickles += 1
        count += 1
        _add_pickle_issues(ctx, result.issues, member, base=pos)
        if result.end is None:
            return
        fh.seek(pos + result.end)
        rest = size - fh.tell()
        if rest <= 0 or (legacy and count >= 5):
            return
        nxt = fh.read(2)
        fh.seek(pos + result.end)
        if nxt[:1] == b"\x80" and len(nxt) == 2 and nxt[1] <= 5:
            continue  # another pickle follows: a loader may read it too
        ctx.add(
            "trailing-data",
            Severity.LOW,
            f"{rest} bytes follow the pickle's STOP opcode (not read by pickle.load)",
            member,
            offset=pos + result.end,
        )
        return


def _add_pickle_issues(ctx: _Ctx, issues: list[PickleIssue], member: str, *, base: int) -> None:
    for i in issues:
        ctx.add(
            i.kind,
            i.severity,
            i.title,
            member,
            offset=base + i.offset,
            opcode=i.opcode,
            name=i.name,
        )


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
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
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
    roots = {n.split("/", 1)[0] for n in names if "/" in n}
    torch_like = any(n.endswith("/data.pkl") or n == "data.pkl" for n in names)
    for info in infos:
        ctx.scan.members += 1
        sub = f"{member}!{info.filename}" if member else info.filename
        if info.is_dir():
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
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
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
        or suffix in PICKLE_SUFFIXES
        or suffix in (".npy", ".npz", ".zip", ".safetensors")
    )


def _scan_npy(ctx: _Ctx, fh: Any, size: int, member: str) -> None:
    raw = fh.read(10)
    if len(raw) < 10:
        ctx.add("malformed", Severity.HIGH, ".npy file is truncated inside its header", member)
        return
    major = raw[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", raw[8:10])
        start = 10
    elif major in (2, 3):
        raw += fh.read(2)
        (hlen,) = struct.unpack("<I", raw[8:12])
        start = 12
    else:
        ctx.add("malformed", Severity.HIGH, f".npy format version {major} is unknown", member)
        return
    if start + hlen > size:
        ctx.add("malformed", Severity.HIGH, ".npy header runs past the end of the file", member)
        return
    try:
        text = fh.read(hlen).decode("utf-8" if major == 3 else "latin1")
        header = ast.literal_eval(text)
        descr, shape = header["descr"], tuple(header["shape"])
        if not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError(f"bad shape {shape!r}")
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError) as exc:
        ctx.add("malformed", Severity.HIGH, f".npy header cannot be parsed: {exc}", member)
        return
    data_start = start + hlen
    if _descr_has_object(descr):
        ctx.add(
            "object-array",
            Severity.MEDIUM,
            ".npy holds an object array: numpy.load needs allow_pickle=True, which unpickles "
            "the data",
            member,
        )
        fh.seek(data_start)
        _scan_pickle_stream(ctx, fh, size, member, torch_zip=False)
        return
    import numpy as np

    try:
        itemsize = np.dtype(descr).itemsize
    except (TypeError, ValueError) as exc:
        ctx.add("malformed", Severity.HIGH, f".npy dtype {descr!r} is invalid: {exc}", member)
        return
    expected = math.prod(shape) * itemsize
    if size - data_start < expected:
        ctx.add(
            "malformed",
            Severity.HIGH,
            f".npy declares {expected} data bytes but holds {size - data_start} (truncated)",
            member,
        )


def _descr_has_object(descr: Any) -> bool:
    if isinstance(descr, str):
        return "O" in descr
    if isinstance(descr, list | tuple):
        return any(_descr_has_object(d) for d in descr)
    return True  # anything else is not a dtype numpy would write: assume the worst


def _scan_safetensors(ctx: _Ctx, fh: Any, size: int, member: str) -> None:
    def bad(msg: str) -> None:
        ctx.add("malformed", Severity.HIGH, f"safetensors header inconsistent: {msg}", member)

    raw = fh.read(8)
    if len(raw) < 8:
        return bad("file shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw)
    if n > SAFETENSORS_MAX_HEADER:
        return bad(f"header length {n} exceeds the 100 MB limit")
    if 8 + n > size:
        return bad(f"header length {n} runs past the end of the {size}-byte file")
    try:
        header = json.loads(fh.read(n).decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        return bad(f"header is not valid JSON: {exc}")
    if not isinstance(header, dict):
        return bad("header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        return bad("__metadata__ must map strings to strings")
    spans = []
    for key, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            return bad(f"tensor {key!r} needs exactly dtype, shape and data_offsets")
        dtype, shape, offs = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in SAFETENSORS_BITS:
            return bad(f"tensor {key!r} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            return bad(f"tensor {key!r} has an invalid shape {shape!r}")
        if (
            not isinstance(offs, list)
            or len(offs) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offs)
            or offs[0] > offs[1]
        ):
            return bad(f"tensor {key!r} has invalid data_offsets {offs!r}")
        bits = math.prod(shape) * SAFETENSORS_BITS[dtype]
        if bits % 8 or bits // 8 != offs[1] - offs[0]:
            return bad(
                f"tensor {key!r} declares {dtype}{shape} ({bits / 8:g} bytes) but its offsets "
                f"span {offs[1] - offs[0]} bytes"
            )
        spans.append((offs[0], offs[1], key))
    spans.sort()
    pos = 0
    for begin, end, key in spans:
        if begin != pos:
            what = "overlaps the previous tensor" if begin < pos else "leaves a gap"
            return bad(f"tensor {key!r} at offset {begin} {what} (expected {pos})")
        pos = end
    if 8 + n + pos != size:
        return bad(f"tensors cover {pos} data bytes but the file holds {size - 8 - n}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


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
