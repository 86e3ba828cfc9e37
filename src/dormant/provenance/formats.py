"""Header checks for ``.npy`` (NumPy NEP 1, versions 1-3) and safetensors files.

Both are read as text headers (:func:`ast.literal_eval`, :mod:`json`) and compared with the
file's size; nothing is loaded. The safetensors rules are those of its own parser: a header
of at most 100 MB, known dtypes, ``data_offsets`` that tile the data buffer exactly (no
overlap, no gap) and a buffer whose size equals the last offset.
"""

from __future__ import annotations

import ast
import json
import math
import struct
from typing import TYPE_CHECKING, Any

from ..findings import Severity

if TYPE_CHECKING:
    from ._scan_ctx import _Ctx

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


def scan_npy(ctx: _Ctx, fh: Any, size: int, member: str) -> None:
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
        if len(raw) < 12:  # found by the fuzz harness: struct.error on a cut v2 header
            ctx.add("malformed", Severity.HIGH, ".npy file is truncated inside its header", member)
            return
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
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError) as exc:
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
        from ._scan_ctx import _scan_pickle_stream

        _scan_pickle_stream(ctx, fh, size, member, torch_zip=False)
        return
    import numpy as np

    try:
        itemsize = np.dtype(descr).itemsize
    except Exception as exc:
        # descr comes from the untrusted file, and numpy's dtype parser raises SyntaxError,
        # TypeError, ValueError, KeyError ... on malformed ones (found by the fuzz harness);
        # it evaluates nothing, so any failure here just means "not a valid dtype".
        shown = repr(descr)[:80]
        ctx.add("malformed", Severity.HIGH, f".npy dtype {shown} is invalid: {exc}", member)
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


def scan_safetensors(ctx: _Ctx, fh: Any, size: int, member: str) -> None:
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
    except RecursionError:
        return bad("header is JSON nested too deeply to read")
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
        if not isinstance(dtype, str) or dtype not in SAFETENSORS_BITS:
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
            size_text = f"{bits / 8:g}" if bits < 1 << 80 else "an absurd number of"
            return bad(
                f"tensor {key!r} declares {dtype} of {len(shape)} dimensions ({size_text} "
                f"bytes) but its offsets span {offs[1] - offs[0]} bytes"
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
