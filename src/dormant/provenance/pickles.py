"""Opcode-level analysis of pickle streams, without executing or importing anything.

A pickle is a program for a small stack machine; loading it imports the objects its
``GLOBAL``, ``STACK_GLOBAL``, ``INST`` and ``EXT*`` opcodes name and calls them (``REDUCE``,
``OBJ``, ``NEWOBJ``, ``BUILD``). This module walks the opcodes with :func:`pickletools.genops`
(a parser: nothing is imported or called), keeps a symbolic stack and memo so that
``STACK_GLOBAL`` arguments built from memoised strings are resolved, and classifies every
import against an allow-list:

- names on :data:`SAFE_GLOBALS` (PyTorch's ``weights_only`` allow-list, the NumPy array
  reconstructors and plain builtin containers) are fine;
- names in modules that run code, touch files or processes, or load other pickles
  (:data:`DANGEROUS_MODULES`, :data:`DANGEROUS_PREFIXES`, any ``__dunder__`` segment) are
  ``critical``;
- every other import is ``high`` — loading it means trusting code outside the allow-list;
- a ``STACK_GLOBAL`` whose arguments cannot be resolved statically, an ``EXT`` code, and a
  stream that cannot be parsed to its ``STOP`` are reported too (fail closed).

This is the approach of picklescan and ModelScan (Protect AI) and of Fickling (Trail of Bits,
Sultanik 2021), with the parsing fixes from the 2024-2025 scanner bypass reports (JFrog,
Sonatype, ReversingLabs "nullifAI": broken streams still run their payload up to the error,
so a stream that cannot be read to the end is flagged, not skipped). Limits: a pickle whose
only imports are allow-listed is reported clean even if a future library version turns one of
those callables into a gadget; the allow-list is exact names, so it does not know about
classes of libraries you trust — those show up as ``high`` and are yours to judge.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickletools
import re
from dataclasses import dataclass, field
from typing import IO, Any

from ..findings import Severity
from .policy import DANGEROUS_MODULES, DANGEROUS_PREFIXES, SAFE_GLOBALS

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_STRING_OPS = frozenset(
    [
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "UNICODE",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
    ]
)
_CALL_OPS = frozenset({"REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "INST", "BUILD"})


@dataclass(frozen=True)
class GlobalRef:
    """An import a pickle performs: normalised ``module.name``, opcode and byte offset."""

    module: str
    name: str
    opcode: str
    offset: int

    @property
    def full(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class PickleIssue:
    """One problem in a pickle stream."""

    kind: str  # "global", "dynamic-global", "extension", "persistent-id", "malformed"
    severity: Severity
    title: str
    offset: int
    opcode: str = ""
    name: str = ""
    called: bool = False


@dataclass
class PickleScan:
    """Result of :func:`scan_pickle` over one stream."""

    issues: list[PickleIssue] = field(default_factory=list)
    imports: list[GlobalRef] = field(default_factory=list)
    opcodes: int = 0
    protocol: int | None = None
    end: int | None = None  # offset just past STOP; None when STOP was never reached

    @property
    def complete(self) -> bool:
        return self.end is not None and not any(i.kind == "malformed" for i in self.issues)


def classify_global(module: str, name: str) -> tuple[Severity | None, str]:
    """``(None, reason)`` for an allow-listed import, else its severity and why."""
    module, name = normalise_global(module, name)
    full = f"{module}.{name}"
    if full in SAFE_GLOBALS:
        return None, "on the allow-list"
    if not _IDENT.match(module) or not _IDENT.match(name):
        return Severity.CRITICAL, "not a valid Python name (obfuscated import)"
    parts = full.split(".")
    if any(p.startswith("__") and p.endswith("__") for p in parts):
        return Severity.CRITICAL, "reaches a dunder attribute"
    if parts[0] in DANGEROUS_MODULES:
        return Severity.CRITICAL, f"module {parts[0]!r} can run code or touch the system"
    for prefix in DANGEROUS_PREFIXES:
        if full == prefix or full.startswith(prefix + "."):
            return Severity.CRITICAL, f"{prefix} loads code or further pickles"
    return Severity.HIGH, "not on the allow-list of safe globals"


def normalise_global(module: str, name: str) -> tuple[str, str]:
    """Map Python 2 names (``__builtin__``, ``copy_reg``) as the unpickler does."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class _Mark:
    pass


_MARK = _Mark()
_UNKNOWN = object()


class _Bounded(io.RawIOBase):
    """A read-only view that never hands out more than ``limit`` bytes (no huge allocations)."""

    def __init__(self, fh: IO[bytes], limit: int) -> None:
        self._fh = fh
        self._left = limit
        self._pos = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self._left:
            n = self._left
        data = self._fh.read(n)
        self._left -= len(data)
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos


def scan_pickle(
    stream: bytes | IO[bytes],
    *,
    limit: int | None = None,
    allow_persistent: bool = False,
) -> PickleScan:
    """Walk one pickle (to its ``STOP``) and report its imports and problems.

    Parameters
    ----------
    stream:
        The bytes, or a binary file positioned at the start of the pickle.
    limit:
        Maximum bytes to read (defaults to the whole buffer / unlimited for files).
    allow_persistent:
        Whether persistent ids (``PERSID``/``BINPERSID``) are expected, as in PyTorch
        checkpoints; elsewhere they are reported (``medium``: the loader decides what they do).

    Returns
    -------
    PickleScan
        ``end`` is the offset just past ``STOP`` relative to the start, or ``None`` when the
        stream could not be read to its end (a ``malformed`` issue says why).
    """
    if isinstance(stream, bytes | bytearray | memoryview):
        fh: IO[bytes] = io.BytesIO(bytes(stream))
        limit = len(stream) if limit is None else limit
    else:
        fh = stream
    src = _Bounded(fh, limit if limit is not None else 1 << 62)
    out = PickleScan()
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    seen: dict[str, int] = {}
    offset = 0
    try:
        for op, arg, pos in pickletools.genops(src):  # type: ignore[arg-type]
            offset = int(pos) if pos is not None else offset
            out.opcodes += 1
            _step(op, arg, offset, stack, memo, out, seen, allow_persistent)
            if op.name == "STOP":
                out.end = src.tell()
    except _Malformed as exc:
        out.issues.append(
            PickleIssue("malformed", Severity.HIGH, str(exc), offset, opcode=exc.opcode)
        )
    except Exception as exc:  # the parser's ValueError, EOFError, UnicodeDecodeError ...
        out.issues.append(
            PickleIssue(
                "malformed",
                Severity.HIGH,
                f"pickle stream cannot be read to its end ({type(exc).__name__}: {exc}); "
                "a loader still runs every opcode before the break",
                offset,
            )
        )
    return out


class _Malformed(Exception):
    def __init__(self, msg: str, opcode: str) -> None:
        super().__init__(msg)
        self.opcode = opcode


def _record_import(
    module: Any, name: Any, opcode: str, offset: int, out: PickleScan, seen: dict[str, int]
) -> GlobalRef | None:
    if not isinstance(module, str) or not isinstance(name, str):
        out.issues.append(
            PickleIssue(
                "dynamic-global",
                Severity.CRITICAL,
                f"{opcode} imports a name computed at load time (cannot be resolved statically)",
                offset,
                opcode=opcode,
            )
        )
        return None
    mod, nm = normalise_global(module, name)
    ref = GlobalRef(mod, nm, opcode, offset)
    out.imports.append(ref)
    severity, why = classify_global(module, name)
    if severity is not None and ref.full not in seen:
        seen[ref.full] = len(out.issues)
        out.issues.append(
            PickleIssue("global", severity, f"imports {ref.full} ({why})", offset, opcode, ref.full)
        )
    return ref


def _mark_called(ref: Any, out: PickleScan, seen: dict[str, int]) -> None:
    if isinstance(ref, GlobalRef) and ref.full in seen:
        i = seen[ref.full]
        issue = out.issues[i]
        if not issue.called:
            out.issues[i] = PickleIssue(
                issue.kind,
                issue.severity,
                issue.title.replace("imports ", "imports and calls ", 1),
                issue.offset,
                issue.opcode,
                issue.name,
                True,
            )


def _pop(stack: list[Any], opname: str) -> Any:
    if not stack or stack[-1] is _MARK:
        raise _Malformed(f"stack underflow at {opname}", opname)
    return stack.pop()


def _pop_mark(stack: list[Any], opname: str) -> list[Any]:
    items: list[Any] = []
    while stack:
        top = stack.pop()
        if top is _MARK:
            items.reverse()
            return items
        items.append(top)
    raise _Malformed(f"{opname} without a MARK on the stack", opname)


def _step(
    op: pickletools.OpcodeInfo,
    arg: Any,
    offset: int,
    stack: list[Any],
    memo: dict[int, Any],
    out: PickleScan,
    seen: dict[str, int],
    allow_persistent: bool,
) -> None:
    name = op.name
    if name == "PROTO":
        out.protocol = int(arg)
        if not 0 <= out.protocol <= 5:
            raise _Malformed(f"unsupported pickle protocol {arg}", name)
        return
    if name in _STRING_OPS:
        stack.append(arg if isinstance(arg, str) else _UNKNOWN)
        return
    if name in ("GLOBAL", "INST"):
        module, _, attr = str(arg).partition(" ")
        ref = _record_import(module, attr, name, offset, out, seen)
        if name == "INST":
            _pop_mark(stack, name)
            _mark_called(ref, out, seen)
            stack.append(_UNKNOWN)
        else:
            stack.append(ref)
        return
    if name == "STACK_GLOBAL":
        attr = _pop(stack, name)
        module = _pop(stack, name)
        stack.append(_record_import(module, attr, name, offset, out, seen))
        return
    if name.startswith("EXT"):
        out.issues.append(
            PickleIssue(
                "extension",
                Severity.HIGH,
                f"{name} imports extension code {arg} from the loader's copyreg registry "
                "(what it names depends on the loading process)",
                offset,
                opcode=name,
            )
        )
        stack.append(_UNKNOWN)
        return
    if name in ("PERSID", "BINPERSID"):
        if not allow_persistent:
            out.issues.append(
                PickleIssue(
                    "persistent-id",
                    Severity.MEDIUM,
                    f"{name}: a persistent id is resolved by the loader's persistent_load hook",
                    offset,
                    opcode=name,
                )
            )
        if name == "BINPERSID":
            _pop(stack, name)
        stack.append(_UNKNOWN)
        return
    if name in ("PUT", "BINPUT", "LONG_BINPUT"):
        if not stack:
            raise _Malformed(f"{name} on an empty stack", name)
        memo[int(arg)] = stack[-1]
        return
    if name == "MEMOIZE":
        if not stack:
            raise _Malformed("MEMOIZE on an empty stack", name)
        memo[len(memo)] = stack[-1]
        return
    if name in ("GET", "BINGET", "LONG_BINGET"):
        if int(arg) not in memo:
            raise _Malformed(f"{name} of memo slot {arg}, which was never stored", name)
        stack.append(memo[int(arg)])
        return
    if name == "MARK":
        stack.append(_MARK)
        return
    if name == "DUP":
        if not stack:
            raise _Malformed("DUP on an empty stack", name)
        stack.append(stack[-1])
        return
    if name == "POP":
        if stack and stack[-1] is _MARK:
            stack.pop()
        else:
            _pop(stack, name)
        return
    if name in _CALL_OPS:
        _call(name, stack, out, seen)
        return
    _generic(op, stack)


def _call(name: str, stack: list[Any], out: PickleScan, seen: dict[str, int]) -> None:
    if name == "OBJ":
        items = _pop_mark(stack, name)
        if not items:
            raise _Malformed("OBJ without a class", name)
        _mark_called(items[0], out, seen)
    elif name == "REDUCE" or name == "NEWOBJ":
        _pop(stack, name)
        _mark_called(_pop(stack, name), out, seen)
    elif name == "NEWOBJ_EX":
        _pop(stack, name)
        _pop(stack, name)
        _mark_called(_pop(stack, name), out, seen)
    elif name == "BUILD":
        _pop(stack, name)
        obj = _pop(stack, name)
        _mark_called(obj, out, seen)
    stack.append(_UNKNOWN)


def _generic(op: pickletools.OpcodeInfo, stack: list[Any]) -> None:
    before = op.stack_before
    if pickletools.markobject in before:
        _pop_mark(stack, op.name)
        for _ in range(before.index(pickletools.markobject)):
            _pop(stack, op.name)
    else:
        for _ in before:
            _pop(stack, op.name)
    if op.name == "STOP":
        return
    for item in op.stack_after:
        stack.append(_MARK if item is pickletools.markobject else _UNKNOWN)
