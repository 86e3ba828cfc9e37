"""TensorFlow SavedModel graphs (``saved_model.pb``) and Keras ``keras_metadata.pb``.

Loading a SavedModel runs its graph: an op that reads or writes files, lists directories,
calls back into Python or talks to a debugger server runs with the loader's rights. The
protobuf is read with a minimal wire-format reader of the few fields on the path to every
op name (``SavedModel.meta_graphs[2] -> MetaGraphDef.graph_def[2] -> GraphDef.node[1] ->
NodeDef.op[2]`` and ``GraphDef.library[2] -> FunctionDefLibrary.function[1] ->
FunctionDef.node_def[3]``; TensorFlow's ``saved_model.proto``, ``meta_graph.proto``,
``graph.proto``, ``function.proto``, ``node_def.proto``). Why not the ``protobuf`` package:
parsing with it needs the generated classes of about twenty TensorFlow ``.proto`` files (a
vendored copy tied to one protobuf runtime), to read one string field; the reader here reads
only tags and lengths, checks every length against the bytes left, descends a fixed depth,
and skips every other field unread.

The ops flagged are ModelScan's (``ReadFile``, ``WriteFile``; Protect AI
``SavedModelTensorflowOpScan``) and the other ops of the same classes in TensorFlow's op
registry: file reading and listing, Python callbacks (``PyFunc``, ``EagerPyFunc``), file
readers and file-backed datasets, summary writers and debugger ops that open gRPC or file
URLs. Checkpoint save/restore ops (``SaveV2``, ``RestoreV2``, ``MergeV2Checkpoints``) are in
every SavedModel's saver graph and are not flagged. For ``keras_metadata.pb`` every string
field of every node that parses as a Keras layer configuration is checked like a ``.keras``
config (Lambda bytecode, non-Keras imports).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..findings import Severity
from ._fmt_keras import looks_like_keras_config, scan_keras_config

if TYPE_CHECKING:
    from ._scan_ctx import _Ctx

#: op -> (severity, what it does). ``critical``: runs Python or writes files.
UNSAFE_OPS: dict[str, tuple[Severity, str]] = {
    "PyFunc": (Severity.CRITICAL, "calls a Python function"),
    "PyFuncStateless": (Severity.CRITICAL, "calls a Python function"),
    "EagerPyFunc": (Severity.CRITICAL, "calls a Python function"),
    "WriteFile": (Severity.CRITICAL, "writes a file"),
    "ReadFile": (Severity.HIGH, "reads a file"),
    "MatchingFiles": (Severity.HIGH, "lists files matching a pattern"),
    "WholeFileReader": (Severity.HIGH, "reads whole files"),
    "WholeFileReaderV2": (Severity.HIGH, "reads whole files"),
    "TextLineReader": (Severity.HIGH, "reads files"),
    "TextLineReaderV2": (Severity.HIGH, "reads files"),
    "FixedLengthRecordReader": (Severity.HIGH, "reads files"),
    "FixedLengthRecordReaderV2": (Severity.HIGH, "reads files"),
    "TFRecordReader": (Severity.HIGH, "reads files"),
    "TFRecordReaderV2": (Severity.HIGH, "reads files"),
    "LMDBReader": (Severity.HIGH, "reads files"),
    "TextLineDataset": (Severity.HIGH, "reads files"),
    "TFRecordDataset": (Severity.HIGH, "reads files"),
    "TFRecordDatasetV2": (Severity.HIGH, "reads files"),
    "FixedLengthRecordDataset": (Severity.HIGH, "reads files"),
    "FixedLengthRecordDatasetV2": (Severity.HIGH, "reads files"),
    "LMDBDataset": (Severity.HIGH, "reads files"),
    "ExperimentalLMDBDataset": (Severity.HIGH, "reads files"),
    "LoadDataset": (Severity.HIGH, "reads files"),
    "SaveDataset": (Severity.CRITICAL, "writes files"),
    "SaveDatasetV2": (Severity.CRITICAL, "writes files"),
    "ExperimentalSaveDataset": (Severity.CRITICAL, "writes files"),
    "CreateSummaryFileWriter": (Severity.HIGH, "writes files"),
    "WriteSummary": (Severity.HIGH, "writes files"),
    "DebugIdentity": (Severity.HIGH, "sends tensors to debug URLs (gRPC or file)"),
    "DebugIdentityV2": (Severity.HIGH, "sends tensors to a debugger (file or network)"),
    "DebugNanCount": (Severity.HIGH, "sends tensors to debug URLs (gRPC or file)"),
    "DebugNumericSummary": (Severity.HIGH, "sends tensors to debug URLs (gRPC or file)"),
    "DebugNumericSummaryV2": (Severity.HIGH, "sends tensors to a debugger"),
    "ImmutableConst": (Severity.HIGH, "memory-maps a file"),
}
#: TensorFlow's (and protobuf's) limit on one serialized message: a bigger file is no SavedModel.
PROTOBUF_MAX_BYTES = 2**31 - 1


class WireError(ValueError):
    """The bytes are not a valid protobuf encoding."""


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError(f"varint runs past the end at byte {pos}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError(f"varint longer than 10 bytes at byte {pos}")


def fields(buf: memoryview) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(field number, wire type, value)``; length-delimited values as memoryviews.

    Every length is checked against the bytes left (a huge declared length is an error,
    never an allocation); groups (wire types 3 and 4, deprecated) are rejected.
    """
    pos = 0
    val: Any
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise WireError("field number 0")
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            if pos + 8 > len(buf):
                raise WireError("fixed64 field runs past the end")
            val, pos = None, pos + 8
        elif wt == 2:
            n, pos = _varint(buf, pos)
            if n > len(buf) - pos:
                raise WireError(f"field {num} declares {n} bytes, {len(buf) - pos} are left")
            val, pos = buf[pos : pos + n], pos + n
        elif wt == 5:
            if pos + 4 > len(buf):
                raise WireError("fixed32 field runs past the end")
            val, pos = None, pos + 4
        else:
            raise WireError(f"wire type {wt} is not used by proto3")
        yield num, wt, val


def _sub(buf: memoryview, num: int) -> Iterator[memoryview]:
    for n, wt, val in fields(buf):
        if n == num and wt == 2:
            yield val


def _string(buf: memoryview, num: int) -> str:
    last = ""
    for val in _sub(buf, num):
        last = bytes(val).decode("utf-8", "replace")
    return last


def saved_model_ops(data: bytes) -> dict[str, int]:
    """Count the ops of every graph and function of a ``saved_model.pb``; ``WireError`` if bad."""
    ops: dict[str, int] = {}
    root = memoryview(data)
    for meta in _sub(root, 2):  # SavedModel.meta_graphs
        for graph in _sub(meta, 2):  # MetaGraphDef.graph_def
            _graph_ops(graph, ops)
    return ops


def _graph_ops(graph: memoryview, ops: dict[str, int]) -> None:
    for node in _sub(graph, 1):  # GraphDef.node
        op = _string(node, 2)
        ops[op] = ops.get(op, 0) + 1
    for lib in _sub(graph, 2):  # GraphDef.library
        for fn in _sub(lib, 1):  # FunctionDefLibrary.function
            for node in _sub(fn, 3):  # FunctionDef.node_def
                op = _string(node, 2)
                ops[op] = ops.get(op, 0) + 1


def scan_saved_model(ctx: _Ctx, fh: Any, size: int, member: str) -> None:
    """Flag file, process and network ops in a SavedModel graph."""
    data = _read_all(ctx, fh, size, member, "saved_model.pb")
    if data is None:
        return
    try:
        ops = saved_model_ops(data)
    except WireError as exc:
        ctx.add(
            "malformed", Severity.HIGH, f"saved_model.pb is not a valid protobuf: {exc}", member
        )
        return
    if not ops:
        ctx.add("malformed", Severity.HIGH, "saved_model.pb holds no graph", member)
        return
    for op in sorted(ops):
        if op in UNSAFE_OPS:
            sev, what = UNSAFE_OPS[op]
            ctx.add(
                "unsafe-op",
                sev,
                f"TensorFlow graph holds {ops[op]} {op} op(s): it {what} when the graph runs",
                member,
                name=op,
            )


def scan_keras_metadata(ctx: _Ctx, fh: Any, size: int, member: str) -> None:
    """Check the Keras layer configurations stored in ``keras_metadata.pb``."""
    data = _read_all(ctx, fh, size, member, "keras_metadata.pb")
    if data is None:
        return
    try:
        for node in _sub(memoryview(data), 1):  # SavedMetadata.nodes
            for _num, wt, val in fields(node):
                if wt != 2 or bytes(val[:1]) != b"{":
                    continue
                text = bytes(val)
                try:
                    obj = json.loads(text)
                except (ValueError, RecursionError):
                    continue
                if looks_like_keras_config(obj):
                    scan_keras_config(ctx, text, member, source="keras_metadata.pb layer")
    except WireError as exc:
        ctx.add(
            "malformed", Severity.HIGH, f"keras_metadata.pb is not a valid protobuf: {exc}", member
        )


def _read_all(ctx: _Ctx, fh: Any, size: int, member: str, what: str) -> bytes | None:
    if size > PROTOBUF_MAX_BYTES:
        ctx.add("malformed", Severity.HIGH, f"{what} is larger than protobuf's 2 GiB limit", member)
        return None
    if size > ctx.max_member_bytes:
        ctx.add("unreadable", Severity.HIGH, f"{what} larger than max_member_bytes", member)
        return None
    fh.seek(0)
    return bytes(fh.read(size))
