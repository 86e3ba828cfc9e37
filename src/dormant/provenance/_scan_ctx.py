"""What one file's serialization scan collects, and the pieces every format reader shares.

The issue records, the scan's running context, the pickle-stream reader (a ``.npy`` object
array, a zip member and a bare file all end in it) and the zip-slip check sit here, below
:mod:`dormant.provenance.serialization` (which dispatches on the format) and the format readers
it dispatches to, so that neither imports the other.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..findings import Severity
from .pickles import PickleIssue, scan_pickle

#: ``pickle.dumps(LEGACY_MAGIC_NUMBER, protocol=2)``: the first of torch's legacy pickles.
TORCH_LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)


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


def unsafe_member_name(name: str) -> str:
    """Why extracting an archive member called ``name`` escapes the target folder ('' if not).

    The zip-slip class of flaw (Snyk, 2018): absolute names, drive letters and ``..``
    components, with either slash (Windows extractors accept both), and NUL bytes that
    truncate the name in C-based tools.
    """
    if "\x00" in name:
        return "holds a NUL byte"
    if name.startswith(("/", "\\")):
        return "is an absolute path"
    if len(name) >= 2 and name[1] == ":" and name[0].isalpha():
        return "starts with a drive letter"
    if ".." in re.split(r"[\\/]", name):
        return "climbs out with '..'"
    return ""
