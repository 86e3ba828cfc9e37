"""GGUF files: header and metadata, and the Jinja chat templates stored in them.

A GGUF file (llama.cpp) carries its chat template as metadata (``tokenizer.chat_template``
and ``tokenizer.chat_template.<name>``). Runtimes render it with Jinja for every request —
llama-cpp-python with ``jinja2``, Ollama and LM Studio with their own engines — so a
template is code: an attribute walk such as ``cycler.__init__.__globals__.os.popen`` is the
server-side template injection of CVE-2024-34359 ("Llama Drama"), and literal text in the
template is an instruction to the model on every turn.

The header and the metadata are read per the GGUF specification (ggml ``docs/gguf.md``,
versions 1-3: magic, version, tensor and key-value counts, typed values, nested arrays)
from a file object, every length checked against the bytes left before it is read; array
values that are not templates are skipped by seeking. Why not the ``gguf`` package's
``GGUFReader`` (used by the tests to *write* real files): it needs a path to memory-map (an
archive member has none), parses every tensor description too, and reports damaged files
with whatever numpy raises. The templates are checked by :mod:`._jinja_check`; nothing is
rendered.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from ..findings import Severity
from ._jinja_check import check_template

if TYPE_CHECKING:
    from ._scan_ctx import _Ctx

GGUF_MAGIC = b"GGUF"
#: value type -> struct format of the fixed-size types (8 = string, 9 = array).
_FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
#: Longest key (the spec caps keys at 65535 bytes) and longest template read into memory.
MAX_KEY = 65535
MAX_TEMPLATE = 16 << 20
_MAX_NESTING = 4


class GGUFError(ValueError):
    """The bytes break the GGUF specification."""


class _Reader:
    def __init__(self, fh: Any, size: int, version: int) -> None:
        self.fh, self.size, self.v1 = fh, size, version == 1

    def left(self) -> int:
        return int(self.size - self.fh.tell())

    def read(self, n: int, what: str) -> bytes:
        if n > self.left():
            raise GGUFError(f"{what} declares {n} bytes but {self.left()} are left")
        data = bytes(self.fh.read(n))
        if len(data) != n:
            raise GGUFError(f"file ends inside {what}")
        return data

    def count(self, what: str) -> int:
        fmt = "<I" if self.v1 else "<Q"
        return int(struct.unpack(fmt, self.read(struct.calcsize(fmt), what))[0])

    def string_len(self, what: str, limit: int | None = None) -> int:
        n = self.count(f"length of {what}")
        if n > self.left() or (limit is not None and n > limit):
            raise GGUFError(f"{what} declares {n} bytes ({self.left()} left in the file)")
        return n

    def skip(self, n: int, what: str) -> None:
        if n > self.left():
            raise GGUFError(f"{what} declares {n} bytes but {self.left()} are left")
        self.fh.seek(n, 1)


def read_gguf_metadata(
    fh: Any, size: int, *, keep: tuple[str, ...] = ("tokenizer.chat_template",)
) -> tuple[int, int, dict[str, str]]:
    """Return ``(version, tensor count, {key: value})`` for string keys starting with ``keep``.

    Raises
    ------
    GGUFError
        When the header or metadata break the specification (bad magic, unknown version or
        value type, lengths past the end of the file, absurd counts).
    """
    fh.seek(0)
    head = bytes(fh.read(8))
    if len(head) < 8 or head[:4] != GGUF_MAGIC:
        raise GGUFError("not a GGUF file (magic 'GGUF' and a version expected)")
    (version,) = struct.unpack("<I", head[4:8])
    if version not in (1, 2, 3):
        raise GGUFError(f"GGUF version {version} is unknown (1, 2 or 3 expected)")
    r = _Reader(fh, size, version)
    tensors = r.count("tensor count")
    kvs = r.count("metadata count")
    if tensors > size // 24 or kvs > size // 13:  # smallest tensor info / key-value pair
        raise GGUFError(f"{tensors} tensors and {kvs} metadata keys cannot fit in {size} bytes")
    found: dict[str, str] = {}
    for i in range(kvs):
        key = r.read(r.string_len(f"key {i}", MAX_KEY), f"key {i}").decode("utf-8", "replace")
        (vtype,) = struct.unpack("<I", r.read(4, f"type of {key!r}"))
        if vtype == _STRING and key.startswith(keep):
            n = r.string_len(repr(key), MAX_TEMPLATE)
            found[key] = r.read(n, repr(key)).decode("utf-8", "replace")
        else:
            _skip_value(r, vtype, key, 0)
    return version, tensors, found


def _skip_value(r: _Reader, vtype: int, key: str, depth: int) -> None:
    if vtype in _FIXED:
        r.skip(struct.calcsize("<" + _FIXED[vtype]), repr(key))
    elif vtype == _STRING:
        r.skip(r.string_len(repr(key)), repr(key))
    elif vtype == _ARRAY:
        if depth >= _MAX_NESTING:
            raise GGUFError(f"{key!r} nests arrays more than {_MAX_NESTING} deep")
        (etype,) = struct.unpack("<I", r.read(4, f"element type of {key!r}"))
        n = r.count(f"length of {key!r}")
        if etype in _FIXED:
            r.skip(n * struct.calcsize("<" + _FIXED[etype]), repr(key))
        elif etype in (_STRING, _ARRAY):
            if n > r.left() // 8:
                raise GGUFError(f"array {key!r} declares {n} elements, more than the file holds")
            for _ in range(n):
                _skip_value(r, etype, key, depth + 1)
        else:
            raise GGUFError(f"array {key!r} has unknown element type {etype}")
    else:
        raise GGUFError(f"{key!r} has unknown value type {vtype}")


def scan_gguf(ctx: _Ctx, fh: Any, size: int, member: str) -> None:
    """Parse a GGUF header and metadata; check its chat templates."""
    try:
        _version, _tensors, templates = read_gguf_metadata(fh, size)
    except (GGUFError, struct.error, OSError) as exc:
        ctx.add("malformed", Severity.HIGH, f"GGUF file cannot be read: {exc}", member)
        return
    for key, text in sorted(templates.items()):
        for hit in check_template(text):
            ctx.add(hit.kind, hit.severity, f"GGUF {key}: {hit.title}", member, name=hit.name)
